"""A retoucher's session in real GIMP 3.0 and 3.2 (issue #11), played through GIMP's
windows on Xvfb with openbox and xdotool: GIMP's action search (the / key) reaches
Filters > AI > GPT Image Edit..., the prompt is typed into the dialog, OK pressed; while the
edit is pending the selection is cleared, the source layer deleted, the image's closing
tried, GIMP's status-bar Cancel clicked, the image saved; live previews are looked for on
the canvas (issue #12); Ctrl+Z and Ctrl+Y are pressed. What GIMP holds is
asked of the session script (tests/gimp3/interactive_session.py); GIMP's messages are
counted on its console (--console-messages).

One GIMP start per version runs the scenarios in order (each test is one of them), so the
whole session takes a few minutes. The fake WisGate's `held` scenario keeps an answer back
until the test has done what the user does while waiting; `held_previews` streams the
previews first and keeps the completed picture back.

GPT_IMAGE_EDIT_UPDATE_SCREENSHOT=1 copies GIMP 3.2's progress, preview and result
screenshots to
docs/ (docs/dialog.png is tests/test_gimp3_dialog.py's).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from tests import real_gimp
from tests.gimp_gui import Desktop, Gui
from tests.test_gimp3_dialog import landscape

PROMPT = "turn the sky into a sunset"
NAME = f"GPT edit: {PROMPT}"
WAIT_SECONDS = 90.0
UPDATE_ENV = "GPT_IMAGE_EDIT_UPDATE_SCREENSHOT"
DOCS = real_gimp.REPO / "docs"
# A message GIMP shows, as --console-messages prints it ("GIMP-Warning: Can't undo ...").
MESSAGE = re.compile(r"^[\w .'-]+-(Error|Warning|Info|Message): ", re.MULTILINE)
COST_NOTE = re.compile(r"^[\w .'-]+-Warning: GPT Image Edit: \d+ results? placed, cost ")
ELLIPSE = [140, 60, 200, 150]
MODERATION = ("WisGate's safety system refused this edit: change the prompt or the picture "
              "and try again.")


class Session:
    def __init__(self, version: str, gui: Gui, fake, folder: Path, home: Path):
        self.version, self.gui, self.fake, self.folder, self.home = (
            version, gui, fake, folder, home)
        self.config = folder / "settings.json"
        self.tmp = folder / "tmp"
        self.shots = folder / "shots"
        self.image = None
        self.window = None
        self.messages_seen = 0
        self.cost_notes = []

    # -- set-up -------------------------------------------------------------------------
    def endpoint(self, scenario: str, key: bool = True) -> None:
        settings = {"base_url": self.fake.url_for(scenario)}
        if key:
            settings["api_key"] = self.fake.key
        self.config.write_text(json.dumps(settings))
        self.fake.held.clear()
        self.fake.reset()

    def open_picture(self, name: str) -> int:
        self.image = self.gui.ask("open", path=str(landscape(self.folder / name)))["image"]
        self.window = self.gui.window("– GIMP$")
        return self.image

    def state(self, image: int | None = None) -> dict:
        return self.gui.ask("state", image=self.image if image is None else image)

    def wait_state(self, check, image: int | None = None) -> dict:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            state = self.state(image)
            if check(state):
                return state
            assert time.monotonic() < deadline, f"GIMP never got there: {state}"
            time.sleep(0.3)

    # -- the retoucher ------------------------------------------------------------------
    def start_edit(self, dialog_shot: Path | None = None, variants: int | None = None) -> None:
        self.gui.run_action(self.window, "GPT Image Edit")
        dialog = self.gui.window("^GPT Image Edit$")
        self.gui.key("ctrl+a")  # the prompt has the focus, maybe with the last prompt
        self.gui.type(PROMPT)
        if variants is not None:  # the dialog remembers it for the next edits
            self.gui.key("alt+v")
            self.gui.key("ctrl+a")
            self.gui.type(str(variants))
            self.gui.key("Tab")
        if dialog_shot is not None:
            self.gui.screenshot(dialog, dialog_shot)
        self.gui.key("alt+o")  # the dialog's _OK

    def wait_for_request(self) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.fake.requests:
            assert time.monotonic() < deadline, "the edit sent nothing"
            time.sleep(0.2)
        time.sleep(1.5)  # the status bar shows a few ticks

    def close_while_waiting(self, name: str) -> None:
        """Ctrl+W on the image `name` while its edit waits: its window's title goes at once.
        (GIMP frees the image itself only once the edit's call to its wait procedure
        returns, since that call holds it: docs/architecture.md, "Live previews".)"""
        self.press("ctrl+w")
        deadline = time.monotonic() + WAIT_SECONDS
        while any(name in title for title in self.gui.visible_windows()):
            assert time.monotonic() < deadline, f"GIMP never closed {name} while waiting"
            time.sleep(0.3)

    def wait_for_layers(self, count: int, image: int | None = None) -> dict:
        """The state once the edit placed its result: `count` layers, no preview among them."""
        return self.wait_state(lambda state: len(state["layers"]) == count
                               and PREVIEW not in layer_names(state), image)

    def wait_for_preview(self) -> dict:
        """The state once a live preview shows, and a moment later (the last one)."""
        self.wait_state(lambda state: PREVIEW in layer_names(state))
        time.sleep(1.5)
        return self.state()

    def click_cancel(self) -> None:
        window = self.image_window()
        geometry = self.gui.xdotool("getwindowgeometry", window)
        width, height = map(int, re.search(r"Geometry: (\d+)x(\d+)", geometry).groups())
        # GIMP's Cancel at the right end of the status bar, left of the docks.
        self.gui.click(window, width - CANCEL_FROM_RIGHT[self.version], height - 20)

    def wait_for_no_job(self) -> None:
        deadline = time.monotonic() + 30
        while _worker_jobs(self.tmp) or [p for p in self.tmp.iterdir()
                                         if p.name.startswith("gpt-")]:
            assert time.monotonic() < deadline, "the worker or its job folder was left behind"
            time.sleep(0.3)

    def wait_for_messages(self) -> list[str]:
        deadline = time.monotonic() + WAIT_SECONDS
        messages = []
        while not messages:
            messages = self.new_messages()
            assert time.monotonic() < deadline, "no message"
            time.sleep(0.3)
        time.sleep(2)
        return messages + self.new_messages()

    def image_window(self) -> str:
        self.window = self.gui.window("– GIMP$")
        return self.window

    def press(self, *keys: str) -> None:
        self.image_window()
        self.gui.key(*keys)
        time.sleep(1.0)  # key presses reach GIMP's core asynchronously

    def new_messages(self) -> list[str]:
        """The messages GIMP showed since the last call: one line each. The cost note of a
        placed edit (run from the image window, it shows in the status bar, not in a
        window) goes to `cost_notes` instead."""
        log = self.gui.log_text()
        found = [match.group(0) + log[match.end():].split("\n\n", 1)[0]
                 for match in MESSAGE.finditer(log)]
        new, self.messages_seen = found[self.messages_seen:], len(found)
        self.cost_notes += [line.split(": ", 1)[1] for line in new if COST_NOTE.match(line)]
        return [line for line in new if not COST_NOTE.match(line)]

    def wait_cost_note(self) -> str:
        """The cost note of the edit just placed (it follows the layers by a moment)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.cost_notes:
            assert self.new_messages() == []
            assert time.monotonic() < deadline, "no cost note"
            time.sleep(0.3)
        return self.cost_notes.pop()

    def shot(self, name: str, for_docs: bool = True) -> Path:
        """The image window, the pointer off the canvas (its brush outline would show)."""
        self.gui.xdotool("mousemove", "1279", "959")
        path = self.gui.screenshot(self.image_window(), self.shots / name)
        if for_docs and os.environ.get(UPDATE_ENV) == "1" and self.version == "3.2":
            shutil.copyfile(path, DOCS / name)
        return path


@pytest.fixture(scope="module", params=real_gimp.VERSIONS)
def session(request, tmp_path_factory, fake_wisgate_server):
    version = request.param
    gimp = real_gimp.provide(version)
    installed = real_gimp.installed_home(gimp, tmp_path_factory.mktemp)
    folder = tmp_path_factory.mktemp(f"interactive-{version}")
    # A GIMP folder of its own (what this session leaves there, remembered dialog values
    # and plug-in caches, stays out of the other tests' GIMP); the worker it names is the
    # installed one.
    home = folder / "home"
    shutil.copytree(installed / ".config", home / ".config", symlinks=True)
    (home / ".config" / "GIMP" / version / "gimprc").write_text("(show-welcome-dialog no)\n")
    for name in ("tmp", "data", "shots"):
        (folder / name).mkdir()
    desktop = Desktop()
    # Its own data folder: GTK's recently-used.xbel and the results history of this session
    # alone (the worker's venv is found by its absolute path).
    env = {"GPT_IMAGE_EDIT_CONFIG": str(folder / "settings.json"), "TMPDIR": str(folder / "tmp"),
           "XDG_DATA_HOME": str(folder / "data")}
    gui = Gui(gimp, desktop, home, folder, env, binds=[installed])
    current = Session(version, gui, fake_wisgate_server, folder, home)
    try:
        current.open_picture("lake.png")
        if gui.find_window("^Welcome to GIMP"):  # shown once after an install
            gui.window("^Welcome to GIMP")
            gui.key("Escape")
        gui.xdotool("windowsize", current.image_window(), "1270", "900")
        yield current
    finally:
        gui.quit()
        desktop.close()


def test_the_selection_at_ok_masks_the_result_whatever_happens_meanwhile(session):
    session.endpoint("held")
    session.gui.ask("select_ellipse", image=session.image, box=ELLIPSE)
    session.start_edit(dialog_shot=session.shots / "dialog.png")
    session.wait_for_request()
    # Waiting: progress in the image window's status bar, no window over the canvas.
    session.shot("progress.png")
    assert [name for name in session.gui.visible_windows() if "GPT" in name] == []
    # GIMP stays responsive: the user clears the selection while the edit is pending.
    session.press("ctrl+shift+a")
    assert session.state()["selection"] is None
    session.fake.held.set()

    state = session.wait_for_layers(2)
    result, source = state["layers"]
    assert (result["name"], source["name"]) == (NAME, "Background")
    assert result["visible"] and result["mask"] is not None
    # The ellipse as it was at OK: black around it, white inside (cleared meanwhile, the
    # mask would be all black).
    assert (result["mask"]["min"], result["mask"]["max"]) == (0, 255)
    area = 3.14159 / 4 * ELLIPSE[2] * ELLIPSE[3] / (result["size"][0] * result["size"][1])
    assert abs(result["mask"]["mean"] / 255 - area) < 0.05
    assert state["selected"] == [NAME]
    assert state["selected_drawables"] == [{"name": NAME, "is_mask": False}]
    record = json.loads(result["parasite"]["text"])
    assert record["source"]["name"] == "Background" and record["prompt"] == PROMPT
    assert result["parasite"]["flags"] & 2, "the parasite is attached undoably"
    assert session.new_messages() == []
    note = session.wait_cost_note()
    assert re.fullmatch(r"GPT Image Edit: 1 result placed, cost (\S+) \(estimate \$0\.\d{4}\)\.",
                        note).group(1) == f"${record['cost_usd']:.4f}", note
    with Image.open(session.shot("result.png")) as picture:
        assert picture.size[0] >= 1200 and picture.size[1] >= 850


def test_one_undo_removes_the_edit_silently_and_redo_restores_the_layer(session):
    session.press("ctrl+z")
    assert [layer["name"] for layer in session.state()["layers"]] == ["Background"]
    session.press("ctrl+y")
    state = session.state()
    assert [layer["name"] for layer in state["layers"]] == [NAME, "Background"]
    assert state["layers"][0]["mask"]["max"] == 255
    assert state["selected_drawables"] == [{"name": NAME, "is_mask": False}]
    assert session.new_messages() == []  # no "Can't undo Attach Parasite to Item"


def test_a_second_edit_lands_above_the_first_its_variants_as_a_group(session):
    session.endpoint("invert")
    session.gui.ask("select_layer", image=session.image, name="Background")
    first_id = session.state()["layers"][0]["id"]
    session.start_edit(variants=2)
    state = session.wait_for_layers(3)
    group, first, source = state["layers"]
    # GIMP numbers a second layer of the same name ("... #1").
    assert group["name"].startswith(NAME) and group["is_group"] and group["visible"]
    assert (first["id"], source["name"]) == (first_id, "Background")
    assert [(child["name"], child["visible"], child["mask"]) for child in group["children"]] == [
        ("variant 1", True, None), ("variant 2", False, None)]  # the whole layer: no mask
    assert state["selected"] == ["variant 1"]
    assert session.new_messages() == []


def test_a_source_deleted_while_waiting_puts_the_result_on_top(session):
    session.endpoint("held")
    session.gui.ask("select_layer", image=session.image, name="Background")
    before = [layer["id"] for layer in session.state()["layers"]]
    session.start_edit(variants=1)
    session.wait_for_request()
    session.gui.run_action(session.image_window(), "Delete Layer")
    session.wait_state(lambda s: "Background" not in [x["name"] for x in s["layers"]])
    session.fake.held.set()
    state = session.wait_for_layers(3)
    assert [layer["id"] for layer in state["layers"][1:]] == before[:2]
    top = state["layers"][0]
    assert top["name"].startswith(NAME) and top["id"] not in before
    assert state["selected"] == [top["name"]]
    assert "Traceback" not in session.gui.log_text()
    assert session.new_messages() == []


def test_an_image_closed_while_waiting_opens_the_result_as_a_new_image(session):
    session.endpoint("held")
    first_image = session.image
    closing = session.open_picture("pond.png")
    session.start_edit()
    session.wait_for_request()
    session.close_while_waiting("pond")
    session.fake.held.set()
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        images = session.gui.ask("images")["images"]
        new = [image for image in images if image["id"] not in (first_image, closing)]
        if new:
            break
        assert time.monotonic() < deadline, f"no new image: {images}"
        time.sleep(0.3)
    assert [layer["name"] for layer in new[0]["layers"]] == [NAME]
    assert new[0]["layers"][0]["size"] == [480, 320]
    assert "Traceback" not in session.gui.log_text()
    assert session.new_messages() == []
    session.image = new[0]["id"]
    session.press("ctrl+w")  # the new image is unsaved: GIMP asks
    session.gui.window("^Close ")
    session.gui.key("ctrl+d")  # Discard Changes
    session.gui.wait_gone("^Close ")
    session.image = first_image
    session.image_window()


def test_a_failed_edit_shows_one_message_and_leaves_the_image(session):
    session.endpoint("moderation")
    before = session.state()
    session.start_edit()
    deadline = time.monotonic() + WAIT_SECONDS
    messages = []
    while not messages:
        messages = session.new_messages()
        assert time.monotonic() < deadline, "no message"
        time.sleep(0.3)
    time.sleep(2)
    messages += session.new_messages()
    assert len(messages) == 1, messages
    heading, sentence = messages[0].split("\n")
    assert heading == "GIMP-Error: Execution error for 'GPT Image Edit':"
    assert sentence == MODERATION, messages
    after = session.state()
    assert after["layers"] == before["layers"] and after["selected"] == before["selected"]


def test_no_key_opens_the_settings_and_the_edit_goes_on(session):
    session.endpoint("invert", key=False)
    before = len(session.state()["layers"])
    session.start_edit()
    settings = session.gui.window("^GPT Image Settings$")
    session.gui.screenshot(settings, session.shots / "settings-no-key.png")
    session.gui.key("Tab")  # from the endpoint to the key
    session.gui.type(session.fake.key)
    session.gui.key("alt+s")
    state = session.wait_for_layers(before + 1)
    assert state["layers"][0]["name"].startswith(NAME)
    assert session.fake.requests[-1].headers["authorization"] == f"Bearer {session.fake.key}"
    assert session.new_messages() == []


def test_cancel_in_the_status_bar_ends_the_edit_and_leaves_nothing(session):
    session.endpoint("held")
    before = session.state()
    session.start_edit()
    session.wait_for_request()
    assert [path.name for path in session.tmp.iterdir() if path.name.startswith("gpt-")]
    session.click_cancel()
    session.wait_for_no_job()
    after = session.state()
    assert after["layers"] == before["layers"]
    assert "Traceback" not in session.gui.log_text()
    assert session.new_messages() == []


def test_a_preview_shows_where_the_result_lands_and_goes_with_one_undo(session):
    session.endpoint("held_previews")
    session.open_picture("meadow.png")  # a fresh image: the earlier scenes deleted its source
    session.gui.xdotool("windowsize", session.image_window(), "1270", "900")
    session.gui.ask("select_ellipse", image=session.image, box=ELLIPSE)
    before = session.state()
    unchanged = session.shot("before-preview.png", for_docs=False)
    session.start_edit(variants=1)
    state = session.wait_for_preview()
    names = [layer["name"] for layer in state["layers"]]
    # Above the source layer (and above its earlier results), visible, the retoucher's
    # selected layer still the selected one.
    assert names.index(PREVIEW) < names.index("Background")
    assert names[names.index(PREVIEW) + 1:] == [layer["name"] for layer in before["layers"]
                                                 ][names.index(PREVIEW):]
    preview = state["layers"][names.index(PREVIEW)]
    assert preview["visible"] and preview["parasite"] is None
    assert state["selected"] == before["selected"] and state["undo_enabled"]
    # On the canvas: the inverted mosaic the stand-in streams, where the ellipse was.
    changed = canvas_change(unchanged, session.shot("preview.png"))
    assert changed > 0.02, f"no preview on the canvas ({changed:.3f} of it changed)"
    # The retoucher's own step while waiting: Select All, undoable as ever.
    session.press("ctrl+a")
    assert session.state()["selection"] == [0, 0, *before_size(before)]
    session.fake.held.set()

    state = session.wait_for_layers(len(before["layers"]) + 1)
    result = state["layers"][names.index(PREVIEW)]
    assert result["name"].startswith(NAME) and PREVIEW not in layer_names(state)
    assert (result["offsets"], result["size"]) == (preview["offsets"], preview["size"])
    session.press("ctrl+z")  # the whole edit, previews included
    after_undo = session.state()
    assert after_undo["layers"] == before["layers"]
    assert after_undo["selection"] == [0, 0, *before_size(before)]
    session.press("ctrl+z")  # then the retoucher's Select All
    assert session.state()["selection"] == [140, 60, 340, 210]
    assert session.new_messages() == []
    session.press("ctrl+y", "ctrl+y")
    assert len(session.state()["layers"]) == len(before["layers"]) + 1


def test_cancel_while_a_preview_shows_leaves_nothing(session):
    session.endpoint("held_previews")
    before = session.state()
    session.start_edit()
    session.wait_for_preview()
    session.click_cancel()
    session.wait_for_no_job()
    after = session.wait_state(lambda s: PREVIEW not in layer_names(s))
    assert after["layers"] == before["layers"] and after["selected"] == before["selected"]
    assert after["undo_enabled"]
    assert "Traceback" not in session.gui.log_text()
    assert session.new_messages() == []
    session.press("ctrl+z")  # the undo history is the one before the edit: the last redo
    assert len(session.state()["layers"]) == len(before["layers"]) - 1
    session.press("ctrl+y")
    assert session.state()["layers"] == before["layers"]
    assert session.new_messages() == []


def test_a_failure_after_a_preview_takes_it_away(session):
    session.endpoint("stream_error")
    before = session.state()
    session.start_edit()
    messages = session.wait_for_messages()
    assert len(messages) == 1 and "stopped the edit before it was finished" in messages[0]
    after = session.wait_state(lambda s: PREVIEW not in layer_names(s))
    assert after["layers"] == before["layers"] and after["undo_enabled"]


def test_saving_while_a_preview_shows_keeps_it_in_the_file_as_documented(session):
    """GIMP saves every layer of the image; GIMP has no canvas-only pictures for plug-ins,
    so a preview saved while it shows is in that file (docs/architecture.md, "Live
    previews"). GIMP then marks the image changed once the preview goes."""
    session.endpoint("held_previews")
    before = session.state()
    session.start_edit()
    session.wait_for_preview()
    saved = session.folder / "saved-while-waiting.xcf"
    session.gui.ask("save", image=session.image, path=str(saved))
    in_file = [layer["name"] for layer in session.gui.ask("file_layers", path=str(saved))[
        "layers"]]
    assert in_file == [PREVIEW] + layer_names(before)
    session.click_cancel()
    session.wait_for_no_job()
    after = session.wait_state(lambda s: PREVIEW not in layer_names(s))
    assert after["layers"] == before["layers"] and after["dirty"]
    assert session.new_messages() == []


def test_nothing_of_the_plugin_enters_open_recent_and_results_are_kept(session):
    session.gui.quit()
    recent = session.folder / "data" / "recently-used.xbel"
    documents = session.home / ".config" / "GIMP" / session.version / "documentrc"
    listed = []
    for path in (recent, documents):
        if path.exists():
            listed += re.findall(r"file://[^\"\s)]+", path.read_text())
    # The retoucher's own pictures and the file saved while waiting, nothing of the plug-in.
    assert all(Path(url).name in ("lake.png", "pond.png", "meadow.png",
                                  "saved-while-waiting.xcf") for url in listed), listed
    kept = sorted((session.folder / "data" / "gpt-image-edit" / "history").glob("*.png"))
    # Every picture an answer brought (2 variants once), the closed image's included; live
    # previews are not results.
    assert len(kept) == 7
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in kept)


PREVIEW = "GPT preview (goes away by itself)"
CANCEL_FROM_RIGHT = {"3.0": 281, "3.2": 281}


def layer_names(state: dict) -> list[str]:
    return [layer["name"] for layer in state["layers"]]


def before_size(state: dict) -> list[int]:
    return [state["layers"][-1]["size"][0], state["layers"][-1]["size"][1]]


def canvas_change(before: Path, during: Path) -> float:
    """The share of the window's pixels that changed clearly between two screenshots."""
    with Image.open(before) as first, Image.open(during) as second:
        first, second = first.convert("L"), second.convert("L")
        if first.size != second.size:
            return 1.0
        changed = ImageChops.difference(first, second).point(lambda v: 255 if v > 40 else 0)
        return changed.histogram()[255] / (first.width * first.height)


def _worker_jobs(folder: Path) -> list[int]:
    """The workers running a job in `folder` (other tests' workers may run meanwhile)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"job" in argv and any(arg.startswith(bytes(folder)) for arg in argv):
                found.append(int(entry.name))
    return found
