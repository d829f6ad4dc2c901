"""The command-line tool: `gpt-image-edit edit | check | job | plan`.

Only geometry and errors are imported up front: `plan` runs on every edit from GIMP and must
start without loading Pillow or requests. Every failure prints its one sentence, never a
traceback (that goes to the log).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import __version__
from .errors import (
    EXIT_OK,
    BadInputError,
    EditError,
    MissingKeyError,
    RateLimitError,
    UnexpectedError,
    unexpected_failure,
)
from .files import remove_quietly
from .geometry import SIZE_PATTERN, Box, plan_region

EXIT_INTERRUPTED = 130
DEFAULT_JOBS = 2
SETTING_NAMES = frozenset({"base_url", "api_key", "timeout"})
# A rate limit that outlasts the client's own retries pauses the whole batch, halves its
# concurrency and sends that input again, at most this many times.
BATCH_RATE_LIMIT_TRIES = 3
BATCH_BACKOFF = 5.0
BATCH_BACKOFF_MAX = 60.0
# Level 3 writes a large photo about a third faster than the default 6, for a file only a
# few percent larger.
OUTPUT_COMPRESS_LEVEL = 3
TTY_TICK = 1.0
LOG_TICK = 5.0

log = logging.getLogger(__name__)


def main(argv=None) -> int:
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
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        error = _crashed()
        print(str(error), file=sys.stderr)
        return error.exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpt-image-edit",
        description="Edit pictures with the WisGate images API (gpt-image-2).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    edit = commands.add_parser("edit", help="edit pictures with a prompt")
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
    edit.set_defaults(run=run_edit_command)

    check = commands.add_parser("check", help="check the API key and endpoint (no credits)")
    check.add_argument("--key-from-stdin", action="store_true",
                       help="check the key on the first line of standard input instead of "
                            "the stored one (how the settings dialog tests a typed key)")
    check.set_defaults(run=run_check)

    settings = commands.add_parser(
        "settings", help="print the settings file's values as JSON (never the key)")
    settings.add_argument("--update-from-stdin", action="store_true",
                          help="first merge the JSON object on standard input (base_url, "
                               "api_key, timeout; null removes one) into the settings file: "
                               "how GIMP's settings dialog saves, the key never on a "
                               "command line")
    settings.set_defaults(run=run_settings)

    job = commands.add_parser("job", help="run a worker job (docs/job-protocol.md)")
    job.add_argument("job_file", metavar="JOBFILE")
    job.set_defaults(run=run_job_command)

    plan = commands.add_parser("plan", help="print the region an edit sends, as JSON")
    plan.add_argument("--layer-size", required=True, metavar="WxH")
    plan.add_argument("--selection-bounds", metavar="X1,Y1,X2,Y2")
    plan.set_defaults(run=run_plan)
    return parser


# -- plan, check, job ------------------------------------------------------------------------
def run_plan(args) -> int:
    match = SIZE_PATTERN.match(args.layer_size)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise BadInputError(f"The layer size '{args.layer_size}' is not WIDTHxHEIGHT, for "
                            "example 6000x4000.")
    width, height = int(match.group(1)), int(match.group(2))
    selection = None
    if args.selection_bounds:
        selection = _parse_bounds(args.selection_bounds)
    print(json.dumps(plan_region(width, height, selection).as_dict()))
    return EXIT_OK


def _parse_bounds(text: str) -> Box:
    try:
        x1, y1, x2, y2 = (int(part) for part in text.split(","))
    except ValueError:
        x1 = y1 = x2 = y2 = 0
    if x2 <= x1 or y2 <= y1:
        raise BadInputError(f"The selection bounds '{text}' are not X1,Y1,X2,Y2 with X2 > X1 "
                            "and Y2 > Y1, for example 10,20,110,220.")
    return Box.from_bounds(x1, y1, x2, y2)


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
    print(json.dumps(settings_summary()))
    return EXIT_OK


def _settings_changes(text: str) -> dict:
    try:
        changes = json.loads(text)
    except ValueError:
        changes = None
    if not isinstance(changes, dict) or not set(changes) <= SETTING_NAMES:
        raise BadInputError("The settings to save must be a JSON object with base_url, "
                            "api_key or timeout.")
    return changes


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

    return run_job(args.job_file)


# -- edit ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Area:
    """Where the pictures may change, from --mask or --selection."""

    path: Path
    selection: object  # PIL.Image.Image, L, 255 where the picture may change

    def for_picture(self, picture, input_path: Path):
        if self.selection.size != picture.size:
            raise BadInputError(
                f"{self.path.name} is {self.selection.width}x{self.selection.height} but "
                f"{input_path.name} is {picture.width}x{picture.height}: they must be the "
                "same size.")
        return self.selection


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
    from .edit import EditParams
    from .logs import setup_logging
    from .settings import load_settings

    setup_logging()
    from .references import check_reference_count, load_references

    params = EditParams(prompt=args.prompt, model=args.model, size=args.size,
                        quality=args.quality, variants=args.variants, blend=args.blend)
    check_reference_count(len(args.reference))
    if args.jobs < 1:
        raise BadInputError(f"--jobs {args.jobs} is not a number of edits to run at once: use "
                            "1 or more.")
    settings = load_settings()
    if not settings.api_key:
        raise MissingKeyError()
    ImagesClient(settings).close()  # an unusable endpoint fails here, before any upload
    area = load_area(args.mask, args.selection)
    references = list(zip(args.reference, load_references(args.reference)))
    output_dir = Path(args.output_dir) if args.output_dir else None
    if output_dir is not None:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInputError(f"The folder {output_dir} cannot be made "
                                f"({error.strerror}): choose another with -o.") from None
    return run_batch([Path(name) for name in args.inputs], params, area=area,
                     output_dir=output_dir, jobs=args.jobs, as_json=args.json,
                     references=references)


def run_batch(inputs: list[Path], params, area: Area | None = None,
              output_dir: Path | None = None, jobs: int = DEFAULT_JOBS, as_json: bool = False,
              retry=None, stdout=None, stderr=None, references=()) -> int:
    """Edit every input, up to `jobs` at once; returns the exit code (the first failure's).
    `references` are (name, PNG bytes) pairs sent with every edit."""
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
                                                   throttle, reporter, pictures)
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
                        references=()):
    for attempt in itertools.count():
        throttle.acquire()
        reporter.started(path)
        try:
            return _edit_one(path, params, area, output_dir, retry, reporter, references)
        except RateLimitError as error:
            if attempt >= BATCH_RATE_LIMIT_TRIES:
                raise
            delay = error.retry_after or min(BATCH_BACKOFF * 2 ** attempt, BATCH_BACKOFF_MAX)
            throttle.slow_down(delay)
            reporter.note(f"{path.name}: rate limited; pausing {delay:g} s and sending fewer "
                          "edits at once.")
        finally:
            reporter.finished(path)
            throttle.release()


def _edit_one(path: Path, params, area, output_dir, retry, reporter, references=()):
    from .client import ImagesClient
    from .edit import run_edit
    from .imaging import load_source
    from .settings import load_settings

    source = load_source(path, exif_transpose=True)
    picture = source.picture
    selection = area.for_picture(picture, path) if area is not None else None
    with ImagesClient(load_settings(), retry=retry,
                      on_event=lambda stage, message: reporter.client_event(path, stage,
                                                                            message)) as client:
        outcome = run_edit(client, picture, selection, params, picture_png=source.png,
                           references=references)
    folder = output_dir or path.parent
    written = save_outputs(picture, selection, outcome, folder, path.stem)
    return written, outcome


def save_outputs(picture, selection, outcome, folder: Path, stem: str) -> list[Path]:
    """The whole picture with each result composited through its mask (EditOutcome.masks,
    else the selection; outside it the input's pixels, exactly), as PNGs under names no
    existing file has. A result that covers the whole picture as received
    (EditOutcome.as_received) and has no mask is written as those bytes."""
    from .files import replace_atomically, write_bytes

    region = outcome.region
    whole = selection is None and region == Box(0, 0, picture.width, picture.height)
    # An opaque input is written as RGB: smaller, and one full-size copy fewer in memory.
    mode = "RGBA" if picture.getchannel("A").getextrema() != (255, 255) else "RGB"
    blend = selection.crop(region.bounds()) if selection is not None else None
    received = outcome.as_received or [None] * len(outcome.layers)
    masks = outcome.masks or [None] * len(outcome.layers)
    paths = reserve_names(folder, stem, len(outcome.layers))
    try:
        for path, layer, data, mask in zip(paths, outcome.layers, received, masks):
            if whole and data is not None and mask is None:
                replace_atomically(path, write_bytes(data))
                continue
            output = picture.convert(mode) if mode == "RGB" else picture.copy()
            output.paste(layer.convert(mode), (region.x, region.y),
                         mask if mask is not None else blend)
            replace_atomically(path, lambda stream, output=output: output.save(
                stream, "PNG", compress_level=OUTPUT_COMPRESS_LEVEL))
            del output
    except BaseException:
        for path in paths:
            remove_quietly(path)
        raise
    return paths


def reserve_names(folder: Path, stem: str, count: int) -> list[Path]:
    """Claim <stem>-edit.png (or -edit-1.png...) in `folder`, or -edit2, -edit3... when those
    exist: each name is created empty and exclusively, so no file is ever overwritten, not
    even by another edit of this batch writing to the same folder."""
    for run in itertools.count(1):
        base = f"{stem}-edit" if run == 1 else f"{stem}-edit{run}"
        names = ([folder / f"{base}.png"] if count == 1
                 else [folder / f"{base}-{number}.png" for number in range(1, count + 1)])
        claimed = []
        try:
            for name in names:
                with open(name, "xb"):
                    claimed.append(name)
            return names
        except FileExistsError:
            for name in claimed:
                remove_quietly(name)
        except OSError as error:
            for name in claimed:
                remove_quietly(name)
            raise BadInputError(f"Cannot write {name} ({error.strerror}): choose another "
                                "folder with -o.") from None


def _crashed() -> UnexpectedError:
    """The error for the exception being handled, whose traceback goes to the log."""
    from .logs import log_path

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

    @property
    def limit(self) -> int:
        return self._limit

    def acquire(self) -> None:
        with self._condition:
            while True:
                pause = self._resume_at - time.monotonic()
                if pause <= 0 and self._active < self._limit:
                    self._active += 1
                    return
                self._condition.wait(timeout=pause if pause > 0 else None)

    def release(self) -> None:
        with self._condition:
            self._active -= 1
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
        with self._lock:
            self._clear_line()
            for variant, output in enumerate(written, start=1):
                if self._as_json:
                    line = json.dumps({"ok": True, "input": str(path), "output": str(output),
                                       "variant": variant, "region": outcome.region.as_dict(),
                                       "request": outcome.request, "usage": outcome.usage,
                                       **self._provenance})
                else:
                    line = str(output)
                print(line, file=self._stdout, flush=True)

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
                print(str(failures[0][1]), file=self._stderr, flush=True)
                return
            print(f"{len(failures)} of {total} edits failed:", file=self._stderr)
            for path, error in failures:
                print(f"  {path}: {error}", file=self._stderr)
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


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
