"""The dialogs, seen: real GIMP 3.0 with its windows on Xvfb, driven with xdotool.

- GPT Image Edit's dialog: type a prompt, screenshot it, confirm, find the new layer, press
  Ctrl+Z once and find the image as it was;
- (cancelling while the worker waits, with GIMP's own status-bar Cancel, is in
  tests/test_gimp3_interactive.py);
- GPT Image Settings: Test connection reaches the endpoint typed, Save writes the settings
  file with mode 0600, and the key lands nowhere else;
- cost in GIMP 3.0 and 3.2, run from the image window as a retoucher does (GIMP's
  messages where a retoucher sees them): the dialog's estimate line follows variants and
  quality; above the spending limit GIMP asks, Cancel sends nothing and says nothing more,
  Send anyway sends once; the cost of the placed edit shows in the status bar for a few
  seconds, no window over the canvas.

GPT_IMAGE_EDIT_UPDATE_SCREENSHOT=1 also copies the edit dialog's screenshot to
docs/dialog.png, the spending limit's question to docs/limit-question.png and the status
bar with the cost to docs/cost-status-bar.png.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw

from gpt_image_edit import pricing
from gpt_image_edit.geometry import request_size
from tests import real_gimp
from tests.fake_wisgate import DEFAULT_KEY
from tests.gimp_gui import Desktop, Gui

PROMPT = "add a small red boat on the lake"
SCREENSHOT = real_gimp.REPO / "docs" / "dialog.png"
UPDATE_ENV = "GPT_IMAGE_EDIT_UPDATE_SCREENSHOT"
WAIT_SECONDS = 90.0
POLL_SECONDS = 0.1  # how often the plug-in's dialogs look at a running worker
TOOLS = ("Xvfb", "xdotool", "import")


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found: install them with "
                           "'apt-get install xvfb xdotool imagemagick'.")


@pytest.fixture
def display():
    """A private Xvfb server; yields its DISPLAY value."""
    require_tools()
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0",
                               "1280x960x24", "-nolisten", "tcp"], pass_fds=(write_end,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        number = pipe.readline().strip()
    assert number, "Xvfb did not start"
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def home(tmp_path_factory) -> Path:
    gimp = real_gimp.provide("3.0")
    folder = real_gimp.installed_home(gimp, tmp_path_factory.mktemp)
    gimprc = folder / ".config" / "GIMP" / "3.0" / "gimprc"
    gimprc.write_text("(show-welcome-dialog no)\n")  # keep the screen to our windows
    return folder


class Session:
    """One GIMP launch running one step of tests/gimp3/dialog_session.py."""

    def __init__(self, display: str, process: subprocess.Popen, out: Path, log: Path):
        self.display, self.process, self.out, self.log = display, process, out, log

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": self.display},
                              capture_output=True, text=True, timeout=30)
        return done.stdout.strip()

    def window(self, name: str) -> str:
        """Wait for a visible window whose name matches, focus it and return its id."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            found = self.xdotool("search", "--onlyvisible", "--name", name).split()
            if found:
                self.xdotool("windowfocus", "--sync", found[-1])
                return found[-1]
            assert self.process.poll() is None, f"GIMP ended:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.3)
        visible = [self.xdotool("getwindowname", window) for window in
                   self.xdotool("search", "--onlyvisible", "--name", ".").split()]
        raise AssertionError(f"no window named {name!r} appeared; visible: {visible}")

    def type(self, text: str) -> None:
        self.xdotool("type", "--delay", "20", text)

    def key(self, *keys: str) -> None:
        self.xdotool("key", *keys)

    def screenshot(self, window: str, path: Path) -> Path:
        time.sleep(0.5)  # let GTK draw what was just typed
        subprocess.run(["import", "-window", window, str(path)], check=True, timeout=60,
                       env={**os.environ, "DISPLAY": self.display})
        return path

    def report(self, name: str) -> dict:
        path = self.out / name
        deadline = time.monotonic() + WAIT_SECONDS
        while not path.exists():
            assert time.monotonic() < deadline and self.process.poll() is None, (
                f"{name} was not written:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        return json.loads(path.read_text())


@pytest.fixture
def start_gimp(display, home, tmp_path):
    """start_gimp(step, settings) -> Session: GIMP 3.0 on the display, running one step
    with the settings file holding `settings`; stopped at the end of the test."""
    processes = []
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()

    def start(step: str, settings: dict | None = None) -> Session:
        out = tmp_path / f"out-{step}"
        out.mkdir()
        config = tmp_path / "settings" / "settings.json"
        if settings is not None:
            config.parent.mkdir(exist_ok=True)
            config.write_text(json.dumps(settings))
        log = tmp_path / f"gimp-{step}.log"
        env = {"GIMP_TEST_STEP": step, "GIMP_TEST_OUT": str(out),
               "GIMP_TEST_PICTURE": str(landscape(tmp_path / "lake.png")),
               "GPT_IMAGE_EDIT_CONFIG": str(config), "TMPDIR": str(tmpdir)}
        with open(log, "w") as stream:
            process = real_gimp.provide("3.0").start_gui_script(
                real_gimp.SCRIPTS / "dialog_session.py", home=home, display=display, env=env,
                binds=[tmp_path], stdout=stream)
        processes.append(process)
        return Session(display, process, out, log)

    yield start
    for process in processes:
        try:
            process.wait(timeout=60)  # each step ends GIMP by itself (--quit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise


def landscape(path: Path) -> Path:
    """A simple picture to edit: sky, hills, a lake."""
    picture = Image.new("RGB", (480, 320), (135, 190, 235))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((-80, 150, 300, 420), fill=(90, 150, 80))
    draw.ellipse((180, 170, 560, 430), fill=(70, 130, 70))
    draw.rectangle((0, 250, 480, 320), fill=(60, 110, 170))
    picture.save(path)
    return path


def test_edit_dialog_adds_a_layer_that_one_undo_removes(start_gimp, fake_wisgate, tmp_path):
    # No live previews (tests/test_gimp3_interactive.py has them): a preview changes the
    # image without undo, which GIMP counts as a change that no undo takes back.
    gimp = start_gimp("edit", {"base_url": fake_wisgate.url_for("echo"),
                               "api_key": fake_wisgate.key, "partial_images": 0})
    dialog = gimp.window("^GPT Image Edit$")
    gimp.key("ctrl+a")  # the prompt box has the focus; it may hold the last prompt
    gimp.type(PROMPT)
    shot = gimp.screenshot(dialog, tmp_path / "dialog.png")
    with Image.open(shot) as picture:
        assert picture.width > 300 and picture.height > 200
    if os.environ.get(UPDATE_ENV) == "1":
        shutil.copyfile(shot, SCREENSHOT)
    gimp.key("alt+o")  # the dialog's _OK

    edited = gimp.report("edited.json")
    assert edited["status"] == "success"
    assert edited["layers"] == [f"GPT edit: {PROMPT}", "Background"]
    [new] = edited["new"]
    assert (new["name"], new["size"]) == (f"GPT edit: {PROMPT}", [480, 320])
    assert edited["dirty"] is True
    assert [request.path for request in fake_wisgate.requests] == [
        "/scenario/echo/v1/images/edits"]
    # The call handed over a reference (as remembered values would): the dialog opened on
    # "No reference", so none was sent.
    assert "image[]" not in fake_wisgate.requests[0].files
    assert json.loads(new["parasite"])["reference"] is None

    gimp.window("480x320 – GIMP$")
    gimp.key("ctrl+z")
    time.sleep(1.0)  # the key press reaches GIMP's core asynchronously
    (gimp.out / "undo-pressed").write_text("")
    # One Ctrl+Z removes the whole edit and brings the image back to its clean state.
    assert gimp.report("undone.json") == {"layers": ["Background"], "dirty": False}


def test_a_reference_chosen_in_the_dialog_goes_as_the_second_picture(start_gimp, fake_wisgate,
                                                                    tmp_path):
    gimp = start_gimp("edit_reference", {"base_url": fake_wisgate.url_for("echo"),
                                         "api_key": fake_wisgate.key})
    dialog = gimp.window("^GPT Image Edit$")
    gimp.key("ctrl+a")
    gimp.type(PROMPT)
    gimp.key("alt+e")  # R_eference: "No reference", then the other image's layer
    gimp.key("Down")
    shot = gimp.screenshot(dialog, tmp_path / "dialog-reference.png")
    gimp.key("alt+o")
    edited = gimp.report("edited.json")
    assert edited["status"] == "success", shot
    assert json.loads(edited["new"][0]["parasite"])["reference"] == "look", shot
    [request] = fake_wisgate.requests
    assert len(request.files["image[]"]) == 2
    with Image.open(io.BytesIO(request.files["image[]"][1])) as sent:
        assert sent.size == (90, 60) and sent.convert("RGB").getpixel((45, 30)) == (
            255, 255, 255)


def test_settings_dialog_tests_and_saves_privately(start_gimp, fake_wisgate, tmp_path, home):
    gimp = start_gimp("settings")
    dialog = gimp.window("^GPT Image Settings$")
    gimp.key("ctrl+a")  # the endpoint box has the focus
    gimp.type(fake_wisgate.url_for("echo"))
    gimp.key("Tab")
    gimp.type(fake_wisgate.key)
    gimp.key("alt+t")  # Test connection runs the worker's check with what was typed
    deadline = time.monotonic() + WAIT_SECONDS
    while not fake_wisgate.requests:
        assert time.monotonic() < deadline, "Test connection sent nothing"
        time.sleep(0.2)
    assert fake_wisgate.requests[0].path.startswith("/scenario/echo/v1/")
    assert fake_wisgate.requests[0].headers["authorization"] == f"Bearer {fake_wisgate.key}"
    assert all(_ends(pid, within=30) for pid in _connection_checks())
    time.sleep(POLL_SECONDS * 3)  # the dialog takes the test's answer on its next tick
    gimp.screenshot(dialog, tmp_path / "settings.png")
    gimp.key("alt+s")  # _Save

    assert gimp.report("settings.json") == {"status": "success"}
    assert "Traceback" not in gimp.log.read_text()  # showing the answer went wrong
    config = tmp_path / "settings" / "settings.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())
    assert saved["api_key"] == DEFAULT_KEY == fake_wisgate.key
    assert saved["base_url"] == fake_wisgate.url_for("echo")
    assert saved["timeout"] == 300
    gimp.process.wait(timeout=60)  # GIMP writes its own files when it quits
    key = DEFAULT_KEY.encode()
    written = [*(home / ".config").rglob("*"), *(home / ".cache").rglob("*"),
               *tmp_path.rglob("*")]
    holding_key = [str(path) for path in written
                   if path.is_file() and path != config and key in path.read_bytes()]
    assert holding_key == []


def test_closing_settings_during_a_connection_test_stops_the_test(start_gimp, fake_wisgate):
    gimp = start_gimp("settings")
    gimp.window("^GPT Image Settings$")
    gimp.key("ctrl+a")
    gimp.type(fake_wisgate.url_for("slow"))  # the test's request hangs there
    gimp.key("Tab")
    gimp.type(fake_wisgate.key)
    gimp.key("alt+t")
    deadline = time.monotonic() + WAIT_SECONDS
    while not fake_wisgate.requests:
        assert time.monotonic() < deadline, "Test connection sent nothing"
        time.sleep(0.2)
    checks = _connection_checks()
    assert checks, "no connection test running"
    gimp.key("alt+c")  # _Cancel closes the dialog mid-test

    assert gimp.report("settings.json") == {"status": "cancel"}
    assert all(_ends(pid, within=30) for pid in checks), "the connection test kept running"
    assert "Traceback" not in gimp.log.read_text()


def _connection_checks() -> list[int]:
    """The worker processes running `check` (their command lines name it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"gpt_image_edit" in argv and b"check" in argv:
                found.append(int(entry.name))
    return found


def _ends(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


# -- cost: the dialog's estimate, the spending limit's question, the cost once placed ------

def estimate(variants: int, quality: str, prompt: str = PROMPT) -> float:
    """The core's estimate of an edit of the whole 480x320 landscape (2 live previews)."""
    width, height = request_size(480, 320, "gpt-image-2", "auto")
    return pricing.estimate("gpt-image-2", width, height, quality, variants, 2,
                            len(prompt))["cost_usd"]


STATUS_MESSAGE_SECONDS = 8  # how long GIMP's status bar shows a plug-in's message
STATUS_BAR_ROWS = 40


def changed_rows(before: Path, after: Path) -> set[int]:
    with Image.open(before) as first, Image.open(after) as second:
        assert first.size == second.size
        difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    width, height = difference.size
    return {y for y in range(height) if difference.crop((0, y, width, y + 1)).getbbox()}


def bands(rows: set[int]) -> list[tuple[int, int]]:
    """Runs of consecutive rows: (first, last)."""
    found: list[tuple[int, int]] = []
    for row in sorted(rows):
        if found and row == found[-1][1] + 1:
            found[-1] = (found[-1][0], row)
        else:
            found.append((row, row))
    return found


@pytest.fixture(params=real_gimp.VERSIONS)
def cost_gui(request, tmp_path, tmp_path_factory, fake_wisgate):
    """GIMP 3.0 or 3.2 with its windows and a window manager, its messages where a
    retoucher sees them (no --console-messages), the fake WisGate's echo and a spending
    limit."""
    version = request.param
    gimp = real_gimp.provide(version)
    installed = real_gimp.installed_home(gimp, tmp_path_factory.mktemp)
    home = tmp_path / "home"
    shutil.copytree(installed / ".config", home / ".config", symlinks=True)
    (home / ".config" / "GIMP" / version / "gimprc").write_text("(show-welcome-dialog no)\n")
    for name in ("tmp", "data", "shots"):
        (tmp_path / name).mkdir()
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"base_url": fake_wisgate.url_for("echo"),
                                  "api_key": fake_wisgate.key}))
    limit = 0.05  # below every edit of the test: the dialog says so in each of them
    assert limit < min(estimate(1, "high"), estimate(3, "medium"))
    env = {"GPT_IMAGE_EDIT_CONFIG": str(config), "TMPDIR": str(tmp_path / "tmp"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "GPT_IMAGE_EDIT_MAX_COST": str(limit)}
    desktop = Desktop()
    gui = Gui(gimp, desktop, home, tmp_path, env, binds=[installed], console_messages=False)
    try:
        yield gui, limit
    finally:
        gui.quit()
        desktop.close()


def test_the_dialog_estimates_the_limit_asks_and_the_cost_shows_in_the_status_bar(
        cost_gui, fake_wisgate, tmp_path):
    gui, limit = cost_gui
    shots = tmp_path / "shots"
    image = gui.ask("open", path=str(landscape(tmp_path / "lake.png")))["image"]
    window = gui.window("– GIMP$")
    if gui.find_window("^Welcome to GIMP"):  # shown once after an install
        gui.window("^Welcome to GIMP")
        gui.key("Escape")
    gui.xdotool("windowsize", window, "1270", "900")

    gui.run_action(window, "GPT Image Edit")
    dialog = gui.window("^GPT Image Edit$")
    gui.key("ctrl+a")
    gui.type(PROMPT)
    one = gui.screenshot(dialog, shots / "estimate-1-high.png")
    gui.key("alt+v", "ctrl+a")
    gui.type("3")
    gui.key("Tab")
    three = gui.screenshot(dialog, shots / "estimate-3-high.png")
    gui.key("alt+q", "Up")  # High -> Medium
    medium = gui.screenshot(dialog, shots / "estimate-3-medium.png")
    gui.key("Down")  # back to High
    high_again = gui.screenshot(dialog, shots / "estimate-3-high-again.png")
    # The estimate line is the lowest band of rows that both changes redraw (the variants'
    # spin button and the quality's box each have rows of their own, above it); it shows
    # the same pixels again when the values come back, and other ones for other values.
    by_variants, by_quality = changed_rows(one, three), changed_rows(three, medium)
    line = bands(by_variants & by_quality)[-1]
    rows = set(range(line[0], line[1] + 1))
    assert [band for band in bands(by_variants - by_quality) if band[0] > line[1]] == []
    assert bands(by_quality - by_variants)[0][1] < line[0]  # the quality's box, above
    assert not rows & changed_rows(three, high_again)
    assert rows & changed_rows(medium, high_again)

    # Above the limit: GIMP asks; Cancel sends nothing.
    gui.key("alt+o")
    question = gui.window("above the spending limit$")
    asked = gui.screenshot(question, shots / "limit-question.png")
    gui.key("alt+c")
    gui.wait_gone("above the spending limit$")
    time.sleep(2.0)
    assert fake_wisgate.requests == []
    assert [layer["name"] for layer in gui.ask("state", image=image)["layers"]] == [
        "Background"]
    assert [name for name in gui.visible_windows() if "GPT" in name or "Message" in name] == []

    # Again (a cancelled edit leaves GIMP's remembered values as they were): Send anyway
    # sends once, and the cost is shown.
    gui.run_action(window, "GPT Image Edit")
    gui.window("^GPT Image Edit$")
    gui.key("ctrl+a")
    gui.type(PROMPT)
    gui.key("alt+v", "ctrl+a")
    gui.type("3")
    gui.key("Tab", "alt+o")
    gui.window("above the spending limit$")
    gui.key("alt+s")
    deadline = time.monotonic() + WAIT_SECONDS
    def placed():  # the result, not a live preview of it (previews go by themselves)
        names = [layer["name"] for layer in gui.ask("state", image=image)["layers"]]
        return len(names) == 2 and not names[0].startswith("GPT preview")

    while not placed():
        assert time.monotonic() < deadline, "the edit was not placed"
        time.sleep(0.3)
    assert len(fake_wisgate.requests) == 1
    group = gui.ask("state", image=image)["layers"][0]
    records = [json.loads(child["parasite"]["text"]) for child in group["children"]]
    assert len(records) == 3 and records[0]["cost_usd"] > limit
    gui.xdotool("mousemove", "1279", "959")
    window = gui.window("– GIMP$")
    placed = gui.screenshot(window, shots / "cost-in-status-bar.png")
    # The cost is a line in the image window's status bar for a few seconds ("GPT Image
    # Edit: 3 results placed, cost $0.41 (estimate $0.40)." in the screenshot), no window
    # over the canvas; then the status bar shows what it showed before.
    assert [name for name in gui.visible_windows() if "GPT" in name or "Message" in name] == []
    time.sleep(STATUS_MESSAGE_SECONDS + 2)
    later = gui.screenshot(window, shots / "status-bar-later.png")
    with Image.open(placed) as picture:
        height = picture.size[1]
    changed = changed_rows(placed, later)
    assert changed and min(changed) > height - STATUS_BAR_ROWS, bands(changed)
    if os.environ.get(UPDATE_ENV) == "1" and gui.gimp.version == "3.0":
        shutil.copyfile(asked, real_gimp.REPO / "docs" / "limit-question.png")
        with Image.open(placed) as picture:
            picture.crop((0, height - STATUS_BAR_ROWS, picture.size[0], height)).save(
                real_gimp.REPO / "docs" / "cost-status-bar.png")
