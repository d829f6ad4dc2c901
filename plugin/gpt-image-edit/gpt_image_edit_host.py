"""The host side of the worker job protocol (docs/job-protocol.md).

Shared by the GIMP 3 entry and the GIMP 2.10 entry, so it is valid Python 2.7 and 3 and
uses the standard library only. It makes the private job folder, writes the job, runs the
worker without blocking the caller, reads its progress lines, and hands back the manifest.
It makes no GIMP call: the entries do that, on their own main thread.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

try:
    import queue
except ImportError:  # Python 2.7
    import Queue as queue

WORKER_ENV = "GPT_IMAGE_EDIT_WORKER"
WORKER_FILE = "gpt-image-edit-worker.json"
JOB_FOLDER_MARKER = ".gpt-image-edit-job"
PROTOCOL = 1
KILL_GRACE_SECONDS = 2.0

# Where the retoucher changes the settings, on GIMP 3 and 2.10 alike. The worker's sentences
# name it (it says what is wrong; the host, through this, where to fix it).
SETTINGS_MENU = "Filters > AI > GPT Image Settings..."
SETTINGS_PLACE_ENV = "GPT_IMAGE_EDIT_SETTINGS_PLACE"

PARASITE_NAME = "gpt-image-edit"
LAYER_NAME_PREFIX = "GPT edit: "
LAYER_NAME_PROMPT_CHARS = 40

NOT_INSTALLED = ("The GPT Image Edit worker is not set up: run 'python3 install/install.py' "
                 "from the plug-in's download, then restart GIMP.")


class HostError(Exception):
    """A failure with one sentence for the user as its text."""


class WorkerFailed(HostError):
    """The worker's failure manifest: its sentence, and its error `kind` (docs/job-protocol.md)
    for the host to act on (a missing key opens the settings)."""

    def __init__(self, message, kind):
        HostError.__init__(self, message)
        self.kind = kind


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


class Job(object):
    """A private folder holding one job; use as a context manager so it is always removed."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="gpt-image-edit-")
        # Tells the worker this folder is the job's alone: a worker whose host died
        # removes it (docs/job-protocol.md, "Cancel").
        open(os.path.join(self.folder, JOB_FOLDER_MARKER), "w").close()
        self.source_path = os.path.join(self.folder, "source.png")
        self.selection_path = os.path.join(self.folder, "selection.png")
        self.path = os.path.join(self.folder, "job.json")
        self.output_dir = os.path.join(self.folder, "results")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def write(self, arguments, layer, source_origin=(0, 0), source_size=None,
              with_selection=False, image_name=None):
        """Write job.json.

        arguments: dict with prompt, model, size, quality, variants;
        layer: dict with width, height, offset_x, offset_y;
        source_origin: where source.png's top-left pixel sits in layer coordinates;
        source_size: (width, height) of the region source.png stands for, in layer pixels,
        when it was exported scaled down (None: source.png is at full size);
        image_name: the image's name, for the results history.
        """
        source = {"path": "source.png", "x": source_origin[0], "y": source_origin[1]}
        if source_size is not None:
            source["width"], source["height"] = source_size
        job = {
            "protocol": PROTOCOL,
            "prompt": arguments["prompt"],
            "model": arguments["model"],
            "size": arguments["size"],
            "quality": arguments["quality"],
            "variants": int(arguments["variants"]),
            "layer": dict(layer),
            "source": source,
            "selection": {"path": "selection.png"} if with_selection else None,
            "output_dir": "results",
        }
        if image_name is not None:
            job["image_name"] = image_name
        with open(self.path, "w") as handle:
            json.dump(job, handle)

    def clear_results(self):
        """Remove a finished run's results folder, so the job can run again."""
        shutil.rmtree(self.output_dir, ignore_errors=True)

    def result_path(self, entry):
        return os.path.join(self.output_dir, entry["path"])


class WorkerRun(object):
    """One running worker. poll() from the host's main loop; nothing here blocks for long."""

    def __init__(self, worker, job):
        self.job = job
        self.started = time.time()
        self.last_message = "Starting"
        self._lines = queue.Queue()
        self._output_ended = threading.Event()
        self._cancelled = False
        # stdin stays open as a lifeline: the worker stops by itself when it reaches EOF,
        # so a host that dies or is killed does not leave a worker running.
        # Standard error keeps the worker's last word when it cannot write a manifest.
        self._stderr_path = os.path.join(job.folder, "worker-stderr.txt")
        with open(self._stderr_path, "wb") as stderr:
            self._process = subprocess.Popen(
                [worker.python, "-m", "gpt_image_edit", "job", job.path],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                cwd=job.folder, env=worker.environment(), **_no_window())
        reader = threading.Thread(target=self._read_lines)
        reader.daemon = True
        reader.start()

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
        return self._process.poll() is None

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
            raise WorkerFailed(error.get("message") or "The edit failed for an unknown reason.",
                               error.get("kind"))
        return manifest


PNG_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # grey, RGB, RGBA
# The job's pictures live for seconds: level 1 compresses several times faster than 6.
PNG_LEVEL = 1


def write_png(path, width, height, channels, pixels):
    """8-bit pixels (grey, RGB or RGBA rows, top first, as bytes) as a bare PNG: no
    metadata, so the worker can send it as it is. zlib does the work; Python only frames
    the rows, which for a request-sized picture takes a fraction of a second."""
    stride = width * channels
    rows = b"".join(b"\x00" + pixels[row * stride:(row + 1) * stride]
                    for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        for kind, data in ((b"IHDR", header), (b"IDAT", zlib.compress(rows, PNG_LEVEL)),
                           (b"IEND", b"")):
            handle.write(struct.pack(">I", len(data)) + kind + data
                         + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


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
        "usage": manifest.get("usage", {}),
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
