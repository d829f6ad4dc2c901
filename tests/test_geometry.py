"""The region, request size and letterbox arithmetic."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gpt_image_edit.errors import BadInputError
from gpt_image_edit.geometry import (
    Box,
    exact_scale,
    letterbox,
    plan_region,
    request_size,
    scaled_size,
    sent_size,
)

ASPECTS = [(1, 1), (4, 3), (3, 4), (16, 9), (9, 16), (3, 1), (1, 3), (10, 1), (1, 10),
           (21, 9), (2, 1), (1, 2)]
REGIONS = [(37, 23), (23, 37), (1, 1), (1, 5000), (5000, 1), (400, 300), (1920, 1080),
           (6000, 4000), (4000, 6000), (3000, 1000), (2999, 1000), (1000, 100), (100, 1000)]


def valid_for_gpt_image_2(width: int, height: int) -> bool:
    return (width % 16 == 0 and height % 16 == 0
            and max(width, height) <= 3 * min(width, height)
            and max(width, height) <= 3840 and width * height <= 3840 * 2160)


@pytest.mark.parametrize("region", REGIONS + [(a * 100, b * 100) for a, b in ASPECTS])
def test_auto_size_for_gpt_image_2_is_valid_and_keeps_the_aspect(region):
    width, height = region
    request = request_size(width, height, "gpt-image-2")
    assert valid_for_gpt_image_2(*request)
    # Within the auto bounds: about 1024x1024 at least, 2560x1440 at most.
    assert 0.95 * 1024 * 1024 <= request[0] * request[1] <= 2560 * 1440
    aspect = min(3.0, max(1 / 3, width / height))
    # Rounding to 16 moves the aspect by at most a step on each side.
    assert request[0] / request[1] == pytest.approx(aspect, rel=0.03)


def test_auto_size_follows_the_regions_pixel_count_between_the_bounds():
    assert request_size(1400, 1050, "gpt-image-2") == (1408, 1056)
    huge = request_size(6000, 4000, "gpt-image-2")
    assert huge[0] * huge[1] > 0.95 * 2560 * 1440
    tiny = request_size(37, 23, "gpt-image-2")
    assert tiny[0] * tiny[1] >= 0.95 * 1024 * 1024


@pytest.mark.parametrize("model", ["gpt-image-1", "gpt-image-1.5", "gpt-image-1-mini",
                                   "some-future-model"])
@pytest.mark.parametrize("region, expected", [
    ((1000, 1000), (1024, 1024)), ((1920, 1080), (1536, 1024)), ((1080, 1920), (1024, 1536)),
    ((37, 23), (1536, 1024)), ((10, 100), (1024, 1536)), ((1100, 1000), (1024, 1024)),
])
def test_fixed_size_models_get_the_closest_size_by_aspect(model, region, expected):
    assert request_size(*region, model) == expected


def test_dall_e_2_only_gets_squares():
    assert request_size(1920, 1080, "dall-e-2") == (1024, 1024)
    assert request_size(1920, 1080, "dall-e-2", "512x512") == (512, 512)


@pytest.mark.parametrize("size, model, expected", [
    ("1536x1024", "gpt-image-2", (1536, 1024)), ("3840x1280", "gpt-image-2", (3840, 1280)),
    ("2048x2048", "gpt-image-2", (2048, 2048)), (" 1024X1536 ", "gpt-image-1", (1024, 1536)),
    ("777x333", "some-future-model", (777, 333)),
])
def test_explicit_sizes_the_model_takes(size, model, expected):
    assert request_size(640, 480, model, size) == expected


@pytest.mark.parametrize("size, model, words", [
    ("1000x1000", "gpt-image-2", "multiples of 16"),
    ("3200x1024", "gpt-image-2", "three times"),
    ("3840x2400", "gpt-image-2", "3840x2160"),
    ("4096x2048", "gpt-image-2", "3840x2160"),
    ("2048x2048", "gpt-image-1", "one of 1024x1024, 1536x1024, 1024x1536"),
    ("1536x1024", "dall-e-2", "one of 256x256, 512x512, 1024x1024"),
    ("0x1024", "gpt-image-2", "empty side"),
    ("big", "gpt-image-2", "not understood"),
    ("1024x", "gpt-image-2", "not understood"),
])
def test_explicit_sizes_refused_with_a_sentence(size, model, words):
    with pytest.raises(BadInputError) as refused:
        request_size(640, 480, model, size)
    assert words in str(refused.value)
    assert str(refused.value).endswith(".")


def test_whole_layer_without_selection():
    assert plan_region(6000, 4000, None) == Box(0, 0, 6000, 4000)


def test_selection_grows_by_context_on_every_side():
    # 400x300 selection: context is a quarter of the longer side, 100 pixels.
    assert plan_region(6000, 4000, Box(2750, 1900, 400, 300)) == Box(2650, 1800, 600, 500)
    # A small selection still gets at least 64 pixels of context.
    assert plan_region(6000, 4000, Box(1000, 1000, 10, 10)) == Box(936, 936, 138, 138)


@pytest.mark.parametrize("selection, expected", [
    (Box(0, 0, 100, 100), Box(0, 0, 164, 164)),
    (Box(950, 750, 50, 50), Box(886, 686, 114, 114)),
    (Box(10, 700, 300, 100), Box(0, 625, 385, 175)),
    (Box(0, 0, 1000, 800), Box(0, 0, 1000, 800)),
])
def test_region_is_clipped_at_the_layer_edges(selection, expected):
    assert plan_region(1000, 800, selection) == expected


def test_selection_outside_the_layer_means_the_whole_layer():
    assert plan_region(100, 100, Box(500, 500, 10, 10)) == Box(0, 0, 100, 100)


@pytest.mark.parametrize("region, canvas", [
    ((1920, 1080), (1024, 1024)), ((1080, 1920), (1536, 1024)), ((100, 1000), (592, 1776)),
    ((1000, 100), (1776, 592)), ((37, 23), (1280, 800)), ((50, 5000), (592, 1776)),
    ((6000, 4000), (2336, 1568)),
])
def test_letterbox_keeps_the_aspect_and_centers(region, canvas):
    box = letterbox(*region, *canvas)
    assert 0 <= box.x and 0 <= box.y
    assert box.right <= canvas[0] and box.bottom <= canvas[1]
    # Fills one dimension of the canvas...
    assert box.width == canvas[0] or box.height == canvas[1]
    # ...keeps the aspect ratio up to rounding to whole pixels...
    assert box.width / box.height == pytest.approx(region[0] / region[1],
                                                   rel=1.0 / min(box.width, box.height))
    # ...and is centered.
    assert abs(box.x - (canvas[0] - box.right)) <= 1
    assert abs(box.y - (canvas[1] - box.bottom)) <= 1


def test_geometry_imports_no_pillow():
    code = ("import sys; import gpt_image_edit.geometry; "
            "print('PIL' in sys.modules, 'requests' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.split() == ["False", "False"]


def test_exact_scale_is_the_one_factor_that_fills_the_canvas_side_that_binds():
    assert exact_scale(6000, 4000, 2336, 1568) == (146, 375)
    assert scaled_size(6000, 4000, 146, 375) == (2336, 1558)  # 1557.33 rows: the last partly
    assert exact_scale(4000, 6000, 1568, 2336) == (146, 375)
    assert scaled_size(4000, 6000, 146, 375) == (1558, 2336)
    assert exact_scale(1024, 1024, 1024, 1024) is None  # sent at its own size
    assert exact_scale(900, 700, 1024, 1024) is None


@pytest.mark.parametrize("width, height", [(6000, 4000), (4032, 3024), (5999, 3999), (2801, 1799),
                                           (8256, 5504), (3000, 200), (200, 3000)])
@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-1", "dall-e-2"])
def test_a_scaled_picture_fits_its_canvas_and_fills_one_side(width, height, model):
    canvas = request_size(width, height, model)
    numerator, denominator = exact_scale(width, height, *canvas)
    scaled = scaled_size(width, height, numerator, denominator)
    assert numerator < denominator and scaled[0] <= canvas[0] and scaled[1] <= canvas[1]
    assert scaled[0] == canvas[0] == width * numerator / denominator or (
        scaled[1] == canvas[1] == height * numerator / denominator)
    assert sent_size(width, height, *canvas) in ((scaled[0], scaled[1]),
                                                 (scaled[0], scaled[1] - 1),
                                                 (scaled[0] - 1, scaled[1]))
