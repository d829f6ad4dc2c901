"""One edit: from a picture and an optional selection to result layers placed on the region.

Shared by the worker job and the command-line tool, so both send exactly the same request
for the same picture and selection.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field

from PIL import Image

from .blend import DEFAULT_BLEND, Blender, check_blend
from .client import EditRequest
from .errors import BadInputError, EditError
from .geometry import Box, check_size, is_gpt_image, plan_region, request_size
from .imaging import (
    build_payload,
    crop,
    decode_result,
    place_result,
    preview_picture,
    result_as_received,
)
from .pricing import cost_of, estimate

log = logging.getLogger(__name__)

QUALITIES = ("auto", "low", "medium", "high")
MAX_VARIANTS = 10
MAX_PROMPT = 32000


@dataclass(frozen=True)
class EditParams:
    """The procedure arguments, checked before anything is loaded or sent."""

    prompt: str
    model: str = "gpt-image-2"
    size: str = "auto"
    quality: str = "high"
    variants: int = 1
    blend: str = DEFAULT_BLEND  # blend.BLEND_MODES

    def __post_init__(self):
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise BadInputError("The prompt is empty: type what should change, then try "
                                "again.")
        if not _is_text(self.prompt):
            raise BadInputError("The prompt is not valid text (it holds bytes that are not "
                                "UTF-8, or broken characters): type it again, or save the "
                                "file it comes from as UTF-8.")
        if len(self.prompt) > MAX_PROMPT:
            raise BadInputError(f"The prompt is {len(self.prompt)} characters long: shorten "
                                f"it to at most {MAX_PROMPT}.")
        if not isinstance(self.model, str) or not self.model.strip() or not _is_text(
                self.model):
            raise BadInputError("No model is set: use gpt-image-2 or another image model "
                                "name.")
        if self.quality not in QUALITIES:
            raise BadInputError(f"The quality '{self.quality}' is not one of "
                                f"{', '.join(QUALITIES)}: choose one of them.")
        if (isinstance(self.variants, bool) or not isinstance(self.variants, int)
                or not 1 <= self.variants <= MAX_VARIANTS):
            raise BadInputError(f"The number of variants ({self.variants}) must be between 1 "
                                f"and {MAX_VARIANTS}.")
        if not isinstance(self.size, str):
            raise BadInputError("The size must be auto or WIDTHxHEIGHT, for example "
                                "1536x1024.")
        check_size(self.size, self.model)
        check_blend(self.blend)


@dataclass
class EditOutcome:
    """`layers` are RGBA pictures of the region's size, to be placed at `region` (in the
    picture's coordinates); `request` is what was asked of the API, `usage` its token count.
    `as_received[i]` is the PNG the API sent for layer i when that file already is the layer
    but for its alpha, which is opaque (imaging.result_as_received): written as it is, it
    saves encoding the layer again. None otherwise. `masks[i]` is layer i's mask (L, the
    region's size, 255 where the result shows) as blend.Blender made it, or None for
    "the selection as it was" (no mask without a selection)."""

    region: Box
    layers: list[Image.Image]
    request: dict
    usage: dict = field(default_factory=dict)
    as_received: list[bytes | None] = field(default_factory=list)
    masks: list[Image.Image | None] = field(default_factory=list)
    # Each picture as the API sent it, in the answer's order: what was paid for, which the
    # results history keeps (a few MB at the API's size, not the placed layer's 24 MP).
    received: list[bytes] = field(default_factory=list)
    # USD from `usage` and the price table; None when unknown (pricing.cost_of).
    cost_usd: float | None = None


def _is_text(value: str) -> bool:
    """Encodable as UTF-8: no lone surrogates (undecodable bytes of a command line arrive
    as those)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def selection_box(selection: Image.Image | None) -> Box | None:
    """The bounding box of the selected (non-zero) pixels; None for no or an empty selection,
    which means "edit everything" (an all-zero mask would make the edit invisible)."""
    if selection is None:
        return None
    bounds = selection.getbbox()
    return Box.from_bounds(*bounds) if bounds else None


def plan_request(picture_size: tuple[int, int], bounds: Box | None, params: EditParams,
                 region_size: tuple[int, int] | None = None) -> tuple[Box, tuple[int, int]]:
    """The region of the picture an edit sends (picture coordinates) and the request size
    the API is asked for: what run_edit sends and estimate_edit prices."""
    width, height = picture_size
    if region_size is None:
        region = plan_region(width, height, bounds)
        full_width, full_height = region.width, region.height
    else:
        region = Box(0, 0, width, height)
        full_width, full_height = region_size
    return region, request_size(full_width, full_height, params.model, params.size)


def estimate_edit(picture_size: tuple[int, int], bounds: Box | None, params: EditParams,
                  partial_images: int = 0, references: tuple[bytes, ...] = (),
                  prices: dict | None = None, region_size=None) -> dict:
    """What an edit would send and its estimated cost (pricing.estimate), nothing sent:
    `model`, `size`, `quality`, `n`, `partial_images`, `region` and the estimate's keys."""
    region, (width, height) = plan_request(picture_size, bounds, params, region_size)
    previews = partial_images if is_gpt_image(params.model) else 0
    guess = estimate(params.model, width, height, params.quality, params.variants, previews,
                     len(params.prompt), [png_size(data) for data in references], prices)
    return dict(guess, model=params.model, size=f"{width}x{height}", quality=params.quality,
                n=params.variants, partial_images=previews, region=region.as_dict())


def check_model_options(model: str, references: int, partial_images: int) -> None:
    """Reference pictures and live previews need a GPT image model: a BadInputError saying
    so when they are asked of another (dall-e-2)."""
    if is_gpt_image(model):
        return
    if references:
        raise BadInputError(f"{model} takes no reference pictures (only the GPT image models "
                            "do): leave them out, or choose gpt-image-2.")
    if partial_images:
        raise BadInputError(f"{model} sends no live previews (only the GPT image models "
                            "do): set the previews to 0, or choose gpt-image-2.")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header (references.load_references makes PNGs)."""
    return struct.unpack(">II", data[16:24])


def run_edit(client, picture: Image.Image, selection: Image.Image | None, params: EditParams,
             on_event=None, picture_png: bytes | None = None,
             region_size: tuple[int, int] | None = None,
             references: tuple[bytes, ...] = (), partial_images: int = 0,
             on_preview=None, source_scale: tuple[int, int] | None = None) -> EditOutcome:
    """Send the region of `picture` around `selection` and place what comes back.
    `selection` (L) is the picture's size: each caller checks that, in its own words.
    `on_event(stage, message)` hears `finish` (a caller showing progress reports `prepare`
    itself, before loading the picture). `picture_png` is imaging.Source.png: the picture's
    file, uploaded as it is when nothing needs changing.

    `region_size` is set when a host already cut the region out and scaled it down to what
    the API gets (docs/job-protocol.md): the whole picture is sent, the request size
    follows the region's full size, and the layers come back at the picture's size. With
    `source_scale` (numerator, denominator; an opaque picture, no selection) the picture is
    the region scaled by exactly that factor, and the layers come back at `region_size`,
    mapped onto the region exactly (docs/job-protocol.md, "A scaled source").

    `references` are PNG bytes (references.load_references) sent after the picture. Each
    result is blended as `params.blend` says.

    `partial_images` previews are asked for (streamed; GPT image models only), and
    `on_preview(number, picture, region)` gets each as it arrives: imaging.preview_picture,
    the partial image's part for the region at the model's size or the region's when
    smaller (opaque RGB, not blended),
    for the caller to scale to `region`. A preview that cannot be read is skipped."""
    report = on_event or (lambda stage, message: None)
    bounds = selection_box(selection)
    region, (width, height) = plan_request(picture.size, bounds, params, region_size)
    covered = None
    if source_scale is not None:  # the part of the picture that is the region, exactly
        covered = tuple(side * source_scale[0] / source_scale[1] for side in region_size)
    payload = build_payload(picture, selection if bounds else None, region, (width, height),
                            picture_png, covered)
    request = EditRequest(image=payload.image, mask=payload.mask, prompt=params.prompt,
                          model=params.model, size=f"{width}x{height}",
                          quality=params.quality, n=params.variants,
                          references=tuple(references), partial_images=partial_images)
    region_picture = crop(picture, region)

    def preview(number: int, data: bytes) -> None:
        try:
            picture = preview_picture(decode_result(data), payload,
                                      (region.width, region.height))
        except EditError as error:
            log.info("Preview %d skipped: %s", number, error)
            return
        on_preview(number, picture, region)

    response = client.edit(request, on_preview=preview if on_preview else None)
    count = len(response.images)
    report("finish", f"Placing {count} result{'s' if count != 1 else ''}")
    region_selection = selection.crop(region.bounds()) if bounds else None
    size = region_size if covered else None  # else region_picture's
    blender = Blender(params.blend, region_picture, region_selection, size, covered)
    layers, as_received, masks = [], [], []
    for data in response.images:
        result = decode_result(data)
        blended = blender.blend(place_result(result, payload, region_picture, size))
        layers.append(blended.picture)
        masks.append(blended.mask)
        as_received.append(data if not blended.changed and result_as_received(
            data, result, payload, region_picture) else None)
    usage = dict(response.usage or {})
    sent = {"model": params.model, "size": f"{width}x{height}", "quality": params.quality,
            "n": params.variants}
    if request.streams:
        sent["partial_images"] = partial_images
    return EditOutcome(region=region, layers=layers, request=sent, usage=usage,
                       as_received=as_received, masks=masks, received=list(response.images),
                       cost_usd=cost_of(usage, params.model,
                                        getattr(client.settings, "prices", None)))
