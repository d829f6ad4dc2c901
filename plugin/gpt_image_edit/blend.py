"""How a result meets the picture (product.md, "Blending"): `none`, `feather`, `seamless`.

The input is the region as it was sent (its source pixels and, for a selection edit, the
selection), and one result already placed on that region (imaging.place_result). The output
is the result picture (colour corrected for `seamless`) and the mask that shows it: in GIMP
that mask becomes the result layer's mask, so the blend stays non-destructive and paintable;
the command-line tool composites through it.

Pillow only. Everything that runs at full resolution is one of Pillow's per-pixel C
operations (point tables, Gaussian blur, resize, paste); the statistics that decide the
colour correction and where the model changed the picture are taken on small copies of the
region, where plain Python is fast enough. numpy would save nothing measurable here (see
docs/blending.md for the 24 MP timings).
"""

from __future__ import annotations

import logging
import math
import operator
import statistics
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageFilter

from .errors import BadInputError

log = logging.getLogger(__name__)

BLEND_MODES = ("none", "feather", "seamless")
DEFAULT_BLEND = "seamless"

# The soft edge of `feather`: 2 % of the selection's shorter side, never under 3 pixels, all
# of it inside the selection.
FEATHER_FRACTION = 0.02
FEATHER_MIN = 3

# Colour drift is measured on a copy of at most this many pixels on its longer side: drift is
# a property of the whole picture, and the model's softness and noise average away there.
DRIFT_SIDE = 128
# Pixels whose difference is further than this from the typical one (levels) are where the
# model really changed something, not drift: left out of the measurement.
AGREE_LEVELS = 24
# The fit's second pass keeps pixels within this many levels of the first fit.
RESIDUAL_LEVELS = 10
# The fit's gain is pulled towards 1 as if the pixels had this much more spread (levels
# squared): a flat ring (a blue sky) cannot tell gain from offset, and then says offset.
GAIN_PRIOR = 400.0
GAIN_LIMITS = (0.8, 1.25)
# Fewer agreeing pixels than this (in the small copy) are no measurement.
MIN_SAMPLES = 64
# Without a selection, a shift of more than this (levels, at mid grey) in any channel, or a
# model that changed more than half the picture, is taken as the edit asked for ("make it
# warmer"), not as drift: then nothing is corrected and the whole result is shown.
MAX_WHOLE_DRIFT = 16
MIN_AGREEING_SHARE = 0.5

# Where a whole-layer edit changed the picture is found on a copy of at most this many pixels
# on its longer side, blurred a little: the model's softness and resampling disappear there,
# real changes stay.
CHANGE_SIDE = 1024
CHANGE_BLUR = 1.0
CHANGE_LEVELS = 20
EDGE_SHARE = 0.5
# The change mask is grown and softened at full resolution by this Gaussian (pixels); its
# edge lies entirely outside the change, so the change is kept whole.
CHANGE_SOFTNESS = 4.0


@dataclass
class Blended:
    """One result ready to place: `picture` (RGBA, the region's size) is what the result
    layer holds; `mask` (L, the same size, 255 where the result shows) is its layer mask, or
    None for "the selection as it was" (no mask at all without a selection), exactly as
    before blending existed. `changed` tells whether `picture` differs from the result as
    placed (a colour correction), so the file as received cannot stand in for it."""

    picture: Image.Image
    mask: Image.Image | None
    changed: bool = False


@dataclass(frozen=True)
class Drift:
    """Per channel `source ≈ gain * result + offset`: the model's colour drift, inverted."""

    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offsets: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def is_identity(self) -> bool:
        return all(abs(gain * value + offset - value) < 0.5
                   for gain, offset in zip(self.gains, self.offsets) for value in (0, 255))

    def largest_shift(self, level: int = 128) -> float:
        return max(abs(gain * level + offset - level)
                   for gain, offset in zip(self.gains, self.offsets))

    def table(self, mode: str) -> list[int]:
        """The correction as a point table for an RGB or RGBA picture (alpha kept)."""
        table = []
        for gain, offset in zip(self.gains, self.offsets):
            table += [min(255, max(0, round(gain * value + offset))) for value in range(256)]
        return table + list(range(256)) * (len(mode) - 3)


def check_blend(mode) -> str:
    if mode not in BLEND_MODES:
        raise BadInputError(f"The blend '{mode}' is not one of {', '.join(BLEND_MODES)}: "
                            "choose one of them.")
    return mode


class Blender:
    """Blends the results of one edit, one at a time (a variant's full-size pictures can be
    let go before the next is made): what depends only on the source and the selection (the
    mask of a selection edit, the source's small copies) is made once and shared, so the
    variants of a selection edit share one mask object."""

    def __init__(self, mode: str, source: Image.Image, selection: Image.Image | None,
                 size: tuple[int, int] | None = None,
                 covered: tuple[float, float] | None = None):
        """`source` RGBA and `selection` L (None for a whole-layer edit), the region's size.
        A whole-layer edit's source may instead be the region scaled down by the host
        (opaque, a scaled source): `size` is then the region's size, and `covered` the part
        of `source` (from its corner) that is the region."""
        self.mode = check_blend(mode)
        self.source = source
        self.selection = selection
        self.size = size or source.size
        self.covered = covered
        self._mask = None
        self._small = None

    def blend(self, result: Image.Image) -> Blended:
        """`result` (RGBA, the region's size, as imaging.place_result makes it) blended."""
        if self.mode == "none" or (self.mode == "feather" and self.selection is None):
            return Blended(result, None)
        if self.selection is None:
            return self._seamless_whole(result)
        if self._mask is None:
            self._mask = feather_mask(self.selection)
        if self.mode == "feather":
            return Blended(result, self._mask)
        factor = _factor(self.source.size, DRIFT_SIDE)
        if self._small is None:
            outside = _reduced(self.selection, factor).point(_AT_ZERO)  # nothing selected
            self._small = (_reduced(self.source, factor),
                           ImageChops.multiply(_opaque_blocks(self.source, factor), outside))
        small_source, usable = self._small
        measured = measure_drift(small_source, _reduced(result, factor), usable)
        log.info("Seamless with a selection: %s", measured)
        picture, changed = _corrected(result, measured.drift)
        return Blended(picture, self._mask, changed)

    def _seamless_whole(self, result: Image.Image) -> Blended:
        """A whole-layer edit: the drift measured where result and source agree and taken
        out, and a soft mask of where the model really changed the picture, so that
        everywhere else the source stays at its full resolution and detail. A model that
        shifted the colours of most of the picture, or by more than MAX_WHOLE_DRIFT, did what
        was asked: its result is shown whole, as sent."""
        factor = _factor(self.size, CHANGE_SIDE)
        small_result = _reduced(result, factor)
        if self._small is None:
            self._small = self._small_source(factor, small_result.size)
        small_source, usable = self._small
        measured = measure_drift(small_source, small_result, usable)
        log.info("Seamless on the whole layer: %s", measured)
        if (measured.agreeing < MIN_AGREEING_SHARE
                or measured.drift.largest_shift() > MAX_WHOLE_DRIFT):
            return Blended(result, None)
        picture, changed = _corrected(result, measured.drift)
        small_corrected = _corrected(small_result, measured.drift)[0]
        return Blended(picture, change_mask(small_source, small_corrected, self.size), changed)

    def _small_source(self, factor: int, size: tuple[int, int]) -> tuple[Image.Image,
                                                                          Image.Image]:
        """The source's small copy at `size` (the result's, reduced by `factor`) and where
        it is opaque; a scaled source's covered part is brought to that size by area."""
        if self.covered is None:
            return _reduced(self.source, factor), _opaque_blocks(self.source, factor)
        small = self.source.convert("RGB").resize(size, Image.Resampling.BOX,
                                                  box=(0, 0) + tuple(self.covered))
        return small, Image.new("L", size, 255)


def blend_results(mode: str, source: Image.Image, results, selection: Image.Image | None,
                  ) -> list[Blended]:
    """Each of `results` blended into `source` as `mode` says (Blender, for a list)."""
    blender = Blender(mode, source, selection)
    return [blender.blend(result) for result in results]


def blend_result(mode: str, source: Image.Image, result: Image.Image,
                 selection: Image.Image | None) -> Blended:
    """One result blended into `source` as `mode` says."""
    return Blender(mode, source, selection).blend(result)


def feather_width(selection: Image.Image) -> int:
    """Pixels of soft edge for a selection: FEATHER_FRACTION of its bounding box's shorter
    side, at least FEATHER_MIN."""
    bounds = selection.getbbox()
    if bounds is None:
        return FEATHER_MIN
    shorter = min(bounds[2] - bounds[0], bounds[3] - bounds[1])
    return max(FEATHER_MIN, round(shorter * FEATHER_FRACTION))


def feather_mask(selection: Image.Image) -> Image.Image:
    """The selection with a soft edge about feather_width pixels wide inside it: 0 on and
    outside the selection's edge, full strength that far inside. Outside the selection it is
    0 (nothing changes there); a selection that is already soft keeps its own softness."""
    bounds = selection.getbbox()
    if bounds is None:
        return selection.copy()
    width = feather_width(selection)
    sigma = width / 2
    # Only the selection's box (and what the blur reaches) is worked on; a wide edge is
    # blurred on a smaller copy, as smooth and many times faster.
    box = _grown(bounds, math.ceil(3 * sigma) + 1, selection.size)
    hard = selection.crop(box).point(_ABOVE_ZERO)
    factor = max(1, width // 6)
    if factor == 1:
        blurred = hard.filter(ImageFilter.GaussianBlur(sigma))
    else:
        blurred = hard.reduce(factor).filter(ImageFilter.GaussianBlur(sigma / factor)).resize(
            hard.size, Image.Resampling.BILINEAR)
    # A blur puts a straight edge at half strength: keeping only the inner half, stretched to
    # the full range, puts the whole soft edge inside the selection.
    mask = Image.new("L", selection.size, 0)
    mask.paste(blurred.point(_INNER_HALF), box[:2])
    # Multiplying by the selection keeps outside at 0 (the inner half of the blur reaches
    # past a hollow corner) and keeps a feathered selection's own edge.
    return ImageChops.multiply(mask, selection)


# -- seamless ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measured:
    """A drift and the share of the measured pixels that agreed with it (0 to 1)."""

    drift: Drift
    agreeing: float


def measure_drift(source: Image.Image, result: Image.Image, usable: Image.Image) -> Measured:
    """The colour drift from `source` to `result` (small RGB copies), measured where `usable`
    (L, the same size) is 255 and, of those pixels, only where result and source agree: the
    pixels the model really changed are left out."""
    factor = _factor(source.size, DRIFT_SIDE)
    source, result = _reduced(source, factor), _reduced(result, factor)
    if factor > 1:
        usable = usable.reduce(factor).point(_ABOVE_254)
    pairs = [(s, r) for s, r, keep in zip(_pixels(source), _pixels(result), _pixels(usable))
             if keep]
    return _fit(pairs)


def _fit(pairs: list) -> Measured:
    """Per channel, a gain and offset mapping result to source, fitted in two passes that
    each leave out the pixels the model changed. `pairs` are (source, result) RGB tuples."""
    if len(pairs) < MIN_SAMPLES:
        return Measured(Drift(), 0.0)
    typical = [statistics.median([s[c] - r[c] for s, r in pairs]) for c in range(3)]
    agreeing = _close_to(pairs, [(1.0, offset) for offset in typical], AGREE_LEVELS)
    share = len(agreeing) / len(pairs)
    if len(agreeing) < MIN_SAMPLES:
        return Measured(Drift(), share)
    first = _ridge_fit(agreeing)
    close = _close_to(agreeing, first, RESIDUAL_LEVELS)
    fits = _ridge_fit(close) if len(close) >= MIN_SAMPLES else first
    return Measured(Drift(tuple(gain for gain, _ in fits),
                          tuple(offset for _, offset in fits)), share)


def _close_to(pairs: list, fits: list[tuple[float, float]], levels: float) -> list:
    """The pairs whose source is within `levels` of gain * result + offset in every
    channel."""
    (g0, o0), (g1, o1), (g2, o2) = fits
    return [(s, r) for s, r in pairs
            if abs(s[0] - g0 * r[0] - o0) <= levels and abs(s[1] - g1 * r[1] - o1) <= levels
            and abs(s[2] - g2 * r[2] - o2) <= levels]


def _ridge_fit(pairs: list) -> list[tuple[float, float]]:
    """Per channel (gain, offset) of source ≈ gain * result + offset, the gain pulled
    towards 1 (GAIN_PRIOR) and clamped; pixels clipped at 0 or 255 in the result say nothing
    about the drift and are left out."""
    fits = []
    for channel in range(3):
        values = [(s[channel], r[channel]) for s, r in pairs if 0 < r[channel] < 255]
        if len(values) < MIN_SAMPLES:
            values = [(s[channel], r[channel]) for s, r in pairs]
        sources, results = [s for s, _ in values], [r for _, r in values]
        count = len(values)
        mean_s, mean_r = sum(sources) / count, sum(results) / count
        covariance = sum(map(operator.mul, sources, results)) / count - mean_s * mean_r
        variance = sum(map(operator.mul, results, results)) / count - mean_r * mean_r
        gain = (covariance + GAIN_PRIOR) / (variance + GAIN_PRIOR)
        gain = min(GAIN_LIMITS[1], max(GAIN_LIMITS[0], gain))
        fits.append((gain, mean_s - gain * mean_r))
    return fits


def _corrected(result: Image.Image, drift: Drift) -> tuple[Image.Image, bool]:
    """The result with the drift taken out, and whether that changed anything."""
    if drift.is_identity:
        return result, False
    return result.point(drift.table(result.mode)), True


def change_mask(small_source: Image.Image, small_result: Image.Image,
                size: tuple[int, int]) -> Image.Image:
    """L of `size`: 255 wherever the result really differs from the source (given as small
    RGB copies), falling to 0 within about 2.5 * CHANGE_SOFTNESS pixels outside that, 0
    elsewhere."""
    blur = ImageFilter.GaussianBlur(CHANGE_BLUR)
    difference = ImageChops.difference(small_source.filter(blur), small_result.filter(blur))
    red, green, blue = difference.split()
    largest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    # A softer picture differs from the source along its edges, the more the sharper the
    # edge: each pixel is allowed CHANGE_LEVELS plus a share of the source's own contrast
    # around it. So a thin line drawn on a plain area counts, a softened edge does not.
    brightness = small_source.convert("L")
    contrast = ImageChops.subtract(brightness.filter(ImageFilter.MaxFilter(3)),
                                   brightness.filter(ImageFilter.MinFilter(3)))
    allowed = contrast.point([min(255, round(CHANGE_LEVELS + EDGE_SHARE * value))
                              for value in range(256)])
    changed = ImageChops.subtract(largest, allowed).point(_ABOVE_ZERO)
    # A changed pixel counts with at least two changed neighbours (a line has them), not
    # alone or in pairs, as a little noise makes them.
    company = changed.filter(ImageFilter.BoxBlur(1)).point(_above(round(2.5 * 255 / 9)))
    changed = ImageChops.multiply(changed, company)
    mask = Image.new("L", size, 0)
    bounds = changed.getbbox()
    if bounds is None:
        return mask
    # Every full-size pixel a changed block touches is changed; the soft edge grows outwards
    # from there. Only the changed part's box (and what the blur reaches) is worked on.
    grown = changed.resize(size, Image.Resampling.BILINEAR).point(_ABOVE_ZERO)
    scale = size[0] / changed.width, size[1] / changed.height
    full_bounds = (math.floor(bounds[0] * scale[0]), math.floor(bounds[1] * scale[1]),
                   math.ceil(bounds[2] * scale[0]), math.ceil(bounds[3] * scale[1]))
    box = _grown(full_bounds, math.ceil(3 * CHANGE_SOFTNESS) + 2, size)
    core = grown.crop(box)
    soft = core.filter(ImageFilter.GaussianBlur(CHANGE_SOFTNESS)).point(_OUTER_HALF)
    mask.paste(ImageChops.lighter(soft, core), box[:2])
    return mask


# -- small helpers ---------------------------------------------------------------------------
def _factor(size: tuple[int, int], side: int) -> int:
    """The whole factor that brings the longer side of `size` to at most `side`."""
    return max(1, math.ceil(max(size) / side))


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    """A copy `factor` times smaller, each pixel the mean of its block; RGBA comes back RGB
    (Pillow reduces RGB several times faster, and alpha is looked at on its own)."""
    if image.mode == "RGBA":
        image = image.convert("RGB")
    return image if factor == 1 else image.reduce(factor)


def _opaque_blocks(picture: Image.Image, factor: int) -> Image.Image:
    """L at the size of _reduced(picture, factor): 255 where the whole block is opaque."""
    alpha = picture.getchannel("A")
    if alpha.getextrema() == (255, 255):
        return Image.new("L", _reduced(alpha, factor).size, 255)
    return _reduced(alpha, factor).point(_ABOVE_254)


def _pixels(image: Image.Image):
    """The pixel values in order (Pillow 13 renamed getdata)."""
    return getattr(image, "get_flattened_data", image.getdata)()


def _grown(bounds: tuple[int, int, int, int], margin: int,
           size: tuple[int, int]) -> tuple[int, int, int, int]:
    """`bounds` grown by `margin` on every side, clipped to `size`."""
    return (max(0, bounds[0] - margin), max(0, bounds[1] - margin),
            min(size[0], bounds[2] + margin), min(size[1], bounds[3] + margin))


def _above(level: int) -> list[int]:
    """A point table: 255 above `level`, 0 at or below it."""
    return [255 if value > level else 0 for value in range(256)]


_ABOVE_ZERO = _above(0)
_ABOVE_254 = _above(254)
_AT_ZERO = [255] + [0] * 255
# The inner half of a blurred edge (128..255) stretched to 0..255, and the outer half
# (0..128) stretched to 0..255.
_INNER_HALF = [0 if value <= 128 else min(255, (value - 128) * 2 + 1) for value in range(256)]
_OUTER_HALF = [min(255, value * 2) for value in range(256)]
