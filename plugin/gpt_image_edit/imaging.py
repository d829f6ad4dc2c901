"""Pictures in and out: load and normalise them, build what the API receives (picture and
mask), and map what it sends back onto the region's exact pixels.

Pictures the API can take as they are go untouched both ways: a whole opaque PNG sent at its
own size is uploaded as the file's own bytes (uploads_file_as_is), and a result that already
is the region's exact pixels is kept as the bytes received (result_as_received). Encoding a
large PNG costs far more than anything else the worker does on its side.

The request canvas holds the region scaled with its aspect ratio kept (geometry.letterbox);
the rest of the canvas is padding, cut away again when the result is placed. Nothing is
ever stretched.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from . import png_encoder
from .errors import BadInputError, BadResponseError
from .geometry import MAX_PIXELS, Box, letterbox

# The API never returns more than 3840x2160; anything far larger is not a real answer.
RESULT_MAX_PIXELS = 4 * 3840 * 2160
RESULT_FORMATS = ("PNG", "JPEG", "WEBP")
# Transparent pixels are flattened onto mid grey before upload: their colour is invisible
# in the result anyway (it keeps the source's alpha), and grey pulls the model nowhere.
FLATTEN_BACKGROUND = (128, 128, 128)
DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
                 ValueError, EOFError)
# The PNG signature and the IHDR chunk up to the colour type: what a file must start with to
# be sent as it is. Pillow's modes do not tell 8 from 16 bits per channel (16-bit RGB opens
# as "RGB"), the header does.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HEADER_LENGTH = 26
PNG_GRAY, PNG_RGB, PNG_RGBA = 0, 2, 6
# The chunks that are the picture itself; a file with any other is re-encoded before upload.
PIXEL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"})
# Resizes to or from at least this many pixels run in strips on two threads (Pillow lets go
# of the GIL while it resamples; GIMP waits meanwhile): a 24 MP result scaled up goes from
# about 0.33 s to 0.21 s on two cores, a 24 MP layer scaled down to the request from 0.12 s
# to 0.07 s, the same picture within one level.
PARALLEL_RESIZE_PIXELS = 4_000_000
RESIZE_THREADS = min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class Payload:
    """What one edit uploads. `content` is where the region sits inside the request canvas
    of `size` (width, height); `mask` is None when the whole region may change. `covered`
    (width, height from the content's corner, in canvas pixels) is the part of the content
    that is the region, when a host scaled the region by a factor whose last pixel reaches
    past it (a scaled source); None: all of the content."""

    image: bytes
    mask: bytes | None
    content: Box
    size: tuple[int, int]
    covered: tuple[float, float] | None = None


@dataclass(frozen=True)
class Source:
    """A picture to edit: its pixels as 8-bit RGBA and, only when the file is an opaque 8-bit
    RGB or grayscale PNG whose pixels are shown as stored (no EXIF orientation turns them),
    the file's bytes, which can then go to the API untouched (uploads_file_as_is)."""

    picture: Image.Image
    png: bytes | None = field(default=None, repr=False)


def load_picture(path, exif_transpose: bool = False) -> Image.Image:
    """The picture at `path` as 8-bit RGBA, whatever its mode and depth."""
    return _picture_of(_open(path), exif_transpose)


def load_source(path, exif_transpose: bool = False) -> Source:
    """The picture at `path`, as load_picture, with the file's bytes when they can be sent as
    they are. The file is read once: the pixels are decoded from those same bytes."""
    data = _read_if_png_as_is(path)
    if data is None:
        return Source(load_picture(path, exif_transpose))
    image = _open(path, io.BytesIO(data))
    # Metadata never leaves the machine: a file holding anything but pixel chunks (EXIF with
    # a GPS position, text, ICC profiles, private chunks, data after the end) is re-encoded.
    keep = (holds_only_pixels(data) and _opaque(image)
            and not getattr(image, "is_animated", False))
    return Source(_picture_of(image, exif_transpose), data if keep else None)


def picture_size(path) -> tuple[int, int]:
    """The size load_source(path, exif_transpose=True) gives, from the file's header alone
    (an estimate of a large batch decodes nothing); an unreadable file gets load_source's
    sentence."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)
    except Exception:
        return load_source(path, exif_transpose=True).picture.size
    return (height, width) if turned else (width, height)


def load_raw(path, size: tuple[int, int], mode: str) -> Image.Image:
    """Raw 8-bit pixels of `mode` ("RGBA", "RGB" or "L"), `size` (width, height), rows top first
    and nothing else (docs/job-protocol.md, protocol 2): what a host hands over instead of
    a PNG, so that neither side spends seconds compressing a large layer."""
    width, height = size
    expected = width * height * len(mode)
    name = Path(path).name
    try:
        with open(path, "rb") as stream:
            data = stream.read(expected + 1)
    except FileNotFoundError:
        raise BadInputError(f"{path} does not exist: start the edit again.") from None
    except OSError as error:
        raise BadInputError(f"{name} cannot be read ({error.strerror or type(error).__name__})"
                            ": start the edit again.") from None
    if len(data) != expected:
        raise BadInputError(f"{name} holds {len(data)} bytes, not the {expected} of "
                            f"{width}x{height} {mode} pixels: start the edit again.")
    # Shares the bytes read (no second copy of a 96 MB layer); Pillow copies before writing.
    return Image.frombuffer(mode, size, data, "raw", mode, 0, 1)


def raw_writer(image: Image.Image, rows: int = 256):
    """A writer for files.replace_atomically: the image's raw pixels in strips of `rows`,
    so a 24 MP layer is never held twice."""
    def write(stream):
        for top in range(0, image.height, rows):
            stream.write(image.crop((0, top, image.width, min(top + rows, image.height)))
                         .tobytes())
    return write


def to_size(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The image scaled to `size` when it is not that size already (Lanczos, as results
    are placed)."""
    if image.size == tuple(size):
        return image
    return lanczos(image, tuple(size))


def lanczos(image: Image.Image, size: tuple[int, int], box=None,
            reducing_gap: float | None = None) -> Image.Image:
    """Image.resize with Lanczos; a large output is made in horizontal strips on
    RESIZE_THREADS threads, each strip resized from its own part of `box` (Pillow reads
    the pixels around a box too, so the strips meet seamlessly)."""
    width, height = size
    box = tuple(box) if box is not None else (0, 0, image.width, image.height)
    source_pixels = (box[2] - box[0]) * (box[3] - box[1])
    if RESIZE_THREADS < 2 or max(width * height, source_pixels) < PARALLEL_RESIZE_PIXELS:
        return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=reducing_gap)
    tops = [height * part // RESIZE_THREADS for part in range(RESIZE_THREADS + 1)]
    scale = (box[3] - box[1]) / height

    def strip(part):
        top, bottom = tops[part], tops[part + 1]
        return image.resize((width, bottom - top), Image.Resampling.LANCZOS,
                            box=(box[0], box[1] + top * scale, box[2], box[1] + bottom * scale),
                            reducing_gap=reducing_gap)

    with ThreadPoolExecutor(RESIZE_THREADS) as pool:
        strips = list(pool.map(strip, range(RESIZE_THREADS)))
    resized = Image.new(strips[0].mode, size, None)  # not filled: the strips cover it
    for top, part in zip(tops, strips):
        resized.paste(part, (0, top))
    return resized


def load_selection(path, exif_transpose: bool = False) -> Image.Image:
    """A grayscale selection (255 selected, 0 not) as 8-bit L."""
    image = _open(path)
    if exif_transpose:
        image = ImageOps.exif_transpose(image)
    return _to_8bit(image, "L")


def build_payload(picture: Image.Image, selection: Image.Image | None, region: Box,
                  request_size: tuple[int, int], picture_png: bytes | None = None,
                  covered: tuple[float, float] | None = None) -> Payload:
    """The region of `picture` (and of `selection`, the same size) as the API wants it.
    `picture_png` is Source.png: the file itself, sent when uploads_file_as_is says so;
    `covered` is Payload.covered (a scaled source fills the canvas's width or height, so
    its content is the picture itself, unscaled)."""
    content = letterbox(region.width, region.height, *request_size)
    if uploads_file_as_is(picture_png, picture.size, selection, region, request_size):
        return Payload(picture_png, None, content, tuple(request_size), covered)
    with ThreadPoolExecutor(1) as pool:
        # The mask is made and encoded beside the picture (most of either is Pillow and zlib
        # work that lets go of the GIL): 0.01 s of a selection's edit.
        mask = None if selection is None else pool.submit(
            lambda: _encode_png(_api_mask(selection.crop(region.bounds()), content,
                                          request_size)))
        flat = _flatten(crop(picture, region))
        canvas = _pad(_resize(flat, (content.width, content.height)), content, request_size)
        image = _encode_png(canvas)
    return Payload(image, mask and mask.result(), content, tuple(request_size), covered)


def uploads_file_as_is(picture_png: bytes | None, picture_size: tuple[int, int],
                       selection: Image.Image | None, region: Box,
                       request_size: tuple[int, int]) -> bool:
    """Whether the upload is the picture's file itself: there is one (Source.png, so an
    opaque 8-bit RGB or grayscale PNG), the whole picture is edited (no mask) and it is
    asked for at its own size, so nothing would be cropped, scaled, padded or flattened."""
    return (picture_png is not None and selection is None
            and region == Box(0, 0, *picture_size)
            and tuple(request_size) == tuple(picture_size))


def decode_result(data: bytes) -> Image.Image:
    """One returned picture, fully decoded, in its own mode; unreadable data is a
    BadResponseError."""
    try:
        image = Image.open(io.BytesIO(data), formats=RESULT_FORMATS)
        if image.width * image.height > RESULT_MAX_PIXELS:
            raise Image.DecompressionBombError(f"{image.width}x{image.height}")
        image.load()
        return image
    except DECODE_ERRORS:
        raise BadResponseError("WisGate sent a picture that could not be read (it was cut "
                               "off or is not a picture): try again.") from None


def place_result(result: Image.Image, payload: Payload, region_picture: Image.Image,
                 size: tuple[int, int] | None = None) -> Image.Image:
    """The result's content box (its covered part) mapped back onto the region: exactly the
    region's size (`size`, for a scaled source; else region_picture's), RGBA with the
    source's alpha (RGB for an RGB source, which has none)."""
    placed = lanczos(result.convert("RGB"), size or region_picture.size,
                     box=region_box(result, payload))
    if region_picture.mode == "RGB":
        return placed
    placed.putalpha(region_picture.getchannel("A"))
    return placed


def region_box(answer: Image.Image, payload: Payload) -> tuple[float, ...]:
    """Where the region lies in a picture the API answered (a result, or a live preview):
    the content box, its covered part for a scaled source, scaled with the answer, so that
    an answer at another size than asked still lines up."""
    scale_x = answer.width / payload.size[0]
    scale_y = answer.height / payload.size[1]
    content = payload.content
    width, height = payload.covered or (content.width, content.height)
    return (content.x * scale_x, content.y * scale_y,
            (content.x + width) * scale_x, (content.y + height) * scale_y)


def preview_picture(partial: Image.Image, payload: Payload,
                    region_size: tuple[int, int]) -> Image.Image:
    """A live preview as cheaply as it can be shown: the partial image's content box (what
    maps onto the region), opaque RGB, at the model's own size or the region's when that
    is smaller. Hosts scale it up to the placement; nothing here scales it up to a 24 MP
    region or compresses it."""
    box = tuple(round(side) for side in region_box(partial, payload))
    picture = partial.convert("RGB")
    if box != (0, 0) + picture.size:
        picture = picture.crop(box)
    width, height = region_size
    if width * height < picture.width * picture.height:
        picture = picture.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return picture


def result_as_received(data: bytes, result: Image.Image, payload: Payload,
                       region_picture: Image.Image) -> bool:
    """Whether the received bytes (`data`, decoded as `result` by decode_result) already are
    what place_result makes of them, so they can be written as they are: an opaque 8-bit RGB
    PNG (or RGBA, all opaque) exactly the region's size, for a request without padding to
    cut away, and an opaque region (the placed layer takes the source's alpha)."""
    return (result.format == "PNG" and _png_header_is(data, 8, (PNG_RGB, PNG_RGBA))
            and payload.covered is None and result.size == region_picture.size
            and payload.content == Box(0, 0, *payload.size)
            and _opaque(result) and _opaque(region_picture))


def _read_if_png_as_is(path) -> bytes | None:
    """The whole file when its header says it is an 8-bit RGB or grayscale PNG that some
    model could take at its own size; None otherwise (and for any trouble reading it, which
    _open then explains), so that large files are never held in memory as bytes."""
    try:
        with open(path, "rb") as stream:
            header = stream.read(PNG_HEADER_LENGTH)
            if not _png_header_is(header, 8, (PNG_GRAY, PNG_RGB)):
                return None
            width = int.from_bytes(header[16:20], "big")
            height = int.from_bytes(header[20:24], "big")
            if width * height > MAX_PIXELS:
                return None
            return header + stream.read()
    except OSError:
        return None


def holds_only_pixels(data: bytes) -> bool:
    """Whether a PNG file is nothing but its signature and PIXEL_CHUNKS, each whole, ending
    with IEND and nothing after it."""
    if data[:8] != PNG_SIGNATURE:
        return False
    position = 8
    while position + 12 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        if kind not in PIXEL_CHUNKS:
            return False
        position += 12 + length
        if kind == b"IEND":
            return position == len(data)
    return False


def _png_header_is(data: bytes, bit_depth: int, colour_types: tuple[int, ...]) -> bool:
    return (len(data) >= PNG_HEADER_LENGTH and data[:8] == PNG_SIGNATURE
            and data[12:16] == b"IHDR" and data[24] == bit_depth and data[25] in colour_types)


def _opaque(image: Image.Image) -> bool:
    if "transparency" in image.info:
        return False
    return "A" not in image.getbands() or image.getchannel("A").getextrema() == (255, 255)


def _picture_of(image: Image.Image, exif_transpose: bool) -> Image.Image:
    if exif_transpose:
        image = ImageOps.exif_transpose(image)
    return _to_8bit(image, "RGBA")


EXIF_ORIENTATION = 0x0112


def _open(path, stream=None) -> Image.Image:
    """Open and decode (from `stream` when given, else from `path`) with Pillow's
    decompression-bomb guard; failures name the file."""
    name = Path(path).name
    try:
        image = Image.open(stream if stream is not None else path)
        image.load()
        return image
    except FileNotFoundError:
        raise BadInputError(f"{path} does not exist: check the file name.") from None
    except Image.DecompressionBombError:
        raise BadInputError(f"{name} is too large to open safely: scale it down "
                            "and try again.") from None
    except DECODE_ERRORS:
        raise BadInputError(f"{name} cannot be read as a picture: save it as PNG or "
                            "JPEG and try again.") from None


def _to_8bit(image: Image.Image, mode: str) -> Image.Image:
    if image.mode.startswith("I"):
        # 16-bit grayscale: Pillow's convert would clip at 255 instead of scaling.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    elif image.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK"):
        image = image.convert("RGB")  # YCbCr, LAB, HSV, F and the like
    return image if image.mode == mode else image.convert(mode)


def crop(picture: Image.Image, region: Box) -> Image.Image:
    """The region of the picture; the picture itself when the region is all of it (a copy
    of a 24 MP layer costs a tenth of a second). Nothing changes either in place."""
    if region == Box(0, 0, *picture.size):
        return picture
    return picture.crop(region.bounds())


def _flatten(region: Image.Image) -> Image.Image:
    """RGB: the API would read any alpha in the picture as a mask."""
    if region.mode == "RGB":
        return region
    alpha = region.getchannel("A")
    if alpha.getextrema() == (255, 255):
        return region.convert("RGB")
    flat = Image.new("RGB", region.size, FLATTEN_BACKGROUND)
    flat.paste(region, mask=alpha)
    return flat


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos both ways: of Pillow's filters it loses the least over the round trip to the
    request size and back (measured: a 37x23 region sent at 1280x800 comes back at 35.5 dB
    with Lanczos up, 34.4 dB with bicubic up)."""
    if image.size == size:
        return image
    # reducing_gap shrinks by whole factors first (a box average), then Lanczos does the
    # rest. At 1.0 a 6000x4000 layer sent at 2336x1557 is halved first: 2.5 times faster
    # than at 3.0 (which does not halve it), and 49 dB from a plain Lanczos (measured on a
    # textured photo), far below anything the model could notice. Only when shrinking.
    return lanczos(image, size, reducing_gap=1.0)


def _pad(content_image: Image.Image, content: Box, size: tuple[int, int]) -> Image.Image:
    """The canvas with the content in place and its edge pixels repeated into the padding.

    Edge replication rather than a flat fill: the model sees the scene continue instead of
    a frame it might redraw, and the resampling that maps the result back reads a few
    padding pixels at the content's border, which must not bleed a foreign colour in."""
    if content_image.size == size:
        return content_image
    width, height = size
    canvas = Image.new("RGB", size)
    canvas.paste(content_image, (content.x, content.y))
    nearest = Image.Resampling.NEAREST
    if content.x > 0:
        left = content_image.crop((0, 0, 1, content.height))
        canvas.paste(left.resize((content.x, content.height), nearest), (0, content.y))
    if content.right < width:
        right = content_image.crop((content.width - 1, 0, content.width, content.height))
        canvas.paste(right.resize((width - content.right, content.height), nearest),
                     (content.right, content.y))
    if content.y > 0:
        top = canvas.crop((0, content.y, width, content.y + 1))
        canvas.paste(top.resize((width, content.y), nearest), (0, 0))
    if content.bottom < height:
        bottom = canvas.crop((0, content.bottom - 1, width, content.bottom))
        canvas.paste(bottom.resize((width, height - content.bottom), nearest),
                     (0, content.bottom))
    return canvas


def _api_mask(selection: Image.Image, content: Box, size: tuple[int, int]) -> Image.Image:
    """RGBA the canvas's size: alpha 0 where the API may change the picture (wherever any
    selected pixel lands after scaling, so a feathered edge is editable all the way out),
    opaque elsewhere, padding included."""
    editable = selection.point(lambda value: 255 if value > 0 else 0)
    if editable.size != (content.width, content.height):
        editable = editable.resize((content.width, content.height),
                                   Image.Resampling.BILINEAR)
        editable = editable.point(lambda value: 255 if value > 0 else 0)
    canvas = Image.new("L", size, 0)
    canvas.paste(editable, (content.x, content.y))
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.putalpha(ImageOps.invert(canvas))
    return mask


def _encode_png(image: Image.Image) -> bytes:
    """Fast PNG compression (png_encoder): a multi-megapixel request notices the time far
    more than a few bytes."""
    return png_encoder.encode(image)
