"""The command-line tool: `gpt-image-edit edit | check | settings | job`.

Only geometry, errors and files are imported up front: `job` runs on every edit from GIMP
and should start without loading what it may not need. Every failure prints its one
sentence, never a traceback (that goes to the log). Ctrl-C and SIGTERM stop the tool the
same way: one line, exit 130 or 143, no partial or temporary file left
(files.abandon_writes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import queue
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import __version__
from .errors import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    BadInputError,
    EditError,
    MissingKeyError,
    RateLimitError,
    Terminated,
    UnexpectedError,
    unexpected_failure,
)
from .files import (
    Abandoned,
    abandon_writes,
    discard,
    is_full_disk,
    link_without_overwriting,
    remove_quietly,
    usual_mode,
    write_bytes,
    write_temporary,
)
from .geometry import Box

DEFAULT_JOBS = 2
SETTING_NAMES = frozenset({"base_url", "api_key", "timeout", "partial_images",
                           "max_cost_usd", "prices"})
# A rate limit that outlasts the client's own retries pauses the whole batch, halves its
# concurrency and sends that input again, at most this many times.
BATCH_RATE_LIMIT_TRIES = 3
BATCH_BACKOFF = 5.0
BATCH_BACKOFF_MAX = 60.0
# Level 3 writes a large photo about a third faster than the default 6, for a file only a
# few percent larger.
OUTPUT_COMPRESS_LEVEL = 3
PREVIEW_COMPRESS_LEVEL = 1  # a preview is replaced within seconds: speed over size
TTY_TICK = 1.0
LOG_TICK = 5.0

log = logging.getLogger(__name__)


MAIN_EXAMPLES = """examples:
  gpt-image-edit settings                      where each setting comes from (never the key)
  gpt-image-edit check                         is the key accepted? (spends no credits)
  gpt-image-edit edit photo.png --prompt "make the sky stormy"
  gpt-image-edit edit *.jpg --prompt "warmer light" --jobs 3 -o edited/
  gpt-image-edit edit --help                   every option of an edit, with examples
"""

EDIT_EXAMPLES = """examples:
  gpt-image-edit edit photo.png --prompt "make the sky stormy"
      writes photo-edit.png beside photo.png (photo-edit2.png if that exists)
  gpt-image-edit edit photo.png --selection area.png --prompt "remove the car"
      changes only where area.png is white, sends only the region around it
  gpt-image-edit edit *.jpg --prompt "warmer light" -n 2 --jobs 3 -o edited/
      two variants of each picture into edited/ (made, and removed again if nothing lands)
  gpt-image-edit edit photo.png --prompt "add snow" --json
      one JSON object per result (or failure) on standard output, with "usage" and "cost_usd"
  gpt-image-edit edit *.jpg --prompt "warmer light" --estimate
      what would be sent and its estimated cost; nothing is sent
  gpt-image-edit edit photo.png --prompt "add snow" --save-previews previews/ --max-cost 0.5
      each live preview written into previews/ as it arrives; refused if estimated above $0.50
"""


def main(argv=None) -> int:
    # Records logged before the log file is set up are dropped, never printed (Python's
    # last-resort handler would print tracebacks on stderr).
    logging.getLogger("gpt_image_edit").addHandler(logging.NullHandler())
    _stop_on_sigterm()
    _paths_as_given(sys.stdout)
    usual_mode()  # read the umask now, on the main thread, before any writer starts
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return BadInputError.exit_code
    try:
        return args.run(args)
    except EditError as error:
        print(str(error), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as stop:
        return _stopped(isinstance(stop, Terminated))
    except Exception:
        error = _crashed()
        print(str(error), file=sys.stderr)
        return error.exit_code


def _stop_on_sigterm() -> None:
    """SIGTERM raises Terminated on the main thread, so it unwinds like Ctrl-C."""
    def terminate(signum, frame):
        raise Terminated()

    try:
        signal.signal(signal.SIGTERM, terminate)
    except (ValueError, OSError, AttributeError):
        pass  # not the main thread, or no SIGTERM on this platform


def _stopped(terminated: bool) -> int:
    """Ctrl-C or SIGTERM: nothing half-written stays, one line says so."""
    for name in ("SIGINT", "SIGTERM"):
        try:
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        except (ValueError, OSError, AttributeError):
            pass
    abandon_writes()
    print("Stopped (terminated): nothing half-written was left." if terminated
          else "Stopped: nothing half-written was left.", file=sys.stderr, flush=True)
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def _paths_as_given(stream) -> None:
    """File names that are not valid UTF-8 reach us as lone surrogates
    (surrogateescape); printed the same way they come back as the same bytes, instead
    of crashing the print."""
    try:
        stream.reconfigure(errors="surrogateescape")
    except (AttributeError, ValueError):
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpt-image-edit",
        description="Edit pictures with the WisGate images API (gpt-image-2).",
        epilog=MAIN_EXAMPLES + "\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    edit = commands.add_parser("edit", help="edit pictures with a prompt",
                               description="Edit pictures with a prompt.",
                               epilog=EDIT_EXAMPLES + "\n" + EXIT_CODES_HELP,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    edit.add_argument("inputs", nargs="+", metavar="INPUT", help="pictures to edit")
    edit.add_argument("--prompt", required=True, help="what should change")
    area = edit.add_mutually_exclusive_group()
    area.add_argument("--mask", metavar="FILE",
                      help="PNG the size of the input, transparent (alpha 0) where the picture "
                           "may change (the API's convention)")
    area.add_argument("--selection", metavar="FILE",
                      help="grayscale picture the size of the input, white where the picture "
                           "may change (as GIMP's selection)")
    edit.add_argument("--model", default="gpt-image-2")
    edit.add_argument("--size", default="auto", help="auto or WIDTHxHEIGHT")
    edit.add_argument("--quality", default="high", choices=("auto", "low", "medium", "high"))
    edit.add_argument("-n", type=int, default=1, dest="variants", metavar="N",
                      help="number of variants, 1 to 10")
    edit.add_argument("--blend", default="seamless", choices=("none", "feather", "seamless"),
                      help="how each result meets the picture: none (the selection as it is, "
                           "the result as sent), feather (a soft edge inside the selection), "
                           "seamless (feather, the model's colour drift corrected and, without "
                           "a selection, only what the model changed taken; the default)")
    edit.add_argument("--reference", action="append", default=[], metavar="FILE",
                      help="a picture sent after the edited one for the model to look at "
                           "(repeatable, up to 15)")
    edit.add_argument("-o", "--output-dir", metavar="OUTDIR",
                      help="folder for the results (default: beside each input)")
    edit.add_argument("--jobs", type=int, default=DEFAULT_JOBS, metavar="N",
                      help=f"edits sent at once (default {DEFAULT_JOBS})")
    edit.add_argument("--json", action="store_true",
                      help="print one JSON object per result on standard output")
    edit.add_argument("--partial-images", type=int, default=None, metavar="N",
                      help="live previews per picture, 0-3 (default: the partial_images "
                           "setting, 2); each costs about 100 output tokens")
    edit.add_argument("--save-previews", metavar="DIR",
                      help="write each live preview into DIR as it arrives")
    edit.add_argument("--estimate", action="store_true",
                      help="print what would be sent and the estimated cost; send nothing")
    edit.add_argument("--max-cost", type=float, default=None, metavar="USD",
                      help="refuse before sending when the whole run is estimated above USD "
                           "(default: the max_cost_usd setting)")
    edit.set_defaults(run=run_edit_command)

    check = commands.add_parser("check", help="check the API key and endpoint (no credits)")
    check.add_argument("--key-from-stdin", action="store_true",
                       help="check the key on the first line of standard input instead of "
                            "the stored one (how the settings dialog tests a typed key)")
    check.set_defaults(run=run_check)

    settings = commands.add_parser(
        "settings", help="print every effective setting and where it comes from, as JSON "
                         "(never the key)")
    settings.add_argument("--update-from-stdin", action="store_true",
                          help="first merge the JSON object on standard input (base_url, "
                               "api_key, timeout; null removes one) into the settings file: "
                               "how GIMP's settings dialog saves, the key never on a "
                               "command line")
    settings.set_defaults(run=run_settings)

    history = commands.add_parser(
        "history", help="list the results history (every picture received), newest first",
        description="List the results history: every picture the API returned to an edit "
                    "from GIMP, kept for 7 days (within 500 MB), newest first.")
    history.add_argument("--json", action="store_true",
                         help="print one JSON object per picture")
    history.set_defaults(run=run_history)

    job = commands.add_parser("job", help="run a worker job (docs/job-protocol.md)")
    job.add_argument("job_file", metavar="JOBFILE")
    job.add_argument("--wait-for-start", action="store_true",
                     help="set up first, then read the job once a line arrives on standard "
                          "input (a host starts the worker while it writes the job)")
    job.set_defaults(run=run_job_command)
    return parser


# -- settings, check, job -------------------------------------------------------------------
def run_settings(args) -> int:
    from .settings import config_path, save_settings, settings_summary

    if args.update_from_stdin:
        changes = _settings_changes(sys.stdin.read())
        try:
            save_settings(changes)
        except OSError as error:
            raise BadInputError(
                f"The settings could not be saved to {config_path()} "
                f"({error.strerror or error}): check that folder's permissions.") from None
    summary = settings_summary()
    if _is_tty(sys.stdout):
        print(json.dumps(summary, indent=2))
    else:
        print(json.dumps(summary))
    if summary["problem"]:
        # Every command says what is wrong with the settings; this one still shows them so
        # that the dialog which repairs them can open.
        print(summary["problem"], file=sys.stderr)
    return EXIT_OK


def _settings_changes(text: str) -> dict:
    try:
        changes = json.loads(text)
    except ValueError:
        changes = None
    if not isinstance(changes, dict) or not set(changes) <= SETTING_NAMES:
        raise BadInputError("The settings to save must be a JSON object with base_url, "
                            "api_key, timeout, partial_images, max_cost_usd or prices.")
    return changes


def run_history(args) -> int:
    from .history import entries, history_dir

    found = entries()
    for record in found:
        if args.json:
            print(json.dumps(record))
        else:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.get("time", 0)))
            print(f"{when}  {record['path']}  {record.get('image') or '-'}: "
                  f"{record.get('prompt', '')}")
    if not found and not args.json:
        print(f"The results history in {history_dir()} is empty.", file=sys.stderr)
    return EXIT_OK


def run_check(args) -> int:
    from .client import ImagesClient
    from .logs import setup_logging
    from .settings import FILE_SOURCE, load_settings

    setup_logging()
    settings = load_settings()
    if args.key_from_stdin:
        typed = sys.stdin.readline().strip()
        if typed:
            # The key about to be saved in the settings file: refusals speak of that file,
            # not of an environment variable that may also be set.
            settings = replace(settings, api_key=typed, key_source=FILE_SOURCE)
    with ImagesClient(settings) as client:
        print(client.check())
    return EXIT_OK


def run_job_command(args) -> int:
    from .job import run_job

    return run_job(args.job_file, wait_for_start=args.wait_for_start)


# -- edit ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Area:
    """Where the pictures may change, from --mask or --selection."""

    path: Path
    selection: object  # PIL.Image.Image, L, 255 where the picture may change

    def for_picture(self, picture, input_path: Path):
        self.check_size(picture.size, input_path)
        return self.selection

    def check_size(self, size: tuple[int, int], input_path: Path) -> None:
        if self.selection.size != size:
            raise BadInputError(
                f"{self.path.name} is {self.selection.width}x{self.selection.height} but "
                f"{input_path.name} is {size[0]}x{size[1]}: they must be the same size.")


def load_area(mask: str | None, selection: str | None) -> Area | None:
    from PIL import ImageOps

    from .imaging import load_picture, load_selection

    if mask:
        path = Path(mask)
        area = ImageOps.invert(load_picture(path, exif_transpose=True).getchannel("A"))
        empty = (f"The mask {path.name} has no transparent pixels: make the area that may "
                 "change transparent (alpha 0), or pass a grayscale picture with --selection.")
    elif selection:
        path = Path(selection)
        area = load_selection(path, exif_transpose=True)
        empty = (f"The selection {path.name} is all black: paint the area that may change "
                 "white.")
    else:
        return None
    if area.getbbox() is None:
        raise BadInputError(empty)
    return Area(path, area)


def run_edit_command(args) -> int:
    from .client import ImagesClient
    from .edit import EditParams, check_model_options
    from .geometry import is_gpt_image
    from .logs import setup_logging
    from .references import check_reference_count, load_references
    from .settings import load_settings, parse_max_cost, parse_partial_images

    setup_logging()
    params = EditParams(prompt=args.prompt, model=args.model, size=args.size,
                        quality=args.quality, variants=args.variants, blend=args.blend)
    check_reference_count(len(args.reference))
    if args.jobs < 1:
        raise BadInputError(f"--jobs {args.jobs} is not a number of edits to run at once: use "
                            "1 or more.")
    settings = load_settings()
    partial_images = (settings.partial_images if args.partial_images is None
                      else parse_partial_images(args.partial_images, "--partial-images"))
    check_model_options(params.model, len(args.reference), args.partial_images or 0)
    if not is_gpt_image(params.model):
        partial_images = 0  # the setting's default previews: a plain request
    limit = settings.max_cost_usd if args.max_cost is None else parse_max_cost(
        args.max_cost, f"--max-cost {args.max_cost:g}")
    if not args.estimate:
        if not settings.api_key:
            raise MissingKeyError()
        ImagesClient(settings).close()  # an unusable endpoint fails here, before any upload
    area = load_area(args.mask, args.selection)
    references = list(zip(args.reference, load_references(args.reference)))
    inputs = [Path(name) for name in args.inputs]
    if args.estimate or limit is not None:
        estimates = estimate_run(inputs, params, area, partial_images,
                                 tuple(data for _, data in references), settings.prices)
        if args.estimate:
            print_estimates(estimates, args.json, sys.stdout)
            return EXIT_OK
        check_cost_limit(estimates, limit, params.model)
    output_dir = Path(args.output_dir) if args.output_dir else None
    created = _make_folder(output_dir) if output_dir is not None else []
    previews = None
    try:
        if args.save_previews and partial_images:
            previews_dir = Path(args.save_previews)
            created += _make_folder(previews_dir)
            check_previews_folder(previews_dir)
            previews = PreviewFiles(previews_dir)
        return run_batch(inputs, params, area=area, output_dir=output_dir, jobs=args.jobs,
                         as_json=args.json, references=references,
                         partial_images=partial_images, previews=previews)
    except KeyboardInterrupt:
        abandon_writes()  # before the folders go: a writer may still be in one
        raise
    finally:
        _remove_if_empty(created)


# -- cost ----------------------------------------------------------------------------------
def estimate_run(inputs: list[Path], params, area: Area | None, partial_images: int,
                 references: tuple[bytes, ...], prices) -> list[tuple[Path, dict]]:
    """Each input with what its edit would send and cost (edit.estimate_edit); reads only
    the pictures' headers."""
    from .edit import estimate_edit, selection_box
    from .imaging import picture_size

    estimates = []
    for path in inputs:
        size = picture_size(path)
        bounds = None
        if area is not None:
            area.check_size(size, path)
            bounds = selection_box(area.selection)
        estimates.append((path, estimate_edit(size, bounds, params, partial_images,
                                              references, prices)))
    return estimates


def run_cost(estimates: list[tuple[Path, dict]]) -> float | None:
    """The whole run's estimated USD; None when any edit's cost is unknown."""
    costs = [estimate["cost_usd"] for _, estimate in estimates]
    return None if any(cost is None for cost in costs) else sum(costs)


def print_estimates(estimates: list[tuple[Path, dict]], as_json: bool, stream) -> None:
    from .pricing import format_usd

    for path, estimate in estimates:
        if as_json:
            print(json.dumps(dict(estimate, input=str(path), estimate=True)), file=stream)
            continue
        region = estimate["region"]
        previews = estimate["partial_images"]
        print(f"{path}: would send {estimate['model']} at {estimate['size']}, quality "
              f"{estimate['quality']}, {_count(estimate['n'], 'variant')}, "
              f"{_count(previews, 'preview')} each, region {region['width']}x"
              f"{region['height']} at {region['x']},{region['y']}: estimated "
              f"{format_usd(estimate['cost_usd'])}", file=stream)
    if len(estimates) > 1 and not as_json:
        print(f"Estimated for all {len(estimates)} edits: {format_usd(run_cost(estimates))}",
              file=stream)
    stream.flush()


def check_cost_limit(estimates: list[tuple[Path, dict]], limit: float, model: str) -> None:
    """A CostLimitError, before anything is sent, when the run's estimate is above `limit`
    or cannot be known."""
    from .errors import CostLimitError

    total = run_cost(estimates)
    edits = "this edit" if len(estimates) == 1 else f"these {len(estimates)} edits"
    if total is None:
        raise CostLimitError(f"The cost of {model} is unknown (the price table has no price "
                             f"for it), so the spending limit of ${limit:.2f} cannot be kept: "
                             "nothing was sent; add its price to the prices setting or raise "
                             "the limit with --max-cost.")
    if total > limit:
        raise CostLimitError(f"{edits[0].upper()}{edits[1:]} would cost about ${total:.2f}, "
                             f"above the spending limit of ${limit:.2f}: nothing was sent; "
                             "send fewer variants or a lower quality, or raise the limit with "
                             "--max-cost.")


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'s' if number != 1 else ''}"


# -- live previews -------------------------------------------------------------------------
class PreviewFiles:
    """--save-previews: each preview written whole into the folder as it arrives, as the
    input with the preview in place (like a result), named <stem>-preview-K.png and never
    over an existing file."""

    def __init__(self, folder: Path):
        self.folder = folder

    def writer(self, path: Path, picture, selection):
        """on_preview for run_edit; returns (on_preview, paths written)."""
        from .imaging import to_size

        written: list[Path] = []

        def write(number: int, preview, region) -> None:
            mode = "RGBA" if picture.getchannel("A").getextrema() != (255, 255) else "RGB"
            output = picture.convert(mode)
            blend = selection.crop(region.bounds()) if selection is not None else None
            layer = to_size(preview, (region.width, region.height)).convert(mode)
            output.paste(layer, (region.x, region.y), blend)
            try:
                temporary = write_temporary(self.folder, f"{path.stem}-preview.png",
                                            _png_writer(output, PREVIEW_COMPRESS_LEVEL),
                                            usual_mode())
                try:
                    written.append(_claim_preview(temporary, self.folder, path.stem, number))
                finally:
                    discard(temporary)
            except OSError as error:
                # A preview is a courtesy: the paid result must not be lost over it.
                log.info("Preview %d of %s not written: %s", number, path, error)
        return write, written


def _claim_preview(temporary: Path, folder: Path, stem: str, number: int) -> Path:
    for run in itertools.count(1):
        name = folder / (f"{stem}-preview-{number}.png" if run == 1
                         else f"{stem}-preview{run}-{number}.png")
        if link_without_overwriting(temporary, name):
            return name


def check_previews_folder(folder: Path) -> None:
    try:
        discard(write_temporary(folder, "gpt-image-edit-check", write_bytes(b"")))
    except OSError as error:
        raise BadInputError(f"The previews folder {folder} cannot be written "
                            f"({error.strerror or type(error).__name__}): choose another "
                            "with --save-previews.") from None


def _make_folder(folder: Path) -> list[Path]:
    """Make `folder` and its missing parents; returns the ones made, outermost first, so
    that a run which writes nothing can take them away again."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _remove_if_empty(list(reversed(missing)))
        raise BadInputError(f"The folder {folder} cannot be made "
                            f"({error.strerror}): choose another with -o.") from None
    return list(reversed(missing))


def _remove_if_empty(created: list[Path]) -> None:
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:
            return  # something was written there (or into a folder inside it)


def run_batch(inputs: list[Path], params, area: Area | None = None,
              output_dir: Path | None = None, jobs: int = DEFAULT_JOBS, as_json: bool = False,
              retry=None, stdout=None, stderr=None, references=(), partial_images: int = 0,
              previews: PreviewFiles | None = None) -> int:
    """Edit every input, up to `jobs` at once; returns the exit code (the first failure's).
    `references` are (name, PNG bytes) pairs sent with every edit; `partial_images` live
    previews are asked for each, and written by `previews` when given."""
    from .client import RetryPolicy

    reporter = Reporter(stdout or sys.stdout, stderr or sys.stderr, params.model, as_json,
                        provenance={"blend": params.blend,
                                    "reference": [name for name, _ in references]})
    pictures = tuple(data for _, data in references)
    throttle = Throttle(min(jobs, len(inputs)))
    retry = retry or RetryPolicy()
    failures: dict[int, tuple[Path, EditError]] = {}

    def edit_input(index: int, path: Path) -> None:
        try:
            written, outcome = _edit_with_throttle(path, params, area, output_dir, retry,
                                                   throttle, reporter, pictures,
                                                   partial_images, previews)
        except Abandoned:
            return  # the tool is stopping; the main thread says so
        except EditError as error:
            failures[index] = (path, error)
            reporter.failed(path, error.kind, str(error))
            return
        except Exception:
            error = _crashed()
            failures[index] = (path, error)
            reporter.failed(path, error.kind, str(error))
            return
        reporter.wrote(path, written, outcome)

    reporter.start()
    try:
        _run_concurrently(list(enumerate(inputs)), edit_input, min(jobs, len(inputs)))
    finally:
        reporter.stop()
    if not failures:
        return EXIT_OK
    ordered = [failures[index] for index in sorted(failures)]
    reporter.summary(ordered, len(inputs))
    return ordered[0][1].exit_code


def _run_concurrently(items: list, work, workers: int) -> None:
    pending: queue.Queue = queue.Queue()
    for item in items:
        pending.put(item)

    def worker() -> None:
        while True:
            try:
                item = pending.get_nowait()
            except queue.Empty:
                return
            work(*item)

    threads = [threading.Thread(target=worker, name=f"edit-{number}", daemon=True)
               for number in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)  # a timed join lets Ctrl+C through on the main thread


def _edit_with_throttle(path: Path, params, area, output_dir, retry, throttle, reporter,
                        references=(), partial_images=0, previews=None):
    """One input, sent again after a rate limit while its WaitBudget allows; once one edit
    has run out of waiting, the inputs not yet sent are not sent at all."""
    from .client import WaitBudget, waited_enough

    waits = WaitBudget(per_wait=retry.retry_after_max)
    for attempt in itertools.count():
        throttle.acquire()
        if throttle.gave_up:
            throttle.release()
            raise RateLimitError(
                f"{path.name} was not sent: WisGate kept rate limiting this batch, so the "
                "rest was stopped: wait a few minutes and try again, or send fewer edits at "
                "once.")
        reporter.started(path)
        try:
            return _edit_one(path, params, area, output_dir, retry, waits, reporter,
                             references, partial_images, previews)
        except RateLimitError as error:
            delay = error.retry_after or min(BATCH_BACKOFF * 2 ** attempt, BATCH_BACKOFF_MAX)
            if attempt >= BATCH_RATE_LIMIT_TRIES or not waits.spend(delay):
                throttle.give_up()
                if attempt >= BATCH_RATE_LIMIT_TRIES:
                    raise
                raise waited_enough(error, delay) from None
            throttle.slow_down(delay)
            reporter.note(f"{path.name}: rate limited; pausing {delay:g} s and sending fewer "
                          "edits at once.")
        finally:
            reporter.finished(path)
            throttle.release()


def _edit_one(path: Path, params, area, output_dir, retry, waits, reporter, references=(),
              partial_images=0, previews=None):
    from .client import ImagesClient
    from .edit import run_edit
    from .imaging import load_source
    from .settings import load_settings

    source = load_source(path, exif_transpose=True)
    picture = source.picture
    selection = area.for_picture(picture, path) if area is not None else None
    folder = output_dir or path.parent
    check_output_folder(folder, results_size(picture, params.variants))
    on_preview, preview_files = (previews.writer(path, picture, selection) if previews
                                 else (None, []))
    try:
        with ImagesClient(load_settings(), retry=retry, waits=waits,
                          on_event=lambda stage, message: reporter.client_event(
                              path, stage, message)) as client:
            outcome = run_edit(client, picture, selection, params, picture_png=source.png,
                               references=references, partial_images=partial_images,
                               on_preview=on_preview)
        written = save_outputs(picture, selection, outcome, folder, path.stem)
    except EditError:
        for preview in preview_files:  # a failed edit leaves no file, previews included
            remove_quietly(preview)
        raise
    return written, outcome


def results_size(picture, variants: int) -> int:
    """The most bytes the results of an edit of `picture` can take: PNG never needs much
    more than the raw pixels."""
    return variants * (picture.width * picture.height * 4 + picture.height + 64 * 1024)


def check_output_folder(folder: Path, needed: int) -> None:
    """Before anything is paid for: can `folder` take the results? A BadInputError naming
    the folder if it cannot be written or has not got room for them."""
    try:
        discard(write_temporary(folder, "gpt-image-edit-check", write_bytes(b"")))
        free = shutil.disk_usage(str(folder)).free
    except OSError as error:
        raise _cannot_write(folder, error) from None
    if free < needed:
        raise BadInputError(f"The disk holding {folder} is full (the results may need "
                            f"{_megabytes(needed)}, {_megabytes(free)} are free): free some "
                            "space or choose another folder with -o.")


def _cannot_write(folder: Path, error: OSError) -> BadInputError:
    if is_full_disk(error):
        return BadInputError(f"The disk holding {folder} is full: free some space or choose "
                             "another folder with -o.")
    return BadInputError(f"The folder {folder} cannot be written "
                         f"({error.strerror or type(error).__name__}): choose another "
                         "folder with -o.")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def save_outputs(picture, selection, outcome, folder: Path, stem: str) -> list[Path]:
    """The whole picture with each result composited through its mask (EditOutcome.masks,
    else the selection; outside it the input's pixels, exactly), as PNGs under names no
    existing file has, with the user's usual file mode. A result that covers the whole
    picture as received (EditOutcome.as_received) and has no mask is written as those bytes.
    Every result is written whole under a temporary name first; only then do the names
    appear (claim_names)."""
    region = outcome.region
    whole = selection is None and region == Box(0, 0, picture.width, picture.height)
    # An opaque input is written as RGB: smaller, and one full-size copy fewer in memory.
    mode = "RGBA" if picture.getchannel("A").getextrema() != (255, 255) else "RGB"
    blend = selection.crop(region.bounds()) if selection is not None else None
    received = outcome.as_received or [None] * len(outcome.layers)
    masks = outcome.masks or [None] * len(outcome.layers)
    temporaries: list[Path] = []
    try:
        for layer, data, mask in zip(outcome.layers, received, masks):
            if whole and data is not None and mask is None:
                writer = write_bytes(data)
            else:
                output = picture.convert(mode) if mode == "RGB" else picture.copy()
                output.paste(layer.convert(mode), (region.x, region.y),
                             mask if mask is not None else blend)
                writer = _png_writer(output)
                del output
            temporaries.append(write_temporary(folder, f"{stem}-edit.png", writer,
                                               usual_mode()))
            del writer  # one full-size composite in memory at a time
        return claim_names(temporaries, folder, stem)
    except OSError as error:
        raise _cannot_write(folder, error) from None
    finally:
        for temporary in temporaries:
            discard(temporary)


def _png_writer(picture, level: int = OUTPUT_COMPRESS_LEVEL):
    def write(stream):
        picture.save(stream, "PNG", compress_level=level)
    return write


def claim_names(temporaries: list[Path], folder: Path, stem: str) -> list[Path]:
    """Give the finished files <stem>-edit.png (or -edit-1.png...) in `folder`, or -edit2,
    -edit3... when those exist: never overwriting a file, not even one another edit of this
    batch has just written, and never showing a name before its whole content."""
    count = len(temporaries)
    for run in itertools.count(1):
        base = f"{stem}-edit" if run == 1 else f"{stem}-edit{run}"
        names = ([folder / f"{base}.png"] if count == 1
                 else [folder / f"{base}-{number}.png" for number in range(1, count + 1)])
        claimed = []
        for temporary, name in zip(temporaries, names):
            if not link_without_overwriting(temporary, name):
                break
            claimed.append(name)
        else:
            return names
        for name in claimed:
            remove_quietly(name)


def _crashed() -> UnexpectedError:
    """The error for the exception being handled, whose traceback goes to the log."""
    from .logs import log_path, setup_logging

    try:
        setup_logging()  # the traceback goes to the log the sentence names, never to stderr
    except Exception:
        pass
    log.exception("gpt-image-edit failed unexpectedly")
    return unexpected_failure("gpt-image-edit", log_path())


class Throttle:
    """How many edits may be out at once. A rate limit pauses everyone for a while and
    halves the limit, so a batch slows down instead of failing."""

    def __init__(self, limit: int):
        self._limit = max(1, limit)
        self._active = 0
        self._resume_at = 0.0
        self._condition = threading.Condition()
        self.gave_up = False

    @property
    def limit(self) -> int:
        return self._limit

    def acquire(self) -> None:
        with self._condition:
            while True:
                pause = self._resume_at - time.monotonic()
                if self.gave_up or (pause <= 0 and self._active < self._limit):
                    self._active += 1
                    return
                self._condition.wait(timeout=pause if pause > 0 else None)

    def release(self) -> None:
        with self._condition:
            self._active -= 1
            self._condition.notify_all()

    def give_up(self) -> None:
        """An edit waited all it may: let everyone through at once, to be refused."""
        with self._condition:
            self.gave_up = True
            self._condition.notify_all()

    def slow_down(self, pause: float) -> None:
        with self._condition:
            self._limit = max(1, self._limit // 2)
            self._resume_at = max(self._resume_at, time.monotonic() + pause)
            self._condition.notify_all()


class Reporter:
    """What the user sees: results on standard output (paths, or JSON objects with --json),
    elapsed time on standard error while edits are out (one updating line on a terminal, a
    line every few seconds otherwise), and failures."""

    def __init__(self, stdout, stderr, model: str, as_json: bool, provenance=None):
        self._stdout = stdout
        self._provenance = provenance or {}
        self._stderr = stderr
        self._model = model
        self._as_json = as_json
        self._tty = _is_tty(stderr)
        self._running: dict[Path, float] = {}
        self._lock = threading.Lock()
        self._line_shown = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        with self._lock:
            self._clear_line()

    def started(self, path: Path) -> None:
        with self._lock:
            self._running[path] = time.monotonic()

    def finished(self, path: Path) -> None:
        with self._lock:
            self._running.pop(path, None)

    def client_event(self, path: Path, stage: str, message: str) -> None:
        if stage == "retry":
            self.note(f"{path.name}: {message}")

    def note(self, text: str) -> None:
        with self._lock:
            self._clear_line()
            print(text, file=self._stderr, flush=True)

    def wrote(self, path: Path, written: list[Path], outcome) -> None:
        from .pricing import format_usd

        with self._lock:
            self._clear_line()
            for variant, output in enumerate(written, start=1):
                if self._as_json:
                    line = json.dumps({"ok": True, "input": str(path), "output": str(output),
                                       "variant": variant, "region": outcome.region.as_dict(),
                                       "request": outcome.request, "usage": outcome.usage,
                                       "cost_usd": outcome.cost_usd, **self._provenance})
                else:
                    line = str(output)
                print(line, file=self._stdout, flush=True)
            if not self._as_json:
                cost = format_usd(outcome.cost_usd)
                print(f"{path}: {cost if outcome.cost_usd is None else 'cost ' + cost}",
                      file=self._stderr, flush=True)

    def failed(self, path: Path, kind: str, message: str) -> None:
        if not self._as_json:
            return  # listed together at the end, on standard error
        with self._lock:
            print(json.dumps({"ok": False, "input": str(path),
                              "error": {"kind": kind, "message": message}}),
                  file=self._stdout, flush=True)

    def summary(self, failures: list, total: int) -> None:
        with self._lock:
            self._clear_line()
            if total == 1:
                print(_failure_line(*failures[0]), file=self._stderr, flush=True)
                return
            print(f"{len(failures)} of {total} edits failed:", file=self._stderr)
            for path, error in failures:
                print(f"  {_failure_line(path, error)}", file=self._stderr)
            self._stderr.flush()

    def _tick(self) -> None:
        interval = TTY_TICK if self._tty else LOG_TICK
        while not self._stopped.wait(interval):
            with self._lock:
                if not self._running:
                    continue
                now = time.monotonic()
                waits = ", ".join(f"{path.name} {int(now - since)} s"
                                  for path, since in self._running.items())
                line = f"Waiting for {self._model}: {waits}"
                if self._tty:
                    self._stderr.write("\r" + line + "\x1b[K")
                    self._line_shown = True
                else:
                    self._stderr.write(line + "\n")
                self._stderr.flush()

    def _clear_line(self) -> None:
        if self._line_shown:
            self._stderr.write("\r\x1b[K")
            self._stderr.flush()
            self._line_shown = False


def _failure_line(path: Path, error: EditError) -> str:
    """The failure's sentence, naming its input file unless the sentence already does."""
    message = str(error)
    return message if str(path) in message else f"{path}: {message}"


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
