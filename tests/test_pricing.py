"""The pure price table and estimate (plugin/gpt_image_edit/pricing.py) and the model
families of the size rules (geometry.py): the same module the GIMP host core imports."""

from __future__ import annotations

import pytest

from gpt_image_edit import geometry, pricing
from gpt_image_edit.errors import BadInputError


def usage(text=34, image=1200, output=4160):
    return {"input_tokens": text + image, "output_tokens": output,
            "total_tokens": text + image + output,
            "input_tokens_details": {"text_tokens": text, "image_tokens": image}}


@pytest.mark.parametrize("model,prices", [
    ("gpt-image-2", (5, 8, 30)),
    ("gpt-image-2-2026-04-21", (5, 8, 30)),
    ("gpt-image-2.5-preview", (5, 8, 30)),
    ("gpt-image-1.5", (5, 8, 32)),
    ("gpt-image-1", (5, 10, 40)),
    ("gpt-image-1-mini", (2, 2.5, 8)),  # the longest prefix wins over gpt-image-1
])
def test_cost_from_usage_is_exact_for_the_default_prices(model, prices):
    text, image, output = prices
    assert pricing.cost_of(usage(), model) == (34 * text + 1200 * image + 4160 * output) / 1e6


def test_a_model_no_prefix_matches_has_an_unknown_cost():
    assert pricing.cost_of(usage(), "dall-e-2") is None
    assert pricing.cost_of(usage(), "flux-kontext") is None
    assert pricing.format_usd(None) == "cost unknown"
    assert pricing.estimate("dall-e-2", 1024, 1024, "high")["cost_usd"] is None


def test_a_usage_without_the_input_split_is_not_guessed():
    bare = {"input_tokens": 1234, "output_tokens": 4160, "total_tokens": 5394}
    assert pricing.cost_of(bare, "gpt-image-2") is None
    assert pricing.cost_of({}, "gpt-image-2") is None


def test_the_prices_setting_overrides_and_adds():
    table = pricing.merged_prices({"gpt-image-2": {"image_output": 20},
                                   "my-router-model": {"text_input": 1, "image_input": 2,
                                                       "image_output": 3}})
    assert table["gpt-image-2"] == {"text_input": 5.0, "image_input": 8.0,
                                    "image_output": 20.0}
    assert pricing.cost_of(usage(1, 1, 1), "my-router-model-v2", table) == 6 / 1e6
    assert pricing.cost_of(usage(1, 1, 1), "gpt-image-1", table) == 55 / 1e6
    for broken in ({"x": {"text_input": 1}}, {"gpt-image-2": {"image_output": -1}},
                   {"gpt-image-2": {"speed": 1}}, ["gpt-image-2"]):
        with pytest.raises(pricing.PriceError):
            pricing.merged_prices(broken)


def test_estimate_follows_size_quality_variants_and_previews():
    base = pricing.estimate("gpt-image-1", 1024, 1024, "high")
    assert base["output_tokens"] == 4160
    assert pricing.estimate("gpt-image-1", 1024, 1024, "low")["output_tokens"] == 272
    assert pricing.estimate("gpt-image-1", 1024, 1024, "medium")["output_tokens"] == 1056
    assert pricing.estimate("gpt-image-1", 1024, 1536, "high")["output_tokens"] == 6240
    assert pricing.estimate("gpt-image-1", 1024, 1024, "high", variants=3)[
        "output_tokens"] == 3 * 4160
    previews = pricing.estimate("gpt-image-1", 1024, 1024, "high", variants=2,
                                partial_images=3)
    assert previews["output_tokens"] == 2 * (4160 + 300)
    # 1024x1024 as sent: fit 2048, shortest side 768 -> 768x768 -> 4 tiles of 512
    assert base["image_tokens"] == 65 + 129 * 4
    assert base["text_tokens"] == 0
    assert pricing.estimate("gpt-image-1", 1024, 1024, "high", prompt_length=9)[
        "text_tokens"] == 3
    assert base["cost_usd"] == (base["image_tokens"] * 10 + 4160 * 40) / 1e6
    assert base["priced_as"] == "gpt-image-1"
    with_reference = pricing.estimate("gpt-image-1", 1024, 1024, "high",
                                      references=[(512, 512)])
    assert with_reference["image_tokens"] == base["image_tokens"] + 65 + 129


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2-2026-04-21",
                                   "gpt-image-2.5-preview"])
def test_the_2x_family_gets_aspect_true_sizes(model):
    assert geometry.request_size(3000, 1000, model) == geometry.request_size(
        3000, 1000, "gpt-image-2")
    assert geometry.request_size(3000, 1000, model) not in geometry.FIXED_SIZES
    assert geometry.check_size("2048x1152", model) == (2048, 1152)
    assert not geometry.takes_input_fidelity(model)


@pytest.mark.parametrize("model", ["gpt-image-20", "gpt-image-1", "gpt-image-1.5"])
def test_other_names_are_not_the_2x_family(model):
    assert not geometry.takes_flexible_sizes(model)


@pytest.mark.parametrize("size,reason", [
    ("1000x1008", "multiples of 16"),
    ("3200x1008", "three times"),
    ("4096x1440", "at most 3840x2160"),
    ("3840x2176", "at most 3840x2160"),
    ("1024x512", "at least 655360 pixels"),
])
def test_explicit_sizes_are_checked_against_the_family_limits(size, reason):
    with pytest.raises(BadInputError, match=reason):
        geometry.check_size(size, "gpt-image-2-2026-04-21")


def test_family_limits_accept_their_edges():
    for size in ("3840x2160", "1024x640", "2400x800", "800x2400"):
        assert geometry.check_size(size, "gpt-image-2.5-preview")


def test_only_gpt_image_models_stream_and_take_references():
    assert geometry.is_gpt_image("gpt-image-1-mini")
    assert not geometry.is_gpt_image("dall-e-2")
