"""The dialogs, seen: real GIMP 2.10 with its windows on Xvfb, driven with xdotool.

- GPT Image Edit's dialog (gimpfu's, with the prompt box): type a prompt, screenshot it,
  confirm, find the new layer, press Ctrl+Z once and find the image as it was;
- GPT Image Settings (PyGTK): Test connection reaches the endpoint typed with the key
  typed, Save writes the settings file with mode 0600, the key shows nowhere and lands
  nowhere else (not in GIMP's stored last values either);
- Help: F1 in either dialog goes through GIMP's help system (the plug-in's help domain,
  registered at query time, help/en/gimp-help.xml) to its web-browser plug-in, which opens
  the manual the installer put into the helper folder. The "browser" is a desktop entry
  recording the address (as in tests/test_gimp3_help.py).

GPT_IMAGE_EDIT_UPDATE_SCREENSHOT=1 also copies the screenshots to docs/gimp2-dialog.png
and docs/gimp2-settings.png.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from tests import real_gimp
from tests.fake_wisgate import DEFAULT_KEY
from tests.test_gimp3_dialog import (  # noqa: F401 (display is a fixture)
    POLL_SECONDS,
    UPDATE_ENV,
    WAIT_SECONDS,
    Session,
    _connection_checks,
    _ends,
    display,
    landscape,
)
from tests.test_gimp3_help import use_recorder_as_browser, wait_for_lines

PROMPT = "add a small red boat on the lake"
SCRIPT = Path(__file__).resolve().parent / "gimp2" / "dialog_session.py"
DOCS = real_gimp.REPO / "docs"


@pytest.fixture
def home(tmp_path_factory) -> Path:
    gimp = real_gimp.provide(real_gimp.GIMP2)
    return real_gimp.installed_home(gimp, tmp_path_factory.mktemp)


@pytest.fixture
def desktop(display):  # noqa: F811 (the fixture imported above)
    """The Xvfb display with a window manager (openbox), which gives GTK 2's dialogs the
    keyboard focus as a desktop does."""
    if shutil.which("openbox") is None:
        raise RuntimeError("openbox not found: install it with 'apt-get install openbox'.")
    manager = subprocess.Popen(["openbox", "--sm-disable"], env={**os.environ,
                               "DISPLAY": display}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    yield display
    manager.terminate()
    manager.wait(timeout=10)


@pytest.fixture
def start_gimp(home, desktop, tmp_path):  # home first: a missing GIMP skips before Xvfb
    """start_gimp(step, settings) -> Session: GIMP 2.10 on the display, running one step
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
            process = real_gimp.provide(real_gimp.GIMP2).start_gui_script(
                SCRIPT, home=home, display=desktop, env=env, binds=[tmp_path], stdout=stream)
        processes.append(process)
        return Session(desktop, process, out, log)

    yield start
    for process in processes:
        try:
            process.wait(timeout=60)  # each step ends GIMP by itself (gimp_quit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise


def keep_screenshot(shot: Path, name: str) -> None:
    with Image.open(shot) as picture:
        assert picture.width > 300 and picture.height > 150
    if os.environ.get(UPDATE_ENV) == "1":
        shutil.copyfile(shot, DOCS / name)


def run_from_action_search(gimp: Session, action: str) -> None:
    """Start a procedure as a retoucher would: GIMP's action search (/) in the image
    window, its label typed, Return."""
    gimp.report("opened.json")
    gimp.window("480x320 – GIMP$")
    gimp.key("slash")
    gimp.window("^Search Actions$")
    gimp.type(action)
    time.sleep(1.0)  # the list follows the typing
    gimp.key("Return")


def wait_closed(gimp: Session, window: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while window in gimp.xdotool("search", "--onlyvisible", "--name", ".").split():
        assert time.monotonic() < deadline, "the dialog did not close"
        time.sleep(0.2)


def click_prompt_box(gimp: Session, dialog: str) -> None:
    """Click into the prompt box, top right in gimpfu's dialog. (Its _Prompt mnemonic
    points at the box's scrolled window, which takes no focus: a retoucher clicks.)"""
    geometry = dict(line.split("=") for line in gimp.xdotool(
        "getwindowgeometry", "--shell", dialog).split())
    x, y = int(int(geometry["WIDTH"]) * 0.77), int(int(geometry["HEIGHT"]) * 0.25)
    gimp.xdotool("mousemove", "--window", dialog, str(x), str(y))
    gimp.xdotool("click", "1")
    time.sleep(0.3)


def test_edit_dialog_adds_a_layer_that_one_undo_removes(start_gimp, fake_wisgate, tmp_path):
    # No live previews (tests/test_gimp2_previews.py has them): a preview changes the
    # image without undo, which GIMP counts as a change that no undo takes back.
    gimp = start_gimp("edit", {"base_url": fake_wisgate.url_for("echo"),
                               "api_key": fake_wisgate.key, "partial_images": 0})
    run_from_action_search(gimp, "GPT Image Edit")
    dialog = gimp.window("^python-fu-gpt-image-edit$")  # gimpfu titles it so
    time.sleep(0.5)  # GTK maps the dialog's widgets after the window
    click_prompt_box(gimp, dialog)
    gimp.type(PROMPT)
    keep_screenshot(gimp.screenshot(dialog, tmp_path / "dialog.png"), "gimp2-dialog.png")
    gimp.key("alt+o")  # the dialog's _OK: gimpfu closes it once the procedure has ended
    wait_closed(gimp, dialog)
    (gimp.out / "confirmed").write_text("")

    edited = gimp.report("edited.json")
    assert edited["layers"] == [f"GPT edit: {PROMPT}", "Background"]
    [new] = edited["new"]
    assert (new["name"], new["size"]) == (f"GPT edit: {PROMPT}", [480, 320])
    assert edited["dirty"] is True
    assert [request.path for request in fake_wisgate.requests] == [
        "/scenario/echo/v1/images/edits"]
    # gimpfu remembered a reference from an edit of another image; the dialog opened on the
    # edited layer ("no reference"), so none was sent, and the default blend was seamless.
    assert "image[]" not in fake_wisgate.requests[0].files
    record = json.loads(new["parasite"])
    assert (record["reference"], record["blend"]) == (None, "seamless")

    gimp.window("480x320 – GIMP$")
    gimp.key("ctrl+z")
    time.sleep(1.0)  # the key press reaches GIMP's core asynchronously
    (gimp.out / "undo-pressed").write_text("")
    # One Ctrl+Z removes the whole edit and brings the image back to its clean state.
    assert gimp.report("undone.json") == {"layers": ["Background"], "dirty": False}


def fill_settings(gimp: Session, endpoint: str, key: str) -> str:
    run_from_action_search(gimp, "GPT Image Settings")
    dialog = gimp.window("^GPT Image Settings$")
    time.sleep(0.5)  # GTK maps the dialog's widgets after the window
    gimp.key("alt+e")  # _Endpoint
    gimp.key("ctrl+a")
    gimp.type(endpoint)
    gimp.key("alt+k")  # API _key
    gimp.type(key)
    gimp.key("alt+t")  # Test connection runs the worker's check with what was typed
    return dialog


def wait_for_request(fake_wisgate) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not fake_wisgate.requests:
        assert time.monotonic() < deadline, "Test connection sent nothing"
        time.sleep(0.2)


def test_settings_dialog_tests_and_saves_privately(start_gimp, fake_wisgate, tmp_path, home):
    gimp = start_gimp("settings")
    dialog = fill_settings(gimp, fake_wisgate.url_for("echo"), fake_wisgate.key)
    wait_for_request(fake_wisgate)
    assert fake_wisgate.requests[0].path.startswith("/scenario/echo/v1/")
    assert fake_wisgate.requests[0].headers["authorization"] == f"Bearer {fake_wisgate.key}"
    assert all(_ends(pid, within=30) for pid in _connection_checks())
    time.sleep(POLL_SECONDS * 5)  # the dialog takes the test's answer on its next tick
    keep_screenshot(gimp.screenshot(dialog, tmp_path / "settings.png"), "gimp2-settings.png")
    gimp.key("alt+s")  # _Save
    wait_closed(gimp, dialog)
    (gimp.out / "finished").write_text("")

    gimp.process.wait(timeout=60)  # GIMP writes its own files (and last values) when it quits
    assert "Traceback" not in gimp.log.read_text()
    config = tmp_path / "settings" / "settings.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())
    assert saved["api_key"] == DEFAULT_KEY == fake_wisgate.key
    assert saved["base_url"] == fake_wisgate.url_for("echo")
    assert saved["timeout"] == 300
    key = DEFAULT_KEY.encode()
    written = [*(home / ".config").rglob("*"), *(home / ".cache").rglob("*"),
               *tmp_path.rglob("*")]
    holding_key = [str(path) for path in written
                   if path.is_file() and path != config and key in path.read_bytes()]
    assert holding_key == []


def test_closing_settings_during_a_connection_test_stops_the_test(start_gimp, fake_wisgate,
                                                                  tmp_path):
    gimp = start_gimp("settings")
    dialog = fill_settings(gimp, fake_wisgate.url_for("slow"), fake_wisgate.key)
    wait_for_request(fake_wisgate)  # the test's request hangs there
    checks = _connection_checks()
    assert checks, "no connection test running"
    gimp.key("alt+c")  # _Cancel closes the dialog mid-test
    wait_closed(gimp, dialog)
    (gimp.out / "finished").write_text("")

    assert all(_ends(pid, within=30) for pid in checks), "the connection test kept running"
    gimp.process.wait(timeout=60)
    assert not (tmp_path / "settings" / "settings.json").exists()  # nothing saved
    assert "Traceback" not in gimp.log.read_text()


@pytest.mark.parametrize("action,dialog,part", [
    ("GPT Image Edit...", "^python-fu-gpt-image-edit$", "edit"),
    ("GPT Image Settings", "^GPT Image Settings$", "settings"),
])
def test_f1_in_a_dialog_opens_the_installed_manual(start_gimp, home, tmp_path, action,
                                                   dialog, part):
    urls = use_recorder_as_browser(home, tmp_path, "2.10")
    # The action search lists what ran before first, and the settings procedure's blurb
    # names "GPT Image Edit" too: start from no history, as in a fresh GIMP.
    (home / ".config" / "GIMP" / "2.10" / "action-history").unlink(missing_ok=True)
    gimp = start_gimp("settings")  # opens a picture and waits
    run_from_action_search(gimp, action)
    window = gimp.window(dialog)
    time.sleep(0.5)  # GTK maps the dialog's widgets after the window
    gimp.key("F1")
    opened = wait_for_lines(urls, gimp.process)
    gimp.window(dialog)
    gimp.key("Escape")
    wait_closed(gimp, window)
    (gimp.out / "finished").write_text("")

    lib = home / ".config" / "GIMP" / "2.10" / "plug-ins" / "gpt-image-edit-gimp2-lib"
    manual = lib / "help" / "en" / "manual.html"
    assert opened == [f"file://{manual}#{part}"], gimp.log.read_text()[-3000:]
    assert manual.read_bytes() == (DOCS / "manual.html").read_bytes()
    assert f'id="{part}"' in manual.read_text()
    gimp.process.wait(timeout=60)
    assert "Traceback" not in gimp.log.read_text()


def test_above_the_limit_gimp_asks_and_the_progress_says_estimate_and_cost(start_gimp,
                                                                           fake_wisgate,
                                                                           tmp_path):
    """The spending limit's question (PyGTK) answered both ways; the estimate in the
    progress (gimpfu's dialog's bar) while waiting, the cost there once placed."""
    # No live previews: with them the wait procedure's status bar, not gimpfu's dialog,
    # shows the progress (tests/test_gimp2_previews.py).
    gimp = start_gimp("cost", {"base_url": fake_wisgate.url_for("held"),
                               "api_key": fake_wisgate.key, "max_cost_usd": 0.05,
                               "partial_images": 0})
    fake_wisgate.server.held.clear()
    shots = tmp_path / "shots"
    shots.mkdir()
    for answer in ("alt+c", "alt+s"):
        # The procedure's blurb: after the other tests (the same GIMP folder) the search
        # would put a recent GPT Image Settings first, whose blurb names GPT Image Edit.
        run_from_action_search(gimp, "Edit the layer, or the selected part")
        dialog = gimp.window("^python-fu-gpt-image-edit$")
        time.sleep(0.5)
        click_prompt_box(gimp, dialog)
        gimp.key("ctrl+a")
        gimp.type(PROMPT)
        gimp.key("alt+o")
        question = gimp.window("above the spending limit$")
        time.sleep(0.5)
        gimp.screenshot(question, shots / f"question-{answer}.png")
        gimp.key(answer)
        if answer == "alt+c":  # Cancel: nothing sent, no message, the image as it was
            wait_closed(gimp, dialog)
            (gimp.out / "cancelled").write_text("")
            assert gimp.report("cancelled.json") == {"layers": ["Background"],
                                                     "dirty": False}
            assert fake_wisgate.requests == []
            time.sleep(3)
            assert "GIMP Message" not in [
                gimp.xdotool("getwindowname", window) for window in
                gimp.xdotool("search", "--onlyvisible", "--name", ".").split()]
    wait_for_request(fake_wisgate)
    gimp.window("480x320 – GIMP$")
    time.sleep(1.5)  # a few ticks of the progress, in gimpfu's dialog
    gimp.screenshot(dialog, shots / "progress-with-estimate.png")
    fake_wisgate.server.held.set()
    (gimp.out / "confirmed").write_text("")
    edited = gimp.report("edited.json")  # placed: the dialog holds the cost a moment
    assert edited["layers"] == [f"GPT edit: {PROMPT}", "Background"]
    time.sleep(0.5)
    gimp.screenshot(dialog, shots / "cost-in-the-progress.png")
    wait_closed(gimp, dialog)
    time.sleep(1.0)
    assert len(fake_wisgate.requests) == 1
    assert edited["record"]["cost_usd"] > 0.05
    (gimp.out / "finished").write_text("")
    # The cost was said without a window of its own (nor GIMP's complaint about a
    # progress callback that a message from inside gimpfu's dialog brings).
    assert "GIMP Message" not in [
        gimp.xdotool("getwindowname", window) for window in
        gimp.xdotool("search", "--onlyvisible", "--name", ".").split()]
