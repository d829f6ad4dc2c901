"""Loading pictures, the upload (picture, mask, letterbox) and mapping results back."""

from __future__ import annotations

import io
import math
import struct
import zlib

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat, PngImagePlugin

from gpt_image_edit.errors import BadInputError, BadResponseError
from gpt_image_edit.geometry import Box, plan_region, request_size
from gpt_image_edit.imaging import (
    Payload,
    build_payload,
    decode_result,
    load_picture,
    load_selection,
    load_source,
    place_result,
    result_as_received,
)


# -- helpers shared with the other picture tests -----------------------------------------
def psnr(first: Image.Image, second: Image.Image) -> float:
    """Peak signal-to-noise ratio of the RGB channels, in dB (inf when identical)."""
    assert first.size == second.size
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    mse = sum(value ** 2 for value in ImageStat.Stat(difference).rms) / 3
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def scene(width: int, height: int) -> Image.Image:
    """A smooth picture with shapes: what resampling should carry through nearly intact."""
    picture = Image.linear_gradient("L").resize((width, height))
    red = picture
    green = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    blue = Image.radial_gradient("L").resize((width, height))
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.2, height * 0.2, width * 0.5, height * 0.6), fill=(250, 200, 30))
    draw.rectangle((width * 0.6, height * 0.5, width * 0.8, height * 0.9), fill=(20, 40, 160))
    return image


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written by hand: for 16-bit colour, and for headers no encoder would write."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def pixel(image: Image.Image, xy) -> tuple:
    return image.getpixel(xy)


# -- loading -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode, value, expected", [
    ("RGB", (10, 20, 30), (10, 20, 30, 255)),
    ("RGBA", (10, 20, 30, 40), (10, 20, 30, 40)),
    ("L", 77, (77, 77, 77, 255)),
    ("LA", (77, 128), (77, 77, 77, 128)),
    ("1", 255, (255, 255, 255, 255)),
])
def test_load_picture_modes(tmp_path, mode, value, expected):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (5, 4), value).save(path)
    picture = load_picture(path)
    assert picture.mode == "RGBA" and picture.size == (5, 4)
    assert pixel(picture, (4, 3)) == expected


def test_load_palette_with_transparency(tmp_path):
    path = tmp_path / "palette.png"
    image = Image.new("P", (4, 1))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.save(path, transparency=0)
    picture = load_picture(path)
    assert pixel(picture, (0, 0))[3] == 0
    assert pixel(picture, (1, 0)) == (0, 255, 0, 255)


def test_load_cmyk(tmp_path):
    path = tmp_path / "cmyk.tif"
    Image.new("CMYK", (3, 3), (0, 255, 255, 0)).save(path)
    assert pixel(load_picture(path), (1, 1)) == (255, 0, 0, 255)


def test_load_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "gray16.png"
    image = Image.new("I;16", (3, 1))
    for x, value in enumerate((0, 32768, 65535)):
        image.putpixel((x, 0), value)
    image.save(path)
    picture = load_picture(path)
    assert [pixel(picture, (x, 0))[0] for x in range(3)] == [0, 128, 255]


@pytest.mark.parametrize("color_type, samples, expected", [
    (2, (65535, 32768, 0, 1024, 2048, 4096), [(255, 128, 0, 255), (4, 8, 16, 255)]),
    (6, (65535, 32768, 0, 32768, 1024, 2048, 4096, 65535), [(255, 128, 0, 128),
                                                           (4, 8, 16, 255)]),
])
def test_load_16_bit_colour(tmp_path, color_type, samples, expected):
    path = tmp_path / "colour16.png"
    path.write_bytes(raw_png(2, 1, 16, color_type, b"\x00" + struct.pack(f">{len(samples)}H",
                                                                             *samples)))
    picture = load_picture(path)
    assert [pixel(picture, (x, 0)) for x in range(2)] == expected


def test_exif_orientation_is_applied_when_asked(tmp_path):
    path = tmp_path / "rotated.png"
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 0, 0), (0, 0, 10, 10))  # a red mark top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turns it 90 degrees clockwise
    image.save(path, exif=exif)
    upright = load_picture(path, exif_transpose=True)
    assert upright.size == (20, 40)
    assert pixel(upright, (15, 5))[:3] == (255, 0, 0)  # the mark is now top-right
    assert load_picture(path).size == (40, 20)


def test_load_selection_is_grayscale(tmp_path):
    path = tmp_path / "selection.png"
    Image.new("RGB", (6, 6), (255, 255, 255)).save(path)
    selection = load_selection(path)
    assert selection.mode == "L" and pixel(selection, (3, 3)) == 255


@pytest.mark.parametrize("load", [load_picture, load_source])
def test_unreadable_file_is_bad_input_naming_it(tmp_path, load):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(BadInputError, match="notes.png cannot be read as a picture"):
        load(path)
    with pytest.raises(BadInputError, match="does not exist"):
        load(tmp_path / "missing.png")


def test_decompression_bomb_refused(tmp_path):
    bomb = raw_png(30000, 30000, 8, 2, b"")
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(BadInputError, match="too large to open safely"):
        load_picture(path)
    with pytest.raises(BadResponseError, match="could not be read"):
        decode_result(bomb)
    # Far smaller than Pillow's own limit, still far larger than any answer of the API.
    with pytest.raises(BadResponseError):
        decode_result(raw_png(8000, 8000, 8, 0, b""))


def test_truncated_or_invalid_results_are_bad_responses():
    data = io.BytesIO()
    scene(300, 200).save(data, "PNG")
    with pytest.raises(BadResponseError, match="cut off"):
        decode_result(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(BadResponseError):
        decode_result(b"<html>502 Bad Gateway</html>")


# -- the upload ----------------------------------------------------------------------------
def payload_for(picture: Image.Image, selection, model="gpt-image-2"):
    bounds = selection.getbbox() if selection is not None else None
    region = plan_region(picture.width, picture.height,
                         Box.from_bounds(*bounds) if bounds else None)
    size = request_size(region.width, region.height, model)
    return region, build_payload(picture, selection, region, size)


def open_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


def test_mask_is_transparent_exactly_where_selected_away_from_the_corner():
    picture = scene(1200, 800).convert("RGBA")
    selection = Image.new("L", (1200, 800), 0)
    selection.paste(255, (900, 500, 1000, 580))
    region, payload = payload_for(picture, selection)
    assert region == Box(836, 436, 228, 208)
    mask = open_png(payload.mask)
    image = open_png(payload.image)
    assert mask.size == image.size == payload.size
    assert image.mode == "RGB"
    alpha = mask.getchannel("A")
    content = payload.content
    scale = content.width / region.width

    def canvas(x, y):  # a picture coordinate inside the region, in the canvas
        return (content.x + (x - region.x) * scale, content.y + (y - region.y) * scale)

    left, top = canvas(900, 500)
    right, bottom = canvas(1000, 580)
    inside = alpha.crop((math.ceil(left) + 1, math.ceil(top) + 1, int(right) - 1,
                         int(bottom) - 1))
    assert inside.getextrema() == (0, 0)
    assert alpha.getbbox() is not None
    # Everything outside the selection (padding included) is opaque: the transparent area's
    # bounding box is the selection's, grown by at most one picture pixel of resampling.
    transparent = alpha.point(lambda value: 255 if value == 0 else 0).getbbox()
    slack = scale + 1
    assert transparent[0] >= left - slack and transparent[1] >= top - slack
    assert transparent[2] <= right + slack and transparent[3] <= bottom + slack
    assert set(alpha.tobytes()) == {0, 255}


def test_no_mask_without_selection():
    _, payload = payload_for(scene(300, 200).convert("RGBA"), None)
    assert payload.mask is None


def circle_picture(width=640, height=360) -> Image.Image:
    picture = Image.new("RGBA", (width, height), (230, 230, 230, 255))
    ImageDraw.Draw(picture).ellipse((220, 80, 420, 280), fill=(10, 10, 10, 255))
    return picture


def dark_box(image: Image.Image) -> tuple:
    return image.convert("L").point(lambda value: 255 if value < 128 else 0).getbbox()


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-1", "dall-e-2"])
def test_letterbox_never_stretches_a_circle(model):
    picture = circle_picture()
    region, payload = payload_for(picture, None, model)
    canvas = open_png(payload.image)
    left, top, right, bottom = dark_box(canvas)
    assert (right - left) == pytest.approx(bottom - top, abs=2)
    placed = place_result(decode_result(payload.image), payload, picture)
    assert dark_box(placed) == pytest.approx((220, 80, 421, 281), abs=1)
    assert psnr(placed, picture) >= 35


def test_padding_repeats_the_edge_pixels():
    picture = circle_picture()
    _, payload = payload_for(picture, None, "gpt-image-1")  # 16:9 in 1536x1024: bars
    canvas = open_png(payload.image)
    content = payload.content
    assert content.y > 0 and content.x == 0
    top_row = canvas.crop((0, content.y, canvas.width, content.y + 1))
    assert canvas.crop((0, 0, canvas.width, 1)).tobytes() == top_row.tobytes()
    last_row = canvas.crop((0, content.bottom - 1, canvas.width, content.bottom))
    assert canvas.crop((0, canvas.height - 1, canvas.width, canvas.height)).tobytes() == \
        last_row.tobytes()


def test_result_at_another_size_still_lines_up():
    picture = circle_picture()
    _, payload = payload_for(picture, None)
    # A server that answers 1024x1024 whatever was asked stretches the whole canvas.
    returned = decode_result(payload.image).resize((1024, 1024), Image.Resampling.LANCZOS)
    placed = place_result(returned, payload, picture)
    assert placed.size == picture.size
    assert dark_box(placed) == pytest.approx((220, 80, 421, 281), abs=2)
    assert psnr(placed, picture) >= 30


def test_transparent_source_is_sent_flat_and_keeps_its_alpha():
    picture = scene(200, 100).convert("RGBA")
    alpha = Image.new("L", picture.size, 255)
    alpha.paste(0, (0, 0, 50, 100))
    alpha.paste(100, (50, 0, 100, 100))
    picture.putalpha(alpha)
    _, payload = payload_for(picture, None)
    sent = open_png(payload.image)
    assert sent.mode == "RGB"
    placed = place_result(decode_result(payload.image), payload, picture)
    assert placed.mode == "RGBA" and placed.getchannel("A").tobytes() == alpha.tobytes()


def test_upload_of_a_small_selection_in_a_large_layer_stays_small():
    width, height = 6000, 4000
    noise = Image.effect_noise((width, height), 40)
    picture = Image.merge("RGBA", (noise, noise.rotate(180), noise.transpose(
        Image.Transpose.FLIP_LEFT_RIGHT), Image.new("L", (width, height), 255)))
    selection = Image.new("L", (width, height), 0)
    ImageDraw.Draw(selection).ellipse((2750, 1900, 3149, 2199), fill=255)
    region, payload = payload_for(picture, selection)
    assert region == Box(2650, 1800, 600, 500)
    assert len(payload.image) + len(payload.mask) <= 4_000_000


# -- pictures the API takes as they are ----------------------------------------------------
def png_bytes(picture: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", **options)
    return buffer.getvalue()


def whole_payload(source, size=None):
    """build_payload for the whole picture without a selection, at `size` (its own)."""
    picture = source.picture
    region = Box(0, 0, *picture.size)
    return build_payload(picture, None, region, size or picture.size, source.png)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_opaque_png_at_its_own_size_is_uploaded_as_the_file_itself(tmp_path, mode):
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(scene(320, 240).convert(mode), compress_level=9))
    source = load_source(path)
    assert source.png == path.read_bytes()
    assert source.picture.mode == "RGBA" and source.picture.size == (320, 240)
    payload = whole_payload(source)
    assert payload.image == path.read_bytes() and payload.mask is None
    assert payload.content == Box(0, 0, 320, 240) and payload.size == (320, 240)


def test_file_is_encoded_again_when_it_is_not_sent_whole_at_its_own_size(tmp_path):
    path = tmp_path / "photo.png"
    picture = scene(320, 240)
    path.write_bytes(png_bytes(picture))
    source = load_source(path)
    assert source.png is not None
    rescaled = whole_payload(source, (640, 480))
    assert rescaled.image != source.png and open_png(rescaled.image).size == (640, 480)
    selection = Image.new("L", picture.size, 0)
    selection.paste(255, (100, 100, 140, 140))
    region = plan_region(320, 240, Box(100, 100, 40, 40))
    masked = build_payload(source.picture, selection, region,
                           request_size(region.width, region.height, "gpt-image-2"),
                           source.png)
    assert masked.image != source.png and masked.mask is not None


def _jpeg(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG")
    return buffer.getvalue()


def _exif_rotated(picture: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return png_bytes(picture, exif=exif)


def _with_gps(picture: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x8825] = {2: (52.0, 31.0, 0.0)}  # GPSInfo: where the photo was taken
    return png_bytes(picture, exif=exif)


def _with_text(picture: Image.Image) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Doe")
    return png_bytes(picture, pnginfo=info)


def _palette(picture: Image.Image) -> bytes:
    return png_bytes(picture.convert("P"))


def _with_transparent_colour(picture: Image.Image) -> bytes:
    return png_bytes(picture, transparency=(0, 0, 0))


@pytest.mark.parametrize("encode", [
    lambda picture: png_bytes(picture.convert("RGBA")),  # an alpha channel, even all opaque
    lambda picture: png_bytes(picture.convert("LA")),
    _palette,
    _with_transparent_colour,
    _exif_rotated,
    _with_gps,
    _with_text,
    lambda picture: raw_png(picture.width, picture.height, 16, 2,
                            b"".join(b"\0" + bytes(6 * picture.width)
                                     for _ in range(picture.height))),
    _jpeg,
], ids=["rgba", "la", "palette", "transparent-colour", "exif-rotated", "gps-exif", "text-chunk",
        "16-bit", "jpeg"])
def test_files_read_differently_or_with_metadata_are_encoded_again(tmp_path, encode):
    path = tmp_path / "photo.png"
    path.write_bytes(encode(scene(64, 48)))
    source = load_source(path, exif_transpose=True)
    assert source.png is None
    payload = whole_payload(source)
    sent = open_png(payload.image)
    assert payload.image != path.read_bytes() and sent.mode == "RGB"
    assert sent.size == source.picture.size


def test_larger_than_any_request_is_not_kept_as_bytes(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (4000, 2100), 90).save(path)
    assert load_source(path).png is None


def test_a_half_written_png_is_bad_input_through_load_source(tmp_path):
    good = png_bytes(scene(64, 48))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good[: len(good) // 2])  # a sound header, half the pixels
    with pytest.raises(BadInputError, match="cut.png cannot be read as a picture"):
        load_source(cut)


def _region(size, alpha=255) -> Image.Image:
    region = scene(*size).convert("RGBA")
    region.putalpha(alpha)
    return region


def _unpadded(size) -> Payload:
    return Payload(b"", None, Box(0, 0, *size), size)


def test_result_at_the_regions_size_is_kept_as_received():
    data = png_bytes(scene(96, 64))
    assert result_as_received(data, decode_result(data), _unpadded((96, 64)), _region((96, 64)))
    opaque_rgba = png_bytes(scene(96, 64).convert("RGBA"))
    assert result_as_received(opaque_rgba, decode_result(opaque_rgba), _unpadded((96, 64)),
                              _region((96, 64)))


@pytest.mark.parametrize("case", ["other-size", "padded", "region-alpha", "result-alpha",
                                  "16-bit", "jpeg"])
def test_result_that_needs_placing_is_not_kept_as_received(case):
    size = (96, 64)
    data = png_bytes(scene(*size))
    payload, region = _unpadded(size), _region(size)
    if case == "other-size":
        data = png_bytes(scene(192, 128))
    elif case == "padded":
        payload = Payload(b"", None, Box(0, 8, 96, 48), size)
    elif case == "region-alpha":
        region = _region(size, alpha=200)
    elif case == "result-alpha":
        data = png_bytes(_region(size, alpha=0))
    elif case == "16-bit":
        data = raw_png(96, 64, 16, 2, b"".join(b"\0" + bytes(6 * 96) for _ in range(64)))
    else:
        data = _jpeg(scene(*size))
    assert not result_as_received(data, decode_result(data), payload, region)


@pytest.mark.parametrize("size, box", [((900, 700), None), ((777, 1001), (10.5, 20, 300, 240))])
def test_large_resizes_in_strips_give_the_same_picture(monkeypatch, size, box):
    """imaging.lanczos splits a large resize between threads: the strips meet without a
    seam (within one level, the rounding of each strip's own filter weights)."""
    from gpt_image_edit import imaging

    picture = scene(320, 240)
    whole = picture.resize(size, Image.Resampling.LANCZOS, box=box)
    monkeypatch.setattr(imaging, "PARALLEL_RESIZE_PIXELS", 1)
    monkeypatch.setattr(imaging, "RESIZE_THREADS", 2)
    strips = imaging.lanczos(picture, size, box=box)
    assert strips.size == whole.size
    assert all(high <= 1 for _, high in ImageChops.difference(strips, whole).getextrema())


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_upload_png_holds_exactly_the_pixels(monkeypatch, mode, threads):
    """png_encoder writes the upload (Sub filter, RLE, halves on two threads): decoded by
    Pillow, it is the picture itself, in its mode, with nothing but pixel chunks."""
    from gpt_image_edit import png_encoder
    from gpt_image_edit.imaging import holds_only_pixels

    monkeypatch.setattr(png_encoder, "PARALLEL_BYTES", 1)
    picture = scene(301, 203)
    noise = Image.effect_noise((301, 203), 60)
    picture = Image.merge("RGB", [ImageChops.add(band, noise) for band in picture.split()])
    if mode == "RGBA":
        picture.putalpha(noise)
    picture = picture.convert(mode) if mode != "RGBA" else picture
    data = png_encoder.encode(picture, threads=threads)
    assert holds_only_pixels(data)
    with Image.open(io.BytesIO(data)) as decoded:
        decoded.load()
        assert decoded.format == "PNG" and decoded.mode == picture.mode
        assert decoded.tobytes() == picture.tobytes()
        if mode == "P":
            assert decoded.getpalette() == picture.getpalette()


@pytest.mark.parametrize("size", [(1, 1), (1, 40), (40, 1)])
def test_the_upload_png_of_a_thin_picture(monkeypatch, size):
    from gpt_image_edit import png_encoder

    monkeypatch.setattr(png_encoder, "PARALLEL_BYTES", 1)
    picture = Image.new("RGB", size, (12, 200, 7))
    with Image.open(io.BytesIO(png_encoder.encode(picture, threads=2))) as decoded:
        assert decoded.convert("RGB").tobytes() == picture.tobytes()
