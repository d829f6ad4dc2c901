"""Blending and reference pictures (issue 13), proven on pictures whose answer is known.

The stand-in server's picture scenarios (tests/fake_wisgate.py, MODEL_EFFECTS) paint a
square where the edit was asked for, blur everything and shift every colour, as models do:
so we know exactly which pixels the model was asked to change, what its drift is, and what
the source was everywhere else.
"""

from __future__ import annotations

import io
import json
import math

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from gpt_image_edit.blend import (
    FEATHER_MIN,
    MAX_WHOLE_DRIFT,
    blend_result,
    blend_results,
    feather_mask,
    feather_width,
)
from gpt_image_edit.client import ImagesClient
from gpt_image_edit.edit import EditParams, run_edit
from gpt_image_edit.references import MAX_REFERENCES, REFERENCE_MAX_SIDE
from gpt_image_edit.settings import load_settings
from tests.bench import photo
from tests.fake_wisgate import CAST, SQUARE_COLOUR, cast_table, square_box
from tests.test_cli import run_tool, save
from tests.test_imaging import scene
from tests.test_job import manifest_of, run_worker, write_job

# The selection of the selection tests: a circle, so that "n pixels inside the edge" is a
# distance from its centre.
WIDTH, HEIGHT = 900, 600
CENTRE, RADIUS = (450, 300), 150


# -- pictures and measures -------------------------------------------------------------------
def smooth(width: int, height: int) -> Image.Image:
    """Gradients only, kept off the ends of the range (the cast must not clip): resampling
    moves such a picture by a level at most, so any larger difference is the model's."""
    horizontal = Image.linear_gradient("L").rotate(90).resize((width, height))
    vertical = Image.linear_gradient("L").resize((width, height))
    radial = Image.radial_gradient("L").resize((width, height))
    squeeze = [30 + value * 195 // 255 for value in range(256)]
    return Image.merge("RGB", [band.point(squeeze) for band in (horizontal, vertical, radial)])


def circle(size=(WIDTH, HEIGHT), centre=CENTRE, radius=RADIUS) -> Image.Image:
    selection = Image.new("L", size, 0)
    x, y = centre
    ImageDraw.Draw(selection).ellipse((x - radius, y - radius, x + radius, y + radius),
                                      fill=255)
    return selection


def ring(inner: float, outer: float, size=(WIDTH, HEIGHT), centre=CENTRE) -> Image.Image:
    """L: 255 on the pixels whose centres lie between `inner` and `outer` from `centre`."""
    band = Image.new("L", size, 0)
    pixels = band.load()
    for y in range(max(0, int(centre[1] - outer) - 1), min(size[1], int(centre[1] + outer) + 2)):
        for x in range(max(0, int(centre[0] - outer) - 1),
                       min(size[0], int(centre[0] + outer) + 2)):
            if inner <= math.hypot(x + 0.5 - centre[0], y + 0.5 - centre[1]) <= outer:
                pixels[x, y] = 255
    return band


def inside_edge(nearest: float, furthest: float) -> Image.Image:
    """The pixels `nearest` to `furthest` pixels inside the circle's edge."""
    return ring(RADIUS - furthest, RADIUS - nearest)


def largest_difference(first: Image.Image, second: Image.Image, where: Image.Image) -> int:
    """The largest difference of any channel on the pixels `where` is 255."""
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    black = Image.new("RGB", first.size)
    return max(high for _, high in Image.composite(difference, black, where).getextrema())


def mean_shift(after: Image.Image, before: Image.Image, where: Image.Image) -> list[float]:
    """Per channel, the mean of after - before on the pixels `where` is 255."""
    return [a - b for a, b in zip(ImageStat.Stat(after.convert("RGB"), where).mean,
                                  ImageStat.Stat(before.convert("RGB"), where).mean)]


def psnr_where(first: Image.Image, second: Image.Image, where: Image.Image) -> float:
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    mse = sum(value ** 2 for value in ImageStat.Stat(difference, where).rms) / 3
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def cast_shift(picture: Image.Image, where: Image.Image) -> list[float]:
    """The stand-in model's cast on these pixels, per channel: what `none` must keep."""
    return mean_shift(picture.convert("RGB").point(cast_table("RGB")), picture, where)


def edit_with_cli(tmp_path, wisgate_env, scenario: str, picture: Image.Image,
                  selection: Image.Image | None, blend: str | None, *extra):
    """Run `gpt-image-edit edit` as a user does; the picture it wrote."""
    folder = tmp_path / (blend or "default")
    folder.mkdir()
    arguments = ["edit", save(picture, folder / "photo.png"), "--prompt", "paint a square"]
    if selection is not None:
        arguments += ["--selection", save(selection, folder / "selection.png")]
    if blend is not None:
        arguments += ["--blend", blend]
    finished = run_tool(*arguments, *extra, env=wisgate_env(scenario))
    assert finished.returncode == 0, finished.stderr
    return Image.open(folder / "photo-edit.png").convert("RGB")


def asked_square(selection_box, picture_size) -> tuple[int, int, int, int]:
    """Where the stand-in model painted its square, in the picture (within a pixel): the
    middle half of the selection's box, or a centred square a quarter of the shorter side."""
    if selection_box is not None:
        left, top, right, bottom = selection_box
        width, height = right - left, bottom - top
        return left + width // 4, top + height // 4, right - width // 4, bottom - height // 4
    return square_box(picture_size, None)


def box_mask(size, box, grow: int = 0) -> Image.Image:
    mask = Image.new("L", size, 0)
    x1, y1, x2, y2 = box
    ImageDraw.Draw(mask).rectangle((x1 - grow, y1 - grow, x2 - 1 + grow, y2 - 1 + grow),
                                   fill=255)
    return mask


# -- with a selection, on the command line ---------------------------------------------------
@pytest.mark.parametrize("scenario", ["cast_square", "drift"])
def test_seamless_corrects_the_drift_keeps_the_change_and_the_outside(tmp_path, wisgate_env,
                                                                      scenario):
    source, selection = smooth(WIDTH, HEIGHT), circle()
    output = edit_with_cli(tmp_path, wisgate_env, scenario, source, selection, None)  # default
    outside = ImageChops.invert(selection.point(lambda value: 255 if value else 0))
    assert largest_difference(output, source, outside) <= 2
    # 6-20 px inside the edge the model's picture shows (beyond the soft edge), its cast
    # taken out: within 4 levels of the source in every channel, pixel by pixel.
    band = inside_edge(6, 20)
    assert largest_difference(output, source, band) <= 4
    # The change asked for is kept: the square, in the colour asked for (the model's cast
    # taken out of it too).
    square = box_mask(source.size, asked_square(selection.getbbox(), source.size), grow=-8)
    painted = Image.new("RGB", source.size, SQUARE_COLOUR)
    assert largest_difference(output, painted, square) <= 4


def test_none_returns_the_models_picture_with_its_cast(tmp_path, wisgate_env):
    source, selection = smooth(WIDTH, HEIGHT), circle()
    output = edit_with_cli(tmp_path, wisgate_env, "drift", source, selection, "none")
    band = inside_edge(1, 20)
    # The cast near the edge, as the model sent it: the same shift as the stand-in's.
    expected = cast_shift(source, band)
    assert max(abs(value) for value in expected) >= 8
    assert mean_shift(output, source, band) == pytest.approx(expected, abs=1.5)
    outside = ImageChops.invert(selection.point(lambda value: 255 if value else 0))
    assert largest_difference(output, source, outside) == 0


def edge_profile(picture: Image.Image, y: int, x_from: int, x_to: int) -> list:
    return [picture.getpixel((x, y)) for x in range(x_from, x_to)]


def test_feather_has_a_soft_edge_inside_the_selection_and_none_a_hard_one(tmp_path,
                                                                          wisgate_env):
    source, selection = smooth(WIDTH, HEIGHT), circle()
    row = CENTRE[1]
    edge = next(x for x in range(WIDTH) if selection.getpixel((x, row)))  # first inside
    results = {blend: edit_with_cli(tmp_path, wisgate_env, "cast", source, selection, blend)
               for blend in ("none", "feather")}
    red = [pixel[0] for pixel in edge_profile(source, row, edge - 10, edge + 30)]

    def share_of_result(blend: str) -> list[float]:
        """Per pixel along the row, how much of the model's picture shows (0 to 1)."""
        shown = [pixel[0] for pixel in edge_profile(results[blend], row, edge - 10, edge + 30)]
        model = [min(255, round(CAST[0][0] * value + CAST[0][1])) for value in red]
        return [(out - src) / (mod - src) for out, src, mod in zip(shown, red, model)]

    hard, soft = share_of_result("none"), share_of_result("feather")
    assert all(share == 0 for share in hard[:10] + soft[:10])  # outside: the source
    assert all(share == pytest.approx(1, abs=0.1) for share in hard[10:])
    inside = soft[10:]
    partial = [share for share in inside if 0.05 < share < 0.95]
    assert len(partial) >= FEATHER_MIN and inside[0] < 0.7
    assert all(share == pytest.approx(1, abs=0.1) for share in inside[15:])


# -- without a selection -----------------------------------------------------------------------
def test_whole_layer_seamless_keeps_full_detail_away_from_the_change(tmp_path, wisgate_env,
                                                                     fake_wisgate):
    """The model blurs and shifts the whole picture and paints a square: seamless takes only
    the square (its cast taken out) and keeps the source everywhere 24 px and more away."""
    source = photo(2400, 1600, seed=13)
    outputs = {blend: edit_with_cli(tmp_path, wisgate_env, "drift", source, None, blend)
               for blend in ("none", "seamless")}
    canvas = tuple(int(side) for side in fake_wisgate.requests[-1].fields["size"].split("x"))
    x1, y1, x2, y2 = square_box(canvas, None)
    scale_x, scale_y = source.width / canvas[0], source.height / canvas[1]
    square = (math.floor(x1 * scale_x), math.floor(y1 * scale_y),
              math.ceil(x2 * scale_x), math.ceil(y2 * scale_y))
    away = ImageChops.invert(box_mask(source.size, square, grow=24))
    assert psnr_where(outputs["none"], source, away) < 38  # what the model did to the rest
    assert psnr_where(outputs["seamless"], source, away) >= 38
    inner = box_mask(source.size, square, grow=-8)
    painted = Image.new("RGB", source.size, SQUARE_COLOUR)
    assert largest_difference(outputs["seamless"], painted, inner) <= 4


def test_whole_layer_drift_alone_leaves_the_source(tmp_path, wisgate_env):
    source = smooth(640, 480)
    output = edit_with_cli(tmp_path, wisgate_env, "cast", source, None, "seamless")
    assert largest_difference(output, source, Image.new("L", source.size, 255)) <= 2


# -- the module on its own: rules the command line cannot show ---------------------------------
def shifted(picture: Image.Image, red: int) -> Image.Image:
    return picture.point([min(255, max(0, value + red)) for value in range(256)]
                         + list(range(256)) * (len(picture.mode) - 1))


def test_a_colour_change_asked_for_inside_the_selection_is_kept():
    source = smooth(WIDTH, HEIGHT).convert("RGBA")
    selection = circle()
    # The model made the selection much redder (asked for) and drifted everywhere (not).
    result = Image.composite(shifted(source, 60), source, selection).point(cast_table("RGBA"))
    blended = blend_result("seamless", source, result, selection)
    core = inside_edge(20, RADIUS)
    assert mean_shift(blended.picture, source, core) == pytest.approx([60, 0, 0], abs=2)
    assert blended.changed and blended.mask is not None


def test_drift_is_measured_only_where_result_and_source_agree():
    """A model that also repainted part of the surroundings (masks are only a hint to it):
    that part is left out of the measurement, the cast is still taken out exactly."""
    source = smooth(WIDTH, HEIGHT).convert("RGBA")
    selection = circle()
    result = source.copy()
    ImageDraw.Draw(result).rectangle((480, 0, 900, 600), fill=(20, 200, 90))
    result = result.point(cast_table("RGBA"))
    blended = blend_result("seamless", source, result, selection)
    band = ImageChops.multiply(inside_edge(6, 20), box_mask(source.size, (0, 0, 440, 600)))
    assert largest_difference(blended.picture, source, band) <= 4
    assert largest_difference(result, source, band) >= 8


def test_whole_layer_thin_changes_count_and_softened_edges_do_not():
    """A thin line drawn by the model is a change (it must not be dropped); the sharp edges
    of the picture's shapes, only softened by the model, are not."""
    source = Image.blend(scene(1200, 800), photo(1200, 800, seed=8), 0.3).convert("RGBA")
    result = source.convert("RGB")
    ImageDraw.Draw(result).line((40, 100, 1160, 130), fill=(250, 250, 250), width=3)
    result = result.filter(ImageFilter.GaussianBlur(2)).point(cast_table("RGB"))
    mask = blend_result("seamless", source, result.convert("RGBA"), None).mask
    assert all(mask.getpixel((x, round(100 + 30 * (x - 40) / 1120))) == 255
               for x in range(60, 1140, 20))
    near_line = Image.new("L", source.size, 0)  # within 24 px of the line, its ends too
    draw = ImageDraw.Draw(near_line)
    draw.line((40, 100, 1160, 130), fill=255, width=3 + 2 * 24)
    for x, y in ((40, 100), (1160, 130)):
        draw.ellipse((x - 26, y - 26, x + 26, y + 26), fill=255)
    assert ImageStat.Stat(mask, ImageChops.invert(near_line)).extrema[0][1] == 0


def test_a_whole_layer_colour_change_larger_than_drift_is_taken_as_asked():
    source = smooth(400, 300).convert("RGBA")
    result = shifted(source, MAX_WHOLE_DRIFT + 14)  # "make it redder"
    blended = blend_result("seamless", source, result, None)
    assert blended.mask is None and blended.picture is result and not blended.changed


def test_feather_width_and_mask():
    selection = circle()
    assert feather_width(selection) == 6  # 2 % of 301 pixels
    assert feather_width(circle(radius=20)) == FEATHER_MIN
    mask = feather_mask(selection)
    outside = ImageChops.invert(selection)
    assert ImageStat.Stat(mask, outside).extrema[0][1] == 0
    assert mask.getpixel(CENTRE) == 255
    # A selection that is already soft keeps its softness.
    assert feather_mask(circle().point(lambda value: value // 2)).getpixel(CENTRE) == 127
    # Where the selection meets the picture's border the picture ends: no soft edge there.
    side = Image.new("L", (400, 300), 0)
    side.paste(255, (0, 100, 200, 200))
    row = [feather_mask(side).getpixel((x, 150)) for x in range(0, 200)]
    assert row[0] == 255 and row[-1] < 128 and 0 < row[-3] < 255


def test_variants_share_one_mask_and_transparent_pixels_are_not_measured():
    source = smooth(300, 200).convert("RGBA")
    source.putalpha(Image.linear_gradient("L").rotate(90).resize((300, 200)))
    results = [source.point(cast_table("RGBA")), shifted(source, 5)]
    selection = circle((300, 200), (150, 100), 40)
    blended = blend_results("seamless", source, results, selection)
    assert blended[0].mask is blended[1].mask
    opaque = source.getchannel("A").point(lambda value: 255 if value > 250 else 0)
    band = ImageChops.multiply(ring(30, 34, (300, 200), (150, 100)), opaque)
    assert largest_difference(blended[1].picture, source, band) <= 2


def test_none_and_feather_leave_the_picture_as_sent():
    source = smooth(200, 100).convert("RGBA")
    result = source.point(cast_table("RGBA"))
    for blend in ("none", "feather"):
        for selection in (None, circle((200, 100), (100, 50), 30)):
            blended = blend_result(blend, source, result, selection)
            assert blended.picture is result and not blended.changed
            assert (blended.mask is None) == (blend == "none" or selection is None)


# -- references ----------------------------------------------------------------------------
def png_chunks(data: bytes) -> list[bytes]:
    chunks, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        chunks.append(data[position + 4:position + 8])
        position += 12 + length
    return chunks


def test_one_reference_goes_as_the_second_picture_without_metadata(tmp_path, wisgate_env,
                                                                   fake_wisgate):
    save(smooth(320, 240), tmp_path / "photo.png")
    reference = smooth(3000, 1000).transpose(Image.Transpose.ROTATE_180)
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    reference.save(tmp_path / "look.jpg", exif=exif, quality=95)
    circle((320, 240), (160, 120), 50).save(tmp_path / "selection.png")
    finished = run_tool("edit", "photo.png", "--prompt", "like this", "--selection",
                        "selection.png", "--reference", "look.jpg", "--json",
                        env=wisgate_env("echo"), cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    sent = fake_wisgate.requests[-1]
    assert "image" not in sent.files and len(sent.files["image[]"]) == 2
    first, second = (Image.open(io.BytesIO(data)) for data in sent.files["image[]"])
    mask = Image.open(io.BytesIO(sent.files["mask"][0]))
    assert mask.size == first.size  # the mask is the edited picture's
    assert second.size == (REFERENCE_MAX_SIDE, round(1000 * REFERENCE_MAX_SIDE / 3000))
    assert second.format == "PNG" and second.mode == "RGB"
    assert set(png_chunks(sent.files["image[]"][1])) == {b"IHDR", b"IDAT", b"IEND"}
    line = json.loads(finished.stdout)
    assert line["blend"] == "seamless" and line["reference"] == ["look.jpg"]


def test_fifteen_references_are_sent_and_sixteen_refused(tmp_path, wisgate_env, fake_wisgate):
    save(smooth(64, 48), tmp_path / "photo.png")
    names = []
    for number in range(MAX_REFERENCES + 1):
        names += ["--reference", save(Image.new("RGB", (32, 32), (number * 15, 0, 0)),
                                      tmp_path / f"ref{number}.png").name]
    env = wisgate_env("echo")
    accepted = run_tool("edit", "photo.png", "--prompt", "x", *names[:-2], env=env,
                        cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    assert len(fake_wisgate.requests[-1].files["image[]"]) == 16
    before = len(fake_wisgate.requests)
    refused = run_tool("edit", "photo.png", "--prompt", "x", *names, env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("16 reference pictures were given, but an edit takes at "
                                      "most 15 (16 pictures with the one edited): leave some "
                                      "out.")
    assert len(fake_wisgate.requests) == before


# -- the job protocol ------------------------------------------------------------------------
def test_job_carries_blend_references_and_result_masks(tmp_path, wisgate_env, fake_wisgate):
    source, selection = smooth(WIDTH, HEIGHT), circle()
    (tmp_path / "job").mkdir()
    Image.new("RGB", (40, 30), "orange").save(tmp_path / "job" / "look.png")
    job = write_job(tmp_path / "job", source, selection, variants=2, blend="seamless",
                    references=[{"path": "look.png", "name": "Orange layer"}])
    finished, _ = run_worker(job, wisgate_env("cast_square"))
    assert finished.returncode == 0, finished.stderr
    manifest = manifest_of(job)
    assert manifest["blend"] == "seamless" and manifest["reference"] == ["Orange layer"]
    results = manifest["results"]
    assert [result["mask"] for result in results] == ["variant-1-mask.png"] * 2
    placement = manifest["placement"]
    mask = Image.open(job.parent / "results" / results[0]["mask"])
    assert mask.mode == "L" and mask.size == (placement["width"], placement["height"])
    layer = Image.open(job.parent / "results" / results[0]["path"])
    region = (placement["x"], placement["y"], placement["x"] + placement["width"],
              placement["y"] + placement["height"])
    assert mask.tobytes() == feather_mask(selection.crop(region)).tobytes()
    # The layer is the model's picture with its cast taken out, shown through the mask.
    band = inside_edge(6, 20).crop(region)
    assert largest_difference(layer, source.crop(region), band) <= 4
    assert len(fake_wisgate.requests[-1].files["image[]"]) == 2


def raw_reference(folder, picture: Image.Image, **entry) -> dict:
    """A reference as the GIMP hosts hand it over: raw pixels (protocol 2)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reference-1.raw").write_bytes(picture.tobytes())
    return {"path": "reference-1.raw", "name": "Look", "pixels": picture.mode,
            "width": picture.width, "height": picture.height, **entry}


def test_job_takes_a_raw_reference_scaled_down_and_flattened(tmp_path, wisgate_env,
                                                              fake_wisgate):
    look = smooth(3000, 1000).convert("RGBA")
    look.putalpha(Image.linear_gradient("L").rotate(90).resize(look.size))
    reference = raw_reference(tmp_path / "job", look)
    job = write_job(tmp_path / "job", smooth(64, 48), protocol=2, references=[reference])
    finished, _ = run_worker(job, wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    assert manifest_of(job)["reference"] == ["Look"]
    sent = Image.open(io.BytesIO(fake_wisgate.requests[-1].files["image[]"][1]))
    assert sent.size == (REFERENCE_MAX_SIDE, round(1000 * REFERENCE_MAX_SIDE / 3000))
    assert sent.mode == "RGB"  # transparent parts flattened: an alpha would read as a mask


@pytest.mark.parametrize("entry, words", [
    ({"width": 99}, "not the 23760 of 99x80 RGB pixels: start the edit again"),
    ({"pixels": "CMYK"}, "'references[0].pixels' is not RGBA or RGB"),
    ({"height": 0}, "'height' is not a whole number of at least 1"),
])
def test_job_refuses_a_raw_reference_that_does_not_fit(tmp_path, wisgate_env, fake_wisgate,
                                                       entry, words):
    reference = raw_reference(tmp_path / "job", smooth(160, 80), **entry)
    job = write_job(tmp_path / "job", smooth(64, 48), protocol=2, references=[reference])
    finished, _ = run_worker(job, wisgate_env("echo"))
    assert finished.returncode == 2
    assert words in manifest_of(job)["error"]["message"]
    assert fake_wisgate.requests == []


def test_whole_layer_job_gets_a_mask_of_the_change(tmp_path, wisgate_env):
    source = smooth(480, 320)
    job = write_job(tmp_path / "job", source, blend="seamless")
    finished, _ = run_worker(job, wisgate_env("cast_square"))
    assert finished.returncode == 0, finished.stderr
    result, = manifest_of(job)["results"]
    mask = Image.open(job.parent / "results" / result["mask"])
    assert mask.size == source.size
    square = asked_square(None, source.size)  # the request is the picture's shape
    assert mask.getpixel((240, 160)) == 255 and mask.getpixel((5, 5)) == 0
    away = ImageChops.invert(box_mask(source.size, square, grow=40))
    assert ImageStat.Stat(mask, away).extrema[0][1] == 0


def test_job_without_the_new_fields_works_as_before(tmp_path, wisgate_env):
    source, selection = smooth(WIDTH, HEIGHT), circle()
    job = write_job(tmp_path / "job", source, selection)
    finished, _ = run_worker(job, wisgate_env("cast_square"))
    assert finished.returncode == 0, finished.stderr
    manifest = manifest_of(job)
    assert manifest["blend"] == "none" and manifest["reference"] == []
    assert manifest["results"] == [{"path": "variant-1.png", "variant": 1}]
    # Besides the live previews (announced as events an older host ignores), the results
    # folder holds what it always held.
    assert sorted(path.name for path in (job.parent / "results").iterdir()
                  if not path.name.startswith("preview-")) == ["manifest.json", "variant-1.png"]


@pytest.mark.parametrize("overrides, words", [
    ({"blend": "smooth"}, "The blend 'smooth' is not one of none, feather, seamless"),
    ({"references": [{"path": "r.png"}] * 16}, "at most 15"),
    ({"references": "r.png"}, "'references' is not a list of objects"),
    ({"references": [{"path": "../secret.png"}]}, "outside its folder ('references[0].path')"),
])
def test_job_refuses_bad_blend_and_references(tmp_path, wisgate_env, fake_wisgate, overrides,
                                              words):
    job = write_job(tmp_path / "job", smooth(64, 48), **overrides)
    finished, _ = run_worker(job, wisgate_env("echo"))
    assert finished.returncode == 2
    assert words in manifest_of(job)["error"]["message"]
    assert fake_wisgate.requests == []


def test_run_edit_reports_masks(wisgate_env):
    wisgate_env("square")
    picture = smooth(300, 200).convert("RGBA")
    with ImagesClient(load_settings()) as client:
        outcome = run_edit(client, picture, None, EditParams("x", blend="seamless"))
    mask = outcome.masks[0]
    assert mask.size == (300, 200) and mask.getpixel((150, 100)) == 255
    assert mask.getpixel((5, 5)) == 0


def test_pictures_for_the_docs_are_made(tmp_path):
    from tests.blend_pictures import make_pictures

    paths = make_pictures(tmp_path)
    assert [path.name for path in paths] == ["blending-selection.png",
                                             "blending-whole-layer.png"]
    for path in paths:
        with Image.open(path) as sheet:
            assert sheet.width > 900 and sheet.height > 400
