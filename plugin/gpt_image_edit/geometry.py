"""Pure arithmetic: which part of a layer to send, at what size, and where it sits.

Written once for both sides of the job protocol: the worker imports it as
`gpt_image_edit.geometry`, and the installer copies this very file beside the GIMP host core
as `gpt_image_edit_geometry.py`, where GIMP 2.10's Python 2.7 and GIMP 3's Python 3 import
it. So it is valid Python 2.7 and 3, uses the standard library only (no Pillow), and rounds
the same way on both (never Python's `round`, which changed between them).
"""

from __future__ import absolute_import, division

import math
import re
from collections import namedtuple
from fractions import Fraction

try:  # in the worker package: its own error class, with its kind and exit code
    from .errors import BadInputError as SizeError
except (ImportError, ValueError, SystemError):  # beside the host core, a module of its own
    class SizeError(ValueError):
        """A size the model does not take; its text is the sentence to show."""

# Model families, by name prefix: a family's dated snapshots ("gpt-image-2-2026-04-21") and
# later versions ("gpt-image-2.5-preview") follow its rules.
FLEXIBLE_SIZE_FAMILIES = ("gpt-image-2",)
GPT_IMAGE_PREFIX = "gpt-image-"
FIXED_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
FIXED_SIZES_BY_MODEL = {
    "dall-e-2": ((256, 256), (512, 512), (1024, 1024)),
}
AUTO_SIZES_BY_MODEL = {
    # dall-e-2 edits only take squares; the largest keeps the most detail.
    "dall-e-2": ((1024, 1024),),
}

# The 2.x family's rules for WIDTHxHEIGHT (../shared/reference/images-edit-api.md).
SIDE_STEP = 16
MAX_ASPECT = 3.0
MAX_SIDE = 3840
MAX_PIXELS = 3840 * 2160
MIN_PIXELS = 655360
# What `auto` asks for: never below the models' native 1024x1024 (a smaller request wastes
# the model's resolution), never above 2560x1440 (beyond that is marked experimental).
AUTO_MIN_PIXELS = 1024 * 1024
AUTO_MAX_PIXELS = 2560 * 1440

# Context around a selection: the model needs to see the surroundings to match light,
# perspective and texture, but every pixel of context takes resolution from the selected
# area. A quarter of the selection's longer side keeps the selection the larger part of the
# request; at least 64 pixels so that a small selection still shows its neighbourhood.
MIN_CONTEXT = 64
CONTEXT_FRACTION = 0.25

SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


class Box(namedtuple("Box", "x y width height")):
    """A rectangle in pixels: top-left corner and size."""

    __slots__ = ()

    @property
    def right(self):
        return self.x + self.width

    @property
    def bottom(self):
        return self.y + self.height

    @classmethod
    def from_bounds(cls, x1, y1, x2, y2):
        """From corners (x2, y2 exclusive), as Pillow's getbbox and GIMP's bounds give them."""
        return cls(x1, y1, x2 - x1, y2 - y1)

    def bounds(self):
        """(left, top, right, bottom), as Pillow's crop takes it."""
        return self.x, self.y, self.right, self.bottom

    def as_dict(self):
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


def in_family(model, family):
    """`model` is `family` itself, a dated snapshot of it or a later version of it."""
    return model == family or (model.startswith(family)
                               and model[len(family):len(family) + 1] in ("-", "."))


def takes_flexible_sizes(model):
    """Models of the 2.x family take any WIDTHxHEIGHT within its limits."""
    return any(in_family(model, family) for family in FLEXIBLE_SIZE_FAMILIES)


def is_gpt_image(model):
    """Models of the GPT image families stream partial images and take reference pictures
    and `input_fidelity`; others (dall-e-2, a router's own models) get none of them."""
    return model.startswith(GPT_IMAGE_PREFIX)


def takes_input_fidelity(model):
    """The 2.x family keeps its inputs faithful by itself and refuses the field."""
    return is_gpt_image(model) and not takes_flexible_sizes(model)


def plan_region(layer_width, layer_height, selection):
    """The part of the layer an edit sends: the whole layer without a selection (None), else
    the selection's bounding box (a Box) grown by surrounding context and clipped to the
    layer."""
    if selection is None:
        return Box(0, 0, layer_width, layer_height)
    context = max(MIN_CONTEXT, int(math.ceil(max(selection.width, selection.height)
                                             * CONTEXT_FRACTION)))
    left = max(0, selection.x - context)
    top = max(0, selection.y - context)
    right = min(layer_width, selection.right + context)
    bottom = min(layer_height, selection.bottom + context)
    if right <= left or bottom <= top:
        return Box(0, 0, layer_width, layer_height)  # a selection outside the layer
    return Box(left, top, right - left, bottom - top)


def parse_size(size):
    """(width, height) of an explicit WIDTHxHEIGHT, None for "auto"."""
    if size.strip().lower() == "auto":
        return None
    match = SIZE_PATTERN.match(size)
    if not match:
        raise SizeError(u"The size '%s' is not understood: use auto or WIDTHxHEIGHT, for "
                        u"example 1536x1024." % size)
    return int(match.group(1)), int(match.group(2))


def check_size(size, model):
    """Parse `size` and check that `model` takes it; None for "auto"."""
    parsed = parse_size(size)
    if parsed is not None:
        _check_explicit(parsed, model)
    return parsed


def request_size(width, height, model, size="auto"):
    """The pixel size (width, height) to ask the API for, for a region of width x height."""
    explicit = check_size(size, model)
    if explicit is not None:
        return explicit
    if takes_flexible_sizes(model):
        return _flexible_auto_size(width, height)
    choices = AUTO_SIZES_BY_MODEL.get(model, FIXED_SIZES)
    return min(choices, key=lambda choice: _aspect_distance(choice, width, height))


def letterbox(width, height, canvas_width, canvas_height):
    """Where a width x height region sits in the canvas: scaled with its aspect ratio kept,
    as large as fits, centered. The rest of the canvas is padding."""
    scale = min(canvas_width / width, canvas_height / height)
    content_width = min(canvas_width, max(1, round_half_up(width * scale)))
    content_height = min(canvas_height, max(1, round_half_up(height * scale)))
    return Box((canvas_width - content_width) // 2, (canvas_height - content_height) // 2,
               content_width, content_height)


def sent_size(width, height, canvas_width, canvas_height):
    """The size at which a width x height region reaches the API inside its request canvas:
    its letterbox content, but never larger than the region itself (a host exports the
    region at this size; the worker enlarges a smaller region itself)."""
    content = letterbox(width, height, canvas_width, canvas_height)
    if content.width >= width or content.height >= height:
        return width, height
    return content.width, content.height


def exact_scale(width, height, canvas_width, canvas_height):
    """(numerator, denominator): the one factor, as a fraction in lowest terms, that takes a
    width x height region down into the request canvas with the canvas's own width (or
    height) exactly; None when the region reaches the API at its own size (sent_size).

    A host that scales the region itself (GIMP's layer previews, docs/job-protocol.md,
    "A scaled source") scales both sides by this one factor, so that the worker can map
    the result back onto the region exactly: scaled_size says what comes of it."""
    if sent_size(width, height, canvas_width, canvas_height) == (width, height):
        return None
    if canvas_width * height <= canvas_height * width:  # the width is what binds
        factor = Fraction(canvas_width, width)
    else:
        factor = Fraction(canvas_height, height)
    return factor.numerator, factor.denominator


def scaled_size(width, height, numerator, denominator):
    """A width x height region scaled by numerator/denominator, in whole pixels: the last
    column (row) is kept when the region covers only part of it."""
    return (-(-width * numerator // denominator), -(-height * numerator // denominator))


def round_half_up(value):
    """The nearest whole number, halves up: the same on Python 2.7 and 3."""
    return int(math.floor(value + 0.5))


def _check_explicit(parsed, model):
    width, height = parsed
    if width < 1 or height < 1:
        raise SizeError(u"The size %dx%d has an empty side: use auto or a size such as "
                        u"1536x1024." % (width, height))
    if takes_flexible_sizes(model):
        _check_flexible(width, height, model)
        return
    allowed = FIXED_SIZES_BY_MODEL.get(model, FIXED_SIZES if _is_known(model) else None)
    if allowed is not None and (width, height) not in allowed:
        names = ", ".join("%dx%d" % choice for choice in allowed)
        raise SizeError(u"%s does not take the size %dx%d: use auto or one of %s."
                        % (model, width, height, names))


def _is_known(model):
    """Models whose sizes the API facts list; an unknown model's sizes are its endpoint's
    business, so they are passed on unchecked."""
    return is_gpt_image(model) or model in FIXED_SIZES_BY_MODEL


def _check_flexible(width, height, model):
    problem = None
    if width % SIDE_STEP or height % SIDE_STEP:
        problem = "both sides must be multiples of %d" % SIDE_STEP
    elif max(width, height) > MAX_ASPECT * min(width, height):
        problem = "the longer side may be at most three times the shorter"
    elif max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        problem = "it may be at most 3840x2160"
    elif width * height < MIN_PIXELS:
        problem = "it must have at least %d pixels, 1024x640 for example" % MIN_PIXELS
    if problem:
        raise SizeError(u"%s does not take the size %dx%d (%s): use auto or a size such as "
                        u"1536x1024." % (model, width, height, problem))


def _flexible_auto_size(width, height):
    """Multiples of 16 with the region's aspect ratio (clamped to 1:3..3:1; the letterbox
    pads the rest) and about the region's own pixel count, within the auto bounds."""
    aspect = min(MAX_ASPECT, max(1 / MAX_ASPECT, width / height))
    pixels = min(AUTO_MAX_PIXELS, max(AUTO_MIN_PIXELS, width * height))
    request_height = _round_to_step(math.sqrt(pixels / aspect))
    request_width = _round_to_step(request_height * aspect)
    while request_width * request_height > AUTO_MAX_PIXELS:
        if request_width * height >= request_height * width:
            request_width -= SIDE_STEP
        else:
            request_height -= SIDE_STEP
    # Rounding both sides may overshoot 3:1 by a step: trim the longer side back.
    request_width = min(request_width, int(MAX_ASPECT) * request_height)
    request_height = min(request_height, int(MAX_ASPECT) * request_width)
    return request_width, request_height


def _round_to_step(value):
    return max(SIDE_STEP, round_half_up(value / SIDE_STEP) * SIDE_STEP)


def _aspect_distance(choice, width, height):
    return abs(math.log((choice[0] / choice[1]) / (width / height)))
