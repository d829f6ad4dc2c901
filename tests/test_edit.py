"""One edit, in process, against the fake WisGate server: parameters, region, mask, results."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gpt_image_edit.client import ImagesClient
from gpt_image_edit.edit import EditParams, run_edit
from gpt_image_edit.errors import BadInputError
from gpt_image_edit.geometry import Box
from gpt_image_edit.settings import load_settings
from tests.test_imaging import psnr, scene


@pytest.fixture
def client_for(wisgate_env):
    clients = []

    def make(scenario: str = "echo") -> ImagesClient:
        wisgate_env(scenario)
        clients.append(ImagesClient(load_settings()))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.mark.parametrize("arguments, words", [
    ({"prompt": ""}, "The prompt is empty"),
    ({"prompt": "  \n "}, "The prompt is empty"),
    ({"prompt": "x" * 32001}, "at most 32000"),
    ({"prompt": "sky", "variants": 0}, "between 1 and 10"),
    ({"prompt": "sky", "variants": 11}, "between 1 and 10"),
    ({"prompt": "sky", "variants": True}, "between 1 and 10"),
    ({"prompt": "sky", "quality": "ultra"}, "not one of auto, low, medium, high"),
    ({"prompt": "sky", "size": "1000x1000"}, "multiples of 16"),
    ({"prompt": "sky", "model": "gpt-image-1", "size": "2048x2048"}, "does not take"),
    ({"prompt": "sky", "model": " "}, "No model is set"),
])
def test_params_refused_with_a_sentence(arguments, words):
    with pytest.raises(BadInputError) as refused:
        EditParams(**arguments)
    assert words in str(refused.value)


def test_whole_picture_without_selection(client_for, fake_wisgate):
    picture = scene(640, 360).convert("RGBA")
    events = []
    outcome = run_edit(client_for("echo"), picture, None, EditParams("warmer", variants=2),
                       on_event=lambda stage, message: events.append(stage))
    assert outcome.region == Box(0, 0, 640, 360)
    assert len(outcome.layers) == 2
    for layer in outcome.layers:
        assert layer.size == (640, 360) and layer.mode == "RGBA"
        assert psnr(layer, picture) >= 35
    assert outcome.request == {"model": "gpt-image-2", "size": "1360x768", "quality": "high",
                               "n": 2}
    assert outcome.usage["output_tokens"] > 0
    sent = fake_wisgate.requests[-1]
    assert sent.fields["size"] == "1360x768" and sent.fields["n"] == "2"
    assert sent.fields["background"] == "opaque"
    assert "mask" not in sent.files
    assert events == ["finish"]  # the caller says it is preparing, before loading anything


def test_empty_selection_means_the_whole_picture(client_for, fake_wisgate):
    """An all-zero selection is GIMP's "nothing selected": a mask from it would tell the API
    to change nothing and the edit would come back invisible."""
    picture = scene(300, 200).convert("RGBA")
    outcome = run_edit(client_for("invert"), picture, Image.new("L", (300, 200), 0),
                       EditParams("invert"))
    assert outcome.region == Box(0, 0, 300, 200)
    assert "mask" not in fake_wisgate.requests[-1].files
    x, y = 150, 100
    inverted = tuple(255 - value for value in picture.getpixel((x, y))[:3])
    assert outcome.layers[0].getpixel((x, y))[:3] == pytest.approx(inverted, abs=6)


def test_selection_away_from_the_corner_is_edited_only_there(client_for, fake_wisgate):
    picture = scene(1200, 800).convert("RGBA")
    selection = Image.new("L", picture.size, 0)
    selection.paste(255, (900, 500, 1000, 580))
    outcome = run_edit(client_for("invert"), picture, selection, EditParams("invert"))
    region = outcome.region
    assert region == Box(836, 436, 228, 208)
    mask = Image.open(io.BytesIO(fake_wisgate.requests[-1].files["mask"][0]))
    assert mask.size == Image.open(io.BytesIO(fake_wisgate.requests[-1].files["image"][0])).size
    layer = outcome.layers[0]
    assert layer.size == (region.width, region.height)
    inside = (950 - region.x, 540 - region.y)
    original = picture.getpixel((950, 540))[:3]
    assert layer.getpixel(inside)[:3] == pytest.approx(tuple(255 - v for v in original), abs=6)
    outside = (850 - region.x, 450 - region.y)
    assert layer.getpixel(outside)[:3] == pytest.approx(picture.getpixel((850, 450))[:3],
                                                        abs=6)


def test_result_at_another_size_is_mapped_back(client_for):
    picture = scene(640, 360).convert("RGBA")
    outcome = run_edit(client_for("resize"), picture, None, EditParams("warmer"))
    assert outcome.layers[0].size == (640, 360)
    assert psnr(outcome.layers[0], picture) >= 30


def test_answers_are_kept_as_received_only_when_they_are_the_layer(client_for):
    picture = scene(1024, 768).convert("RGBA")
    params = EditParams("same", size="1024x768", variants=2)
    echoed = run_edit(client_for("echo"), picture, None, params)
    sent = echoed.layers[0]
    assert len(echoed.as_received) == 2 and all(echoed.as_received)
    assert Image.open(io.BytesIO(echoed.as_received[0])).tobytes() == \
        sent.convert("RGB").tobytes()
    resized = run_edit(client_for("resize"), picture, None, params)  # back at 1024x1024
    assert resized.as_received == [None, None] and resized.layers[0].size == (1024, 768)
