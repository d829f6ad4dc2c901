"""The host side of the worker job protocol (docs/job-protocol.md).

Shared by the GIMP 3 entry and the GIMP 2.10 entry, so it is valid Python 2.7 and 3 and
uses the standard library only. It makes the private job folder, writes the job, runs the
worker without blocking the caller, reads its progress lines, and hands back the manifest.
It makes no GIMP call: the entries do that, on their own main thread.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

try:
    import queue
except ImportError:  # Python 2.7
    import Queue as queue

WORKER_ENV = "GPT_IMAGE_EDIT_WORKER"
WORKER_FILE = "gpt-image-edit-worker.json"
JOB_FOLDER_MARKER = ".gpt-image-edit-job"
PROTOCOL = 2
# Raw pixels (protocol 2): rows top first, 8 bits a channel, no header; the job or the
# manifest says the size. Writing and reading them costs a copy, where a PNG of a 24 MP
# layer costs seconds of compression in the host and in the worker.
RAW_CHANNELS = {"RGBA": 4, "RGB": 3, "L": 1}
KILL_GRACE_SECONDS = 2.0
# A worker started ahead of its job (WorkerRun wait_for_start) waits for START_LINE on its
# standard input before it reads the job (docs/job-protocol.md, "Running the worker").
WAIT_FOR_START = "--wait-for-start"
START_LINE = b"start\n"
CHECK_TIMEOUT = 30.0  # seconds: a connection test answers quickly or not at all

# Where the retoucher changes the settings, on GIMP 3 and 2.10 alike. The worker's sentences
# name it (it says what is wrong; the host, through this, where to fix it).
SETTINGS_MENU = "Filters > AI > GPT Image Settings..."
SETTINGS_PLACE_ENV = "GPT_IMAGE_EDIT_SETTINGS_PLACE"

# How a worker run ended, written into the job's folder by a host process that watched it
# for another one (GIMP 3's preview process, see docs/architecture.md).
OUTCOME_FILE = "worker-outcome.json"

PARASITE_NAME = "gpt-image-edit"
# A live preview layer (docs/architecture.md, "Live previews"), in both GIMPs: its name, and
# the non-persistent parasite holding its job folder, by which the edit takes it away.
PREVIEW_PARASITE = "gpt-image-edit-preview"
PREVIEW_NAME = "GPT preview (goes away by itself)"
LAYER_NAME_PREFIX = "GPT edit: "
LAYER_NAME_PROMPT_CHARS = 40

# The settings an estimate needs (the worker's settings.py names them the same; a test pins
# them equal), read here without starting the worker.
CONFIG_ENV = "GPT_IMAGE_EDIT_CONFIG"
PARTIAL_IMAGES_ENV = "GPT_IMAGE_EDIT_PARTIAL_IMAGES"
MAX_COST_ENV = "GPT_IMAGE_EDIT_MAX_COST"
APP_NAME = "gpt-image-edit"
SETTINGS_FILE = "settings.json"
DEFAULT_PARTIAL_IMAGES = 2
MAX_PARTIAL_IMAGES = 3
SECRET_KEY = "api_key"

# A worker whose failure came without its own sentence (its manifest or outcome names none).
NO_REASON = ("The GPT Image Edit worker failed without saying why; the image is unchanged: "
             "try the edit again.")
NOT_INSTALLED = ("The GPT Image Edit worker is not set up: run 'python3 install/install.py' "
                 "from the plug-in's download, then restart GIMP.")


class HostError(Exception):
    """A failure with one sentence for the user as its text; `kind` is the worker's error
    kind when the worker reported one (docs/job-protocol.md), else None."""

    def __init__(self, message, kind=None):
        Exception.__init__(self, message)
        self.kind = kind


class Preview(object):
    """A live preview the worker wrote: `path` (raw pixels in the job's results folder),
    `index` (1, 2, ... in arrival order), `size` (width, height: the model's picture or the
    region's when smaller, never more), `mode` (its raw mode, "RGB") and `placement`
    (where the result will land, image coordinates: x, y, width, height), to which a host
    scales it."""

    def __init__(self, path, index, placement, size, mode):
        self.path = path
        self.index = index
        self.placement = placement
        self.size = size
        self.mode = mode

    def pixels(self):
        """Its raw pixels (read_raw); IOError or ValueError when gone or cut short."""
        return read_raw(self.path, self.size[0], self.size[1], self.mode)

    def __repr__(self):
        return "Preview(%r, %r, %r, %r)" % (self.path, self.index, self.placement, self.size)


class Worker(object):
    """How to start the worker: its interpreter and the folders to put on its PYTHONPATH."""

    def __init__(self, python, pythonpath=()):
        self.python = python
        self.pythonpath = list(pythonpath)

    def environment(self):
        """GIMP's environment without what points at GIMP's own Python (a bundled GIMP sets
        PYTHONHOME and PYTHONPATH), which would break or shadow the worker's."""
        env = dict(os.environ)
        env.pop("PYTHONHOME", None)
        env[SETTINGS_PLACE_ENV] = SETTINGS_MENU
        if self.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(self.pythonpath)
        return env


def find_worker(entry_dir):
    """$GPT_IMAGE_EDIT_WORKER (an interpreter that imports gpt_image_edit), else the
    gpt-image-edit-worker.json the installer wrote beside the entry."""
    python = os.environ.get(WORKER_ENV)
    if python:
        worker = Worker(python)
    else:
        worker = _read_worker_file(os.path.join(entry_dir, WORKER_FILE))
    if worker is None or not os.path.isfile(worker.python):
        raise HostError(NOT_INSTALLED)
    return worker


def _read_worker_file(path):
    try:
        with open(path) as handle:
            described = json.load(handle)
        return Worker(described["python"], described.get("pythonpath", []))
    except (IOError, OSError, ValueError, KeyError, TypeError):
        return None


def worker_settings(worker, changes=None):
    """The worker's `settings`, as both GIMPs' settings dialogs read and save them: the
    file's values, never the key, and whether edits have a key at all. With changes, the
    worker first merges them into the file; the key travels on its standard input, never on
    a command line. The worker is the one writer of the settings file."""
    argv = [worker.python, "-m", "gpt_image_edit", "settings"]
    if changes is not None:
        argv.append("--update-from-stdin")
    try:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=worker.environment(),
                                   **_no_window())
    except OSError:
        raise HostError(NOT_INSTALLED)  # noqa: B904 (Python 2.7)
    out, err = process.communicate(json.dumps(changes or {}).encode("utf-8"))
    if process.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        raise HostError(lines[-1] if lines else NOT_INSTALLED)
    return json.loads(out.decode("utf-8"))


class CostSettings(object):
    """What an estimate needs from the settings: `partial_images` (live previews per edit),
    `prices` (the `prices` setting as written: model name prefixes over the built-in table;
    None without one) and `max_cost_usd` (None: no spending limit)."""

    def __init__(self, partial_images=DEFAULT_PARTIAL_IMAGES, prices=None, max_cost_usd=None):
        self.partial_images = partial_images
        self.prices = prices
        self.max_cost_usd = max_cost_usd

    def __repr__(self):
        return "CostSettings(%r, %r, %r)" % (self.partial_images, self.prices,
                                             self.max_cost_usd)


def cost_settings(environ=None):
    """The cost settings as the worker will use them (environment first, then the settings
    file, then defaults), read in-process: a dialog's estimate follows each change without
    starting the worker. The key is never kept: it is dropped as the file is parsed. A
    value the worker would refuse counts as not set here; the worker says what is wrong
    with it when the edit runs."""
    environ = os.environ if environ is None else environ
    stored = _read_settings_file(settings_path(environ))
    partial_images = _first_valid(_parse_partial_images, _env(environ, PARTIAL_IMAGES_ENV),
                                  stored.get("partial_images"))
    max_cost = _first_valid(_parse_max_cost, _env(environ, MAX_COST_ENV),
                            stored.get("max_cost_usd"))
    prices = stored.get("prices")
    return CostSettings(DEFAULT_PARTIAL_IMAGES if partial_images is None else partial_images,
                        prices, max_cost)


def settings_path(environ=None, platform=None, home=None):
    """$GPT_IMAGE_EDIT_CONFIG, else settings.json in the platform's configuration folder
    for gpt-image-edit: the worker's rule (settings.config_path)."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    home = os.path.expanduser("~") if home is None else home
    override = environ.get(CONFIG_ENV)
    if override:
        return os.path.expanduser(override)
    if platform == "win32":
        base = environ.get("APPDATA") or os.path.join(home, "AppData", "Roaming")
    elif platform == "darwin":
        base = os.path.join(home, "Library", "Application Support")
    else:
        base = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return os.path.join(base, APP_NAME, SETTINGS_FILE)


def _read_settings_file(path):
    """The settings file's values without the key ({} when there is no usable file)."""
    try:
        with open(path, "rb") as handle:
            stored = json.loads(handle.read().decode("utf-8"), object_pairs_hook=_without_key)
    except (IOError, OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def _without_key(pairs):
    return dict((name, value) for name, value in pairs if name != SECRET_KEY)


def _env(environ, name):
    """An environment setting; an empty or blank variable counts as not set (as in the
    worker)."""
    value = (environ.get(name) or "").strip()
    return value or None


def _first_valid(parse, *candidates):
    """The first candidate given (not None), parsed; None when it is unusable."""
    for candidate in candidates:
        if candidate is not None:
            return parse(candidate)
    return None


def _parse_partial_images(value):
    if isinstance(value, bool) or not isinstance(value, (int, type(u""), str)):
        return None
    text = u"%s" % value
    text = text.strip()
    if not text.isdigit() or not 0 <= int(text) <= MAX_PARTIAL_IMAGES:
        return None
    return int(text)


def _parse_max_cost(value):
    if isinstance(value, bool):
        return None
    try:
        cost = float(value)
    except (TypeError, ValueError):
        return None
    return cost if 0 < cost < float("inf") else None


class ConnectionCheck(object):
    """The worker's `check` run with what a settings dialog holds. A typed key travels on
    the worker's standard input, never on its command line or in its environment, where
    other processes could read it."""

    def __init__(self, worker, changes, default_base_url):
        env = worker.environment()
        env["GPT_IMAGE_EDIT_BASE_URL"] = changes["base_url"] or default_base_url
        env["GPT_IMAGE_EDIT_TIMEOUT"] = str(min(changes["timeout"], CHECK_TIMEOUT))
        typed_key = changes.get("api_key") or u""
        try:
            self.process = subprocess.Popen(
                [worker.python, "-m", "gpt_image_edit", "check", "--key-from-stdin"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, **_no_window())
        except OSError:
            raise HostError(NOT_INSTALLED)  # noqa: B904 (Python 2.7)
        self.process.stdin.write((typed_key + u"\n").encode("utf-8"))
        self.process.stdin.close()

    def running(self):
        return self.process.poll() is None

    def stop(self):
        if self.running():
            self.process.kill()
        self._collect()

    def _collect(self):
        """The worker's output, once it has ended. (communicate() would flush the standard
        input this class already closed, and fail.)"""
        out, err = self.process.stdout.read(), self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        self.process.wait()
        return out, err

    def sentence(self):
        """The worker's last line: its answer on success, its sentence on failure."""
        out, err = self._collect()
        lines = (out or err).decode("utf-8", "replace").strip().splitlines()
        if lines:
            return lines[-1]
        return u"The connection test gave no answer (exit code %d)." % self.process.returncode


class Job(object):
    """A private folder holding one job; use as a context manager so it is always removed.
    Job(folder) is a job another process of the host made (and removes): a folder that
    is not one of ours is refused with ValueError."""

    def __init__(self, folder=None):
        if folder is None:
            folder = tempfile.mkdtemp(prefix="gpt-image-edit-")
            # Tells the worker this folder is the job's alone: a worker whose host died
            # removes it (docs/job-protocol.md, "Cancel").
            open(os.path.join(folder, JOB_FOLDER_MARKER), "w").close()
        elif not os.path.isfile(os.path.join(folder, JOB_FOLDER_MARKER)):
            raise ValueError("%s is not a GPT Image Edit job folder" % folder)
        self.folder = folder
        self.source_path = os.path.join(self.folder, "source.raw")
        self.selection_path = os.path.join(self.folder, "selection.gray")
        self.path = os.path.join(self.folder, "job.json")
        self.output_dir = os.path.join(self.folder, "results")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def reference_path(self, number):
        """Where the `number`th reference picture's raw pixels go (1, 2, ...)."""
        return os.path.join(self.folder, "reference-%d.raw" % number)

    def relative(self, path):
        """A path in the job's folder as the job file names it."""
        return os.path.relpath(path, self.folder).replace(os.sep, "/")

    def write(self, arguments, layer, mode, source_origin, source_size,
              with_selection=False, partial_images=None, cost_confirmed=False,
              image_name=None, references=(), source_scale=None):
        """Write job.json: the source (and selection) are raw pixels of the region at full
        size (write_raw), and the results come back raw.

        arguments: dict with prompt, model, size, quality, variants, and blend (none
        without it);
        layer: dict with width, height, offset_x, offset_y;
        mode: the source's raw mode, "RGBA" or "RGB";
        source_origin: where the region's top-left pixel sits in layer coordinates;
        source_size: (width, height) of the region;
        partial_images: live previews to ask for (None: the worker's setting);
        cost_confirmed: the user agreed to an estimate above the spending limit;
        image_name: the image's name, for the results history;
        references: the job's `references` entries (raw pixels: path, name, pixels, width,
        height), sent after the picture;
        source_scale: (numerator, denominator) when the source is the region scaled down by
        that factor (an opaque RGB whole layer, docs/job-protocol.md "A scaled source").
        """
        source = {"path": "source.raw", "pixels": mode, "x": source_origin[0],
                  "y": source_origin[1], "width": source_size[0], "height": source_size[1]}
        if source_scale is not None:
            source["scale"] = list(source_scale)
        selection = {"path": "selection.gray", "pixels": "L"}
        job = {
            "protocol": PROTOCOL,
            "prompt": arguments["prompt"],
            "model": arguments["model"],
            "size": arguments["size"],
            "quality": arguments["quality"],
            "variants": int(arguments["variants"]),
            "layer": dict(layer),
            "source": source,
            "selection": selection if with_selection else None,
            "output_dir": "results",
            "result_pixels": "raw",
            "blend": arguments.get("blend", "none"),
        }
        if references:
            job["references"] = [dict(entry) for entry in references]
        if image_name is not None:
            job["image_name"] = image_name
        if partial_images is not None:
            job["partial_images"] = int(partial_images)
        if cost_confirmed:
            job["cost_confirmed"] = True
        with open(self.path, "w") as handle:
            json.dump(job, handle)

    def save_outcome(self, error=None):
        """How a worker run watched by another process of the host ended (see
        load_outcome): None for a manifest ready in the results folder, else the
        HostError."""
        outcome = {"ok": error is None}
        if error is not None:
            outcome.update(message=error.args[0] if error.args else u"", kind=error.kind)
        with open(os.path.join(self.folder, OUTCOME_FILE), "w") as handle:
            json.dump(outcome, handle)

    def load_outcome(self):
        """The manifest of a worker run another process of the host watched; HostError
        with its sentence when it failed, or when that process left no outcome (None is
        returned only by a process that was stopped: the caller knows)."""
        try:
            with open(os.path.join(self.folder, OUTCOME_FILE)) as handle:
                outcome = json.load(handle)
        except (IOError, OSError, ValueError):
            return None
        if not isinstance(outcome, dict) or not outcome.get("ok"):
            message = outcome.get("message") if isinstance(outcome, dict) else None
            raise HostError(message or NO_REASON,
                            outcome.get("kind") if isinstance(outcome, dict) else None)
        manifest = _read_manifest(self.output_dir)
        if manifest is None or not manifest.get("ok"):
            raise HostError(NO_REASON)
        return manifest

    def clear_results(self):
        """Remove a finished run's results folder (and outcome), so the job can run again."""
        shutil.rmtree(self.output_dir, ignore_errors=True)
        try:
            os.remove(os.path.join(self.folder, OUTCOME_FILE))
        except OSError:
            pass

    def result_path(self, entry):
        return os.path.join(self.output_dir, entry["path"])

    def inside(self, relative):
        """`relative` (a path a progress line names) inside the job's folder, or None when
        it is not text, absolute or climbs out: the host opens nothing else."""
        try:
            parts = relative.replace("\\", "/").split("/")
        except AttributeError:
            return None
        if not relative or os.path.isabs(relative) or ".." in parts:
            return None
        return os.path.join(self.folder, *parts)


class WorkerRun(object):
    """One running worker. poll() from the host's main loop; nothing here blocks for long.
    `on_preview(preview)` (a Preview) is called from poll(), so on the host's own thread,
    for each live preview the worker announces.

    With wait_for_start, the worker is started before its job is written: it sets itself
    up (its interpreter and imports, a fifth of a second) while the host exports the
    pixels, and reads the job only once start() tells it the job is complete."""

    def __init__(self, worker, job, on_preview=None, wait_for_start=False):
        self.job = job
        self.on_preview = on_preview
        self.previews = []
        self.started = time.time()
        self.last_message = "Starting"
        self._lines = queue.Queue()
        self._output_ended = threading.Event()
        self._cancelled = False
        # stdin stays open as a lifeline: the worker stops by itself when it reaches EOF,
        # so a host that dies or is killed does not leave a worker running.
        # Standard error keeps the worker's last word when it cannot write a manifest.
        self._stderr_path = os.path.join(job.folder, "worker-stderr.txt")
        argv = [worker.python, "-m", "gpt_image_edit", "job", job.path]
        if wait_for_start:
            argv.append(WAIT_FOR_START)
        with open(self._stderr_path, "wb") as stderr:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                cwd=job.folder, env=worker.environment(), **_no_window())
        reader = threading.Thread(target=self._read_lines)
        reader.daemon = True
        reader.start()

    def start(self):
        """Tell a worker started with wait_for_start that its job is written: one line on
        the lifeline. A worker that already ended (it could not start) is left to finish(),
        which says why."""
        self.started = time.time()
        try:
            # Past the file object's buffer: nothing is left in it for close() to flush.
            os.write(self._process.stdin.fileno(), START_LINE)
        except (IOError, OSError):
            pass

    def _read_lines(self):
        for raw in iter(self._process.stdout.readline, b""):
            self._lines.put(raw)
        self._process.stdout.close()
        self._output_ended.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        # After an error on the host's side, never leave a worker running (and billing).
        if self._process.poll() is None:
            self.cancel()

    @property
    def elapsed(self):
        return time.time() - self.started

    def poll(self):
        """Read the progress that arrived; return True while the worker still runs."""
        while True:
            try:
                raw = self._lines.get_nowait()
            except queue.Empty:
                break
            event = _parse(raw)
            if event and event.get("event") == "progress" and event.get("message"):
                self.last_message = event["message"]
            elif event and event.get("event") == "preview":
                self._preview(event)
        return self._process.poll() is None

    def _preview(self, event):
        path = self.job.inside(event.get("path"))
        placement = _whole_numbers(event.get("placement"), ("x", "y", "width", "height"))
        size = _whole_numbers(event, ("width", "height"))
        mode = event.get("pixels")
        if path is None or placement is None or size is None or mode not in RAW_CHANNELS \
                or self._cancelled:
            return
        preview = Preview(path, event.get("index"),
                          dict(zip(("x", "y", "width", "height"), placement)), tuple(size),
                          mode)
        self.previews.append(preview)
        if self.on_preview is not None:
            self.on_preview(preview)

    def wait(self, on_tick=None, interval=0.1):
        """Block until the worker ends, calling on_tick(run) about every interval seconds."""
        # Waking on the end of the worker's output, not on the next tick, saves up to a
        # whole interval on every edit.
        while not self._output_ended.wait(interval):
            self.poll()
            if on_tick is not None:
                on_tick(self)
        return self.finish()

    def cancel(self):
        self._cancelled = True
        _terminate(self._process)

    def finish(self):
        """The manifest of a finished worker; raises HostError with the sentence to show."""
        code = self._process.wait()
        self._process.stdin.close()
        self.poll()
        if self._cancelled:
            raise HostError("The edit was cancelled; the image is unchanged.")
        manifest = _read_manifest(self.job.output_dir)
        if manifest is None:
            raise HostError(_last_word(self._stderr_path) or
                            "The GPT Image Edit worker stopped unexpectedly (exit code %s); "
                            "see the log in the gpt-image-edit settings folder." % code)
        if not manifest.get("ok"):
            error = manifest.get("error") if isinstance(manifest.get("error"), dict) else {}
            raise HostError(error.get("message") or NO_REASON,
                            error.get("kind"))
        return manifest


def write_raw(path, pixels):
    """Raw pixels (bytes, or anything with the buffer interface) as they are."""
    with open(path, "wb") as handle:
        handle.write(pixels)


def read_raw(path, width, height, mode):
    """The raw pixels of a width x height picture of `mode` (RAW_CHANNELS); IOError or
    ValueError when the file is missing or not that size."""
    size = width * height * RAW_CHANNELS[mode]
    with open(path, "rb") as handle:
        pixels = handle.read(size + 1)
    if len(pixels) != size:
        raise ValueError("%s holds %d bytes, not %d" % (path, len(pixels), size))
    return pixels


def layer_name(prompt):
    """The result layer's name: the prefix and the start of the prompt, cut at a word."""
    text = u" ".join(prompt.split())
    if len(text) > LAYER_NAME_PROMPT_CHARS:
        cut = text[:LAYER_NAME_PROMPT_CHARS]
        word_end = cut.rfind(u" ")
        keep = cut[:word_end] if word_end > LAYER_NAME_PROMPT_CHARS // 2 else cut
        text = keep.rstrip() + u"\u2026"
    return LAYER_NAME_PREFIX + text


def provenance(manifest, arguments, variant, source=None):
    """The text of the `gpt-image-edit` parasite: what made this result layer (ASCII JSON,
    the same from both GIMP entries, so a saved XCF remembers it either way). `source`
    names the source layer and its tattoo, by which a later edit of that layer finds its
    earlier results."""
    record = {
        "prompt": arguments["prompt"],
        "model": arguments["model"],
        "size": manifest.get("request", {}).get("size", arguments["size"]),
        "quality": arguments["quality"],
        "variant": variant,
        # What the worker did: the job's blend and the reference layer's name (or null).
        "blend": manifest.get("blend") or arguments.get("blend", "none"),
        "reference": (manifest.get("reference") or [None])[0],
        "usage": manifest.get("usage", {}),
        # USD from the usage and the price table; null when unknown.
        "cost_usd": manifest.get("cost_usd"),
    }
    if source is not None:
        record["source"] = dict(source)
    return json.dumps(record, sort_keys=True)


def read_provenance(text):
    """The record of a `gpt-image-edit` parasite's text; {} for none or an unreadable one."""
    if not text:
        return {}
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _whole_numbers(values, names):
    """The integers `names` of a preview event's dict, in that order (the last two, a
    size, positive), or None."""
    if not isinstance(values, dict):
        return None
    numbers = [values.get(name) for name in names]
    if not all(isinstance(number, int) and not isinstance(number, bool) for number in numbers):
        return None
    if any(number <= 0 for number in numbers[-2:]):
        return None
    return numbers


def _parse(raw):
    try:
        event = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _last_word(stderr_path):
    """The sentence a worker with no manifest left on standard error, if any. A worker that
    could not even start (its package or Pillow missing) means the set-up is broken."""
    try:
        with open(stderr_path, "rb") as handle:
            lines = handle.read().decode("utf-8", "replace").strip().splitlines()
    except (IOError, OSError):
        return None
    if not lines:
        return None
    if any(word in lines[-1] for word in ("ImportError", "ModuleNotFoundError", "SyntaxError")):
        return NOT_INSTALLED
    return lines[-1].strip()


def _read_manifest(output_dir):
    try:
        with open(os.path.join(output_dir, "manifest.json")) as handle:
            manifest = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _terminate(process):
    if process.poll() is not None:
        return
    process.terminate()
    deadline = time.time() + KILL_GRACE_SECONDS
    while process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if process.poll() is None:
        process.kill()
        process.wait()


def _no_window():
    """On Windows, GIMP runs plug-ins with pythonw: keep the worker from opening a console."""
    if sys.platform == "win32":
        return {"creationflags": 0x08000000}  # CREATE_NO_WINDOW
    return {}
