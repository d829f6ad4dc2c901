"""The worker side of the job protocol (docs/job-protocol.md).

A host (the GIMP entries) writes a job file, runs `python -m gpt_image_edit job JOB.json`,
reads progress lines from standard output and, once the worker has ended, the manifest.
Results become visible only through the manifest, written last and atomically, so a worker
that is cancelled or crashes never leaves anything a host could import.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePath

from .errors import (
    EXIT_HOST_GONE,
    EXIT_OK,
    BadInputError,
    CostLimitError,
    EditError,
    unexpected_failure,
)
from .files import (
    discard,
    is_full_disk,
    remove_quietly,
    replace_atomically,
    write_bytes,
    write_temporary,
)

PROTOCOL = 2
# Protocol 1 jobs (PNG in, PNG out) are still run: a host of protocol 2 may choose raw
# pixels both ways, which is the only difference.
PROTOCOLS = (1, 2)
SOURCE_PIXELS = ("RGBA", "RGB")  # a raw source's modes
SELECTION_PIXELS = ("L",)  # a raw selection's mode
REFERENCE_PIXELS = ("RGBA", "RGB")  # a raw reference's modes
MANIFEST = "manifest.json"
TICK_SECONDS = 1.0
JOB_FOLDER_MARKER = ".gpt-image-edit-job"  # the host module's Job puts it in its folders
WAITING_STAGES = ("upload", "wait")
RESULT_COMPRESS_LEVEL = 1  # the host reads it once and deletes it: speed over size
PREVIEW_PATTERN = "preview-*"
# What a job needs, imported by a worker started ahead of its job while the host exports.
JOB_MODULES = ("client", "edit", "imaging", "png_encoder", "references", "settings",
               "history")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layer:
    width: int
    height: int
    offset_x: int
    offset_y: int


@dataclass(frozen=True)
class Reference:
    name: str
    path: Path
    pixels: str | None = None  # raw pixels of this mode (REFERENCE_PIXELS); None: a file
    size: tuple[int, int] | None = None  # a raw reference's (width, height)

    def png(self) -> bytes:
        """The PNG bytes to send (references.reference_png): scaled down, no metadata."""
        from .imaging import load_picture, load_raw
        from .references import reference_png

        if self.pixels:
            return reference_png(load_raw(self.path, self.size, self.pixels))
        return reference_png(load_picture(self.path, exif_transpose=True))


@dataclass(frozen=True)
class Job:
    params: object  # edit.EditParams, imported late so a bad job fails fast
    layer: Layer
    source_path: Path
    source_x: int
    source_y: int
    # The region's size in layer pixels when the host exported it scaled down (None: the
    # source PNG is at full size and the worker picks the region inside it).
    region_size: tuple[int, int] | None
    selection_path: Path | None
    output_dir: Path
    # Each reference picture: the name is for the provenance record only; a raw one
    # (protocol 2) has its mode and size.
    references: tuple[Reference, ...] = ()
    # Live previews asked for (None: the partial_images setting).
    partial_images: int | None = None
    # The host's user agreed to an estimate above the spending limit (asked interactively).
    cost_confirmed: bool = False
    folder: Path = Path(".")  # the job's folder: progress lines name files relative to it
    # Raw pixels (protocol 2): the source is raw RGBA or RGB (its mode here) and the
    # selection raw L, both at region_size; results (and their masks) are written raw at
    # the placement's size.
    raw_source: str | None = None
    raw_selection: bool = False
    raw_results: bool = False
    # A scaled source (docs/job-protocol.md): the raw RGB source is the region scaled down
    # by numerator/denominator (geometry.scaled_size), the results are still at region_size.
    source_scale: tuple[int, int] | None = None
    protocol: int = PROTOCOL
    image_name: str | None = None  # the host's image, for the results history


def run_job(job_path, wait_for_start: bool = False) -> int:
    """Run the job at `job_path`; returns the exit code of docs/job-protocol.md. With
    `wait_for_start` the worker was started ahead of its job: it sets itself up, then
    reads the job once the host's start line arrives (wait_for_start_line)."""
    from .logs import setup_logging

    log_file = setup_logging()
    job_path = Path(job_path).resolve()
    told = watch_lifeline(job_path.parent)
    if wait_for_start:
        wait_for_start_line(told)
    started = time.monotonic()
    progress = Progress(sys.stdout, started)
    output_dir = None
    try:
        raw = read_job_file(job_path)
        output_dir = prepare_output_dir(raw, job_path)
        job = parse_job(raw, job_path, output_dir)
        manifest = execute(job, progress, started)
    except EditError as error:
        log.info("Job %s failed (%s): %s", job_path, error.kind, error)
        return fail(output_dir, job_path, progress, error.kind, str(error), error.exit_code)
    except Exception:
        log.exception("The worker failed unexpectedly on %s", job_path)
        error = unexpected_failure("The worker", log_file)
        return fail(output_dir, job_path, progress, error.kind, str(error), error.exit_code)
    try:
        path = write_json_atomically(output_dir / MANIFEST, manifest)
    except OSError as error:
        for result in manifest["results"]:
            remove_quietly(output_dir / result["path"])
        failure = _cannot_write(output_dir, error)
        return fail(output_dir, job_path, progress, failure.kind, str(failure),
                    failure.exit_code)
    progress.done(True, _shown_path(path, job_path))
    return EXIT_OK


def wait_for_start_line(told: threading.Event | None) -> None:
    """Import what every job needs, then wait until the host's start line arrives on the
    lifeline (`told`): the job file and the pixels are written. Without a lifeline (a job
    run by hand) the line is read from standard input here."""
    for name in JOB_MODULES:
        importlib.import_module(f"{__package__}.{name}")
    from PIL import Image

    Image.preinit()  # the picture formats an answer is opened with
    if told is not None:
        told.wait()
    else:
        sys.stdin.readline()


# -- the job file --------------------------------------------------------------------------
def read_job_file(job_path: Path) -> dict:
    try:
        raw = json.loads(job_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"The job file {job_path} does not exist: start the edit again "
                            "from GIMP.") from None
    except (OSError, UnicodeDecodeError, ValueError):
        raise BadInputError(f"The job file {job_path} is not readable JSON: start the edit "
                            "again from GIMP.") from None
    if not isinstance(raw, dict):
        raise _bad_job(job_path, "it is not a JSON object")
    return raw


def prepare_output_dir(raw: dict, job_path: Path) -> Path:
    """The results folder, created, with any manifest of an earlier run removed so that
    nothing stale can be read while this run works."""
    name = raw.get("output_dir")
    if not isinstance(name, str) or not name.strip():
        raise _bad_job(job_path, "'output_dir' is missing")
    output_dir = inside_job_folder(name, "output_dir", job_path)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / MANIFEST).unlink(missing_ok=True)
    except OSError as error:
        raise BadInputError(f"The results folder {output_dir} cannot be written "
                            f"({error.strerror or type(error).__name__}): check the disk "
                            "and its permissions.") from None
    return output_dir


def parse_job(raw: dict, job_path: Path, output_dir: Path) -> Job:
    from .edit import EditParams

    protocol = raw.get("protocol")
    if isinstance(protocol, bool) or protocol not in PROTOCOLS:
        raise BadInputError(f"The job file {job_path} is for protocol "
                            f"{protocol!r}, this worker speaks {PROTOCOL}: "
                            "reinstall the plug-in so that both parts match.")
    params = EditParams(prompt=_text(raw, "prompt", job_path, allow_empty=True),
                        model=_text(raw, "model", job_path), size=_text(raw, "size", job_path),
                        quality=_text(raw, "quality", job_path),
                        variants=_integer(raw, "variants", job_path, minimum=1),
                        # Protocol 1 hosts know no blending: the selection as it is.
                        blend=_text(raw, "blend", job_path, default="none"))
    layer_raw = _object(raw, "layer", job_path)
    layer = Layer(width=_integer(layer_raw, "width", job_path, minimum=1),
                  height=_integer(layer_raw, "height", job_path, minimum=1),
                  offset_x=_integer(layer_raw, "offset_x", job_path),
                  offset_y=_integer(layer_raw, "offset_y", job_path))
    source = _object(raw, "source", job_path)
    selection = raw.get("selection")
    if selection is not None and not isinstance(selection, dict):
        raise _bad_job(job_path, "'selection' is neither null nor an object")
    partial_images = raw.get("partial_images")
    if partial_images is not None:
        from .settings import parse_partial_images

        partial_images = parse_partial_images(partial_images, f"'partial_images' in {job_path}")
    cost_confirmed = raw.get("cost_confirmed", False)
    if not isinstance(cost_confirmed, bool):
        raise _bad_job(job_path, "'cost_confirmed' is not true or false")
    region_size = _region_size(source, job_path)
    raw_source = _pixels(source, "source.pixels", SOURCE_PIXELS, protocol, job_path)
    raw_selection = selection is not None and _pixels(
        selection, "selection.pixels", SELECTION_PIXELS, protocol, job_path) is not None
    if (raw_source or raw_selection) and region_size is None:
        raise _bad_job(job_path, "raw pixels without the source's 'width' and 'height'")
    result_pixels = raw.get("result_pixels", "png") if protocol >= 2 else "png"
    if result_pixels not in ("png", "raw"):
        raise _bad_job(job_path, "'result_pixels' is neither png nor raw")
    source_scale = _source_scale(source, job_path) if protocol >= 2 else None
    if source_scale is not None and (raw_source != "RGB" or selection is not None
                                     or result_pixels != "raw"):
        raise _bad_job(job_path, "'source.scale' without raw RGB pixels, raw results and "
                       "no selection")
    return Job(params=params, layer=layer, partial_images=partial_images,
               cost_confirmed=cost_confirmed, folder=job_path.parent,
               protocol=protocol, raw_source=raw_source,
               raw_selection=raw_selection, raw_results=result_pixels == "raw",
               source_scale=source_scale,
               source_path=inside_job_folder(_text(source, "path", job_path), "source.path",
                                             job_path),
               source_x=_integer(source, "x", job_path, minimum=0, default=0),
               source_y=_integer(source, "y", job_path, minimum=0, default=0),
               region_size=region_size,
               selection_path=(inside_job_folder(_text(selection, "path", job_path),
                                                 "selection.path", job_path)
                               if selection is not None else None),
               output_dir=output_dir,
               references=tuple(_references(raw, job_path, protocol)),
               image_name=(_text(raw, "image_name", job_path, allow_empty=True)
                           if raw.get("image_name") is not None else None))


def _references(raw: dict, job_path: Path, protocol: int) -> list[Reference]:
    """The entries of the optional `references` list: a picture file, or (protocol 2) raw
    pixels with their mode and size."""
    from .references import check_reference_count

    entries = raw.get("references", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise _bad_job(job_path, "'references' is not a list of objects")
    check_reference_count(len(entries))
    references = []
    for index, entry in enumerate(entries):
        path = _text(entry, "path", job_path)
        pixels = _pixels(entry, f"references[{index}].pixels", REFERENCE_PIXELS, protocol,
                         job_path)
        size = None
        if pixels is not None:
            size = (_integer(entry, "width", job_path, minimum=1),
                    _integer(entry, "height", job_path, minimum=1))
        references.append(Reference(
            name=_text(entry, "name", job_path, default=path),
            path=inside_job_folder(path, f"references[{index}].path", job_path),
            pixels=pixels, size=size))
    return references


def inside_job_folder(name: str, what: str, job_path: Path) -> Path:
    """`name` (relative to the job's folder) resolved, symbolic links followed; refused
    when it is absolute, climbs with `..`, or leads out of the job's folder any other way:
    a job reads and writes nothing outside its own folder."""
    folder = job_path.parent
    relative = PurePath(name)
    if not relative.is_absolute() and ".." not in relative.parts and not relative.drive:
        resolved = (folder / relative).resolve()
        if resolved == folder or folder in resolved.parents:
            return resolved
    raise BadInputError(f"The job file {job_path} names a file outside its folder ('{what}'): "
                        "a job reads and writes only inside its own folder; start the edit "
                        "again from GIMP.")


def _pixels(entry: dict, what: str, modes: tuple[str, ...], protocol: int,
            job_path: Path) -> str | None:
    """The mode of a picture of the job that is raw pixels (its `pixels` key, protocol 2,
    one of `modes`); None for a picture file."""
    pixels = entry.get("pixels") if protocol >= 2 else None
    if pixels is not None and pixels not in modes:
        raise _bad_job(job_path, f"'{what}' is not {' or '.join(modes)}")
    return pixels


def _region_size(source: dict, job_path: Path) -> tuple[int, int] | None:
    if "width" not in source and "height" not in source:
        return None
    return (_integer(source, "width", job_path, minimum=1),
            _integer(source, "height", job_path, minimum=1))


def _source_scale(source: dict, job_path: Path) -> tuple[int, int] | None:
    """The optional `source.scale`: [numerator, denominator], a factor below 1."""
    scale = source.get("scale")
    if scale is None:
        return None
    if (not isinstance(scale, list) or len(scale) != 2
            or not all(isinstance(value, int) and not isinstance(value, bool) for value in scale)
            or not 0 < scale[0] < scale[1]):
        raise _bad_job(job_path, "'source.scale' is not [numerator, denominator] of a factor "
                       "below 1")
    return scale[0], scale[1]


def _bad_job(job_path: Path, what: str) -> BadInputError:
    return BadInputError(f"The job file {job_path} is not usable ({what}): reinstall the "
                         "plug-in so that both parts match, then start the edit again.")


def _object(raw: dict, name: str, job_path: Path) -> dict:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise _bad_job(job_path, f"'{name}' is not an object")
    return value


def _text(raw: dict, name: str, job_path: Path, allow_empty: bool = False,
          default: str | None = None) -> str:
    value = raw.get(name, default)
    if not isinstance(value, str) or not (allow_empty or value.strip()):
        raise _bad_job(job_path, f"'{name}' is not text")
    return value


def _integer(raw: dict, name: str, job_path: Path, minimum: int | None = None,
             default: int | None = None) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or (
            minimum is not None and value < minimum):
        raise _bad_job(job_path, f"'{name}' is not a whole number"
                       + (f" of at least {minimum}" if minimum is not None else ""))
    return value


# -- the work ------------------------------------------------------------------------------
def execute(job: Job, progress: Progress, started: float) -> dict:
    """Run the edit and write the result PNGs; returns the success manifest."""
    from .client import ImagesClient
    from .edit import check_model_options, run_edit
    from .geometry import is_gpt_image, scaled_size
    from .imaging import Source, load_raw, load_selection, load_source
    from .settings import load_settings

    progress.event("prepare", f"Preparing {job.params.variants} "
                   f"picture{'s' if job.params.variants != 1 else ''}")
    if job.source_scale is not None:  # opaque by the protocol: no alpha to blend
        source = Source(load_raw(job.source_path, scaled_size(*job.region_size,
                                                              *job.source_scale),
                                 job.raw_source))
    elif job.raw_source:
        picture = load_raw(job.source_path, job.region_size, job.raw_source)
        if picture.mode != "RGBA" and job.params.blend != "none":
            picture = picture.convert("RGBA")  # blending reads the source's alpha
        # An opaque RGB source stays RGB all the way: no alpha to flatten or to put back,
        # and RGB results, a quarter smaller.
        source = Source(picture)
    else:
        source = load_source(job.source_path)
    picture = source.picture
    selection = None
    if job.raw_selection:
        selection = load_raw(job.selection_path, job.region_size, "L")
    elif job.selection_path:
        selection = load_selection(job.selection_path)
    _check_source(job, picture, selection)
    references = [reference.png() for reference in job.references]
    settings = load_settings()
    check_model_options(job.params.model, len(references), job.partial_images or 0)
    partial_images = (settings.partial_images if job.partial_images is None
                      else job.partial_images) if is_gpt_image(job.params.model) else 0
    if settings.max_cost_usd is not None and not job.cost_confirmed:
        check_cost_limit(job, picture, selection, partial_images, references, settings)
    # A result's mask (blend other than none) adds a byte a pixel at most; raw results are
    # at the region's full size.
    bytes_per_pixel = 4 if job.params.blend == "none" else 5
    width, height = job.region_size if job.raw_results else picture.size
    check_results_folder(job.output_dir, job.params.variants * (
        width * height * bytes_per_pixel + height + 64 * 1024))
    log.info("Job: %s, size %s, quality %s, %d variant(s), source %dx%d at %d,%d%s",
             job.params.model, job.params.size, job.params.quality, job.params.variants,
             picture.width, picture.height, job.source_x, job.source_y,
             ", with selection" if selection is not None else "")
    ticker = WaitTicker(progress, job.params.model)
    ticker.start()
    previews = PreviewWriter(job, progress)
    try:
        with ImagesClient(settings, on_event=ticker.on_event) as client:
            outcome = run_edit(client, picture, selection, job.params,
                               on_event=ticker.on_event, picture_png=source.png,
                               region_size=job.region_size, source_scale=job.source_scale,
                               references=references,
                               partial_images=partial_images, on_preview=previews.write)
    finally:
        ticker.stop()
    keep_in_history(job, outcome)
    placement = placement_of(job, outcome.region)
    if job.raw_results:
        results = write_raw_results(outcome.layers, job.output_dir,
                                    (placement["width"], placement["height"]), outcome.masks)
    else:
        results = write_results(outcome.layers, job.output_dir, outcome.as_received,
                                outcome.masks)
    elapsed = round(time.monotonic() - started, 1)
    log.info("Job done in %.1f s: placement %s, usage %s, cost %s", elapsed, placement,
             outcome.usage, outcome.cost_usd)
    return {"protocol": job.protocol, "ok": True, "placement": placement, "results": results,
            "request": outcome.request, "usage": outcome.usage, "cost_usd": outcome.cost_usd,
            "elapsed": elapsed, "blend": job.params.blend,
            "reference": [reference.name for reference in job.references]}


def placement_of(job: Job, region) -> dict:
    """Where the result layers (and the previews) go, in image coordinates."""
    width, height = job.region_size or (region.width, region.height)
    return {"x": job.layer.offset_x + job.source_x + region.x,
            "y": job.layer.offset_y + job.source_y + region.y,
            "width": width, "height": height}


def check_cost_limit(job: Job, picture, selection, partial_images: int, references,
                     settings) -> None:
    """A non-interactive job (or one whose host did not ask) refuses an edit estimated
    above the spending limit, before anything is sent: CostLimitError (kind `cost_limit`),
    which an interactive host may confirm and run again with `cost_confirmed`."""
    from .edit import estimate_edit, selection_box
    from .pricing import format_usd

    estimate = estimate_edit(picture.size, selection_box(selection), job.params,
                             partial_images, references, settings.prices, job.region_size)
    limit = settings.max_cost_usd
    cost = estimate["cost_usd"]
    if cost is None:
        raise CostLimitError(f"The cost of {job.params.model} is unknown (the price table has "
                             f"no price for it), so the spending limit of ${limit:.2f} cannot "
                             f"be kept: nothing was sent; add its price to prices, or remove "
                             f"the limit ({limit_place()}).")
    if cost > limit:
        raise CostLimitError(f"This edit would cost about {format_usd(cost)}, above the "
                             f"spending limit of ${limit:.2f}: nothing was sent; choose fewer "
                             f"variants or a lower quality, or raise the limit "
                             f"({limit_place()}).")


def limit_place() -> str:
    """Where the spending limit is set. No settings dialog holds it (GIMP's has the
    endpoint, key and timeout), so never the front end's settings place: the file's
    max_cost_usd, or the environment."""
    from .settings import MAX_COST_ENV, config_path

    return f"max_cost_usd in {config_path()}, or {MAX_COST_ENV}"


class PreviewWriter:
    """Each live preview, written whole under a temporary name first, then announced with a
    `preview` progress line. Kept cheap, since a preview is replaced within seconds: at the
    model's own size (edit.run_edit's preview picture, opaque RGB), never scaled up to the
    region or compressed; raw pixels (preview-K.rgb) for a host taking raw results, else a
    fast PNG (preview-K.png). The host scales it to the placement, where the result will
    land."""

    def __init__(self, job: Job, progress: Progress):
        self._job = job
        self._progress = progress

    def write(self, number: int, picture, region) -> None:
        from .imaging import raw_writer

        raw = self._job.raw_results
        path = self._job.output_dir / f"preview-{number}.{'rgb' if raw else 'png'}"
        try:
            replace_atomically(path, raw_writer(picture) if raw else _png_writer(picture),
                               sync=False)
        except OSError as error:
            log.info("Preview %d not written: %s", number, error)  # the result matters more
            return
        shown = {"path": _shown_path(path, self._job.folder / "job.json"), "index": number,
                 "placement": placement_of(self._job, region), "width": picture.width,
                 "height": picture.height}
        if raw:
            shown["pixels"] = picture.mode
        self._progress.preview(shown)


def keep_in_history(job: Job, outcome) -> None:
    """The paid results, kept before anything else can lose them (history.py): each
    picture as the API sent it. (Encoding the placed layer instead cost a 24 MP edit
    seconds, and would keep a scaled copy rather than what was received.)"""
    from .history import keep

    keep(outcome.received, job.params.prompt, job.image_name, job.params.model)


def _check_source(job: Job, picture, selection) -> None:
    width, height = job.region_size or picture.size
    if job.region_size is not None and (picture.width > width or picture.height > height):
        raise BadInputError(f"The exported layer ({picture.width}x{picture.height}) is larger "
                            f"than the region it stands for ({width}x{height}): start the "
                            "edit again.")
    if (job.source_x + width > job.layer.width
            or job.source_y + height > job.layer.height):
        raise BadInputError(f"The exported layer ({picture.width}x{picture.height} at "
                            f"{job.source_x},{job.source_y}) does not fit the "
                            f"{job.layer.width}x{job.layer.height} layer: start the edit "
                            "again.")
    if selection is not None and selection.size != picture.size:
        raise BadInputError(f"The exported selection ({selection.width}x{selection.height}) "
                            f"is not the size of the exported layer ({picture.width}x"
                            f"{picture.height}): start the edit again.")


def check_results_folder(output_dir: Path, needed: int) -> None:
    """Before anything is paid for: can the results folder take `needed` bytes?"""
    try:
        discard(write_temporary(output_dir, "gpt-image-edit-check", write_bytes(b"")))
        free = shutil.disk_usage(str(output_dir)).free
    except OSError as error:
        raise _cannot_write(output_dir, error) from None
    if free < needed:
        raise BadInputError(f"The disk holding the results folder {output_dir} is full (the "
                            f"results may need {needed / 1e6:.1f} MB, {free / 1e6:.1f} MB are "
                            "free): free some space, then start the edit again.")


def _cannot_write(output_dir: Path, error: OSError) -> BadInputError:
    if is_full_disk(error):
        return BadInputError(f"The disk holding the results folder {output_dir} is full: free "
                             "some space, then start the edit again.")
    return BadInputError(f"The results folder {output_dir} cannot be written "
                         f"({error.strerror or type(error).__name__}): check the disk and "
                         "its permissions.")


def write_results(layers, output_dir: Path, as_received=(), masks=()) -> list[dict]:
    """Each layer as variant-N.png and its mask, when it has one (EditOutcome.masks), as
    variant-N-mask.png. A layer whose PNG as received is given (EditOutcome.as_received) is
    written as those bytes, not encoded again."""
    received = list(as_received) or [None] * len(layers)

    def layer_file(number, layer):
        data = received[number - 1]
        return (f"variant-{number}.png",
                write_bytes(data) if data is not None else _png_writer(layer), {})

    return _write_variants(layers, masks, output_dir, layer_file,
                           lambda number, mask: (f"variant-{number}-mask.png",
                                                 _png_writer(mask)), sync=True)


def write_raw_results(layers, output_dir: Path, size: tuple[int, int], masks=()) -> list[dict]:
    """Each layer as raw pixels of `size` (the placement's), variant-N.rgba (or .rgb for an
    opaque layer, `pixels` says which), and its mask as variant-N-mask.gray; scaled to
    `size` first when the source was sent scaled down."""
    from .imaging import raw_writer, to_size

    def layer_file(number, layer):
        suffix = {"RGBA": "rgba", "RGB": "rgb"}[layer.mode]
        return (f"variant-{number}.{suffix}", raw_writer(to_size(layer, size)),
                {"pixels": layer.mode})

    return _write_variants(layers, masks, output_dir, layer_file,
                           lambda number, mask: (f"variant-{number}-mask.gray",
                                                 raw_writer(to_size(mask, size))),
                           sync=False)


def _write_variants(layers, masks, output_dir: Path, layer_file, mask_file,
                    sync: bool) -> list[dict]:
    """The manifest's result entries, each layer (and its mask) written by the writers
    `layer_file(number, layer)` and `mask_file(number, mask)` give with their file names.
    A mask the same object as an earlier one is written once and named by both. Files are
    written under a temporary name, then renamed; on any failure the ones already written
    are removed."""
    written: list[Path] = []
    results: list[dict] = []
    mask_files: dict[int, str] = {}
    masks = list(masks) or [None] * len(layers)
    try:
        for number, (layer, mask) in enumerate(zip(layers, masks), start=1):
            name, writer, extra = layer_file(number, layer)
            path = output_dir / name
            replace_atomically(path, writer, sync=sync)
            written.append(path)
            result = dict({"path": name, "variant": number}, **extra)
            if mask is not None:
                if id(mask) not in mask_files:
                    mask_name, mask_writer = mask_file(number, mask)
                    replace_atomically(output_dir / mask_name, mask_writer, sync=sync)
                    written.append(output_dir / mask_name)
                    mask_files[id(mask)] = mask_name
                result["mask"] = mask_files[id(mask)]
            results.append(result)
    except BaseException as error:
        for path in written:
            remove_quietly(path)
        if isinstance(error, OSError):
            raise _cannot_write(output_dir, error) from None
        raise
    return results


def _png_writer(image):
    return lambda stream: image.save(stream, "PNG", compress_level=RESULT_COMPRESS_LEVEL)


def write_json_atomically(path: Path, data: dict) -> Path:
    replace_atomically(path, write_bytes((json.dumps(data, indent=2) + "\n").encode("utf-8")))
    return path


def fail(output_dir: Path | None, job_path: Path, progress: Progress, kind: str,
         message: str, exit_code: int) -> int:
    """Write the failure manifest (when there is a results folder) and say so."""
    manifest = {"protocol": PROTOCOL, "ok": False, "error": {"kind": kind, "message": message}}
    if output_dir is not None:
        for preview in output_dir.glob(PREVIEW_PATTERN):  # a failed edit leaves no preview
            remove_quietly(preview)
    shown = None
    if output_dir is not None:
        try:
            shown = _shown_path(write_json_atomically(output_dir / MANIFEST, manifest),
                                job_path)
        except OSError:
            log.exception("The failure manifest could not be written")
    if shown is None:
        print(message, file=sys.stderr)
    progress.done(False, shown)
    return exit_code


def _shown_path(path: Path, job_path: Path) -> str:
    """The manifest's path as the protocol shows it: relative to the job's folder."""
    try:
        return path.relative_to(job_path.parent).as_posix()
    except ValueError:
        return str(path)


# -- progress --------------------------------------------------------------------------------
class Progress:
    """JSON lines on standard output, one event each, flushed at once."""

    def __init__(self, stream, started: float):
        self._stream = stream
        self._started = started
        self._lock = threading.Lock()

    def event(self, stage: str, message: str) -> None:
        self._emit({"event": "progress", "stage": stage, "elapsed": self.elapsed(),
                    "message": message})

    def preview(self, shown: dict) -> None:
        """`shown`: the preview event's path, index, placement, width, height (and pixels)."""
        self._emit(dict({"event": "preview"}, **shown, elapsed=self.elapsed()))

    def done(self, ok: bool, manifest: str | None) -> None:
        self._emit({"event": "done", "ok": ok, "manifest": manifest})

    def elapsed(self) -> float:
        return round(time.monotonic() - self._started, 1)

    def _emit(self, event: dict) -> None:
        with self._lock:
            try:
                self._stream.write(json.dumps(event) + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a host that stopped reading is handled by the lifeline, not here


class WaitTicker:
    """Forwards the client's events as progress lines and, while a request is out, writes a
    `wait` line about every second so the host can show the time going by. It only prints:
    the host does all the GIMP work on its own thread."""

    def __init__(self, progress: Progress, model: str):
        self._progress = progress
        self._model = model
        self._waiting_since: float | None = None
        self._active = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wait-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def on_event(self, stage: str, message: str) -> None:
        if stage in WAITING_STAGES and self._waiting_since is None:
            self._waiting_since = time.monotonic()
        # A retry's own message ("trying again in 2 s") stays up until the next upload.
        self._active = stage in WAITING_STAGES
        self._progress.event(stage, message)

    def _run(self) -> None:
        while not self._stopped.wait(TICK_SECONDS):
            if self._active and self._waiting_since is not None:
                seconds = int(time.monotonic() - self._waiting_since)
                self._progress.event("wait", f"Waiting for {self._model}: {seconds} s")


# -- the lifeline ----------------------------------------------------------------------------
def watch_lifeline(job_folder: Path) -> threading.Event | None:
    """When standard input is a pipe (the host's lifeline), end the process at once when it
    closes: the host died or was killed, and nobody will read anything this worker writes.
    Returns an event set when the host writes on it (the start line, wait_for_start_line).
    A terminal or /dev/null on standard input is not watched (None), so jobs run by hand
    work."""
    try:
        descriptor = sys.stdin.fileno()
        is_pipe = stat.S_ISFIFO(os.fstat(descriptor).st_mode)
    except (AttributeError, OSError, ValueError):
        return None
    if not is_pipe:
        return None
    told = threading.Event()
    threading.Thread(target=_exit_at_end_of, args=(descriptor, job_folder, told),
                     name="lifeline", daemon=True).start()
    return told


def _exit_at_end_of(descriptor: int, job_folder: Path, told: threading.Event) -> None:
    while True:
        try:
            data = os.read(descriptor, 4096)
        except OSError:
            data = b""
        if data:
            told.set()
            continue
        # A host killed mid-edit (GIMP 2.10's Cancel does that) cannot remove its private
        # job folder any more; only a folder the host marked as the job's alone goes.
        if (job_folder / JOB_FOLDER_MARKER).is_file():
            shutil.rmtree(job_folder, ignore_errors=True)
        os._exit(EXIT_HOST_GONE)
