"""Reference pictures: sent after the edited picture, for "make it look like this".

The API takes up to 16 pictures in one edit (repeated `image[]` parts), the mask applying to
the first, so up to 15 references. A reference is only looked at, never edited: it goes
without mask and without metadata (its pixels re-encoded as PNG), scaled down so that its
longer side is at most REFERENCE_MAX_SIDE, more than the model reads of an input picture
(the API scales inputs into 2048 x 2048 and then to 768 pixels on the shorter side) and far
less to upload than a photo.
"""

from __future__ import annotations

import io

from PIL import Image

from .errors import BadInputError

MAX_PICTURES = 16
MAX_REFERENCES = MAX_PICTURES - 1
REFERENCE_MAX_SIDE = 2048
PNG_COMPRESS_LEVEL = 1
# Transparent parts are flattened onto mid grey, as the edited picture's are (imaging.py):
# an alpha channel in a picture would be read as a mask.
FLATTEN_BACKGROUND = (128, 128, 128)


def check_reference_count(count: int) -> None:
    """Refuse, before anything is loaded or sent, more references than the API takes."""
    if count > MAX_REFERENCES:
        raise BadInputError(f"{count} reference pictures were given, but an edit takes at most "
                            f"{MAX_REFERENCES} ({MAX_PICTURES} pictures with the one edited): "
                            "leave some out.")


def reference_png(picture: Image.Image) -> bytes:
    """`picture` (any mode, as loaded) as the PNG bytes to send: 8-bit RGB, scaled down (never
    up) to at most REFERENCE_MAX_SIDE on its longer side, with no metadata."""
    scale = REFERENCE_MAX_SIDE / max(picture.size)
    rgba = picture.convert("RGBA")
    if scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        rgba = rgba.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    flat = Image.new("RGB", rgba.size, FLATTEN_BACKGROUND)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    buffer = io.BytesIO()
    flat.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def load_references(paths) -> list[bytes]:
    """The PNG bytes to send for each reference file (EXIF orientation applied)."""
    from .imaging import load_picture

    paths = list(paths)
    check_reference_count(len(paths))
    return [reference_png(load_picture(path, exif_transpose=True)) for path in paths]
