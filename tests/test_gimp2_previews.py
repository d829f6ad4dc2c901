"""Live previews in real GIMP 2.10 (issue #12), played through its windows on Xvfb with
openbox and xdotool as tests/test_gimp3_interactive.py does for GIMP 3: the edit is started
from GIMP's action search and gimpfu's dialog (RUN_INTERACTIVE) or with Filters > Repeat
(RUN_WITH_LAST_VALS); while it waits a preview shows on the canvas (screenshots compared),
above the source layer, locked, out of the undo history; one Ctrl+Z removes the whole
edit; GIMP's status-bar Cancel and a failed edit leave nothing of it. What GIMP holds is
asked of tests/gimp2/interactive_session.py; GIMP's messages are counted on its console
(--console-messages).

One GIMP 2.10 start runs the scenarios in order (each test is one of them).
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from tests import real_gimp
from tests.gimp_gui import Desktop, Gui
from tests.test_gimp2_dialog import click_prompt_box
from tests.test_gimp3_interactive import (
    ELLIPSE,
    NAME,
    PREVIEW,
    PROMPT,
    Session,
    before_size,
    canvas_change,
    layer_names,
)

SCRIPT = real_gimp.REPO / "tests" / "gimp2" / "interactive_session.py"
# GIMP 2.10's Cancel at the right end of the image window's status bar, left of the docks,
# from the window's right and bottom edges.
CANCEL_FROM_RIGHT = 247
CANCEL_FROM_BOTTOM = 16


class Gimp2Session(Session):
    def start_edit(self, dialog_shot=None, variants=None) -> None:
        """Through gimpfu's dialog, which stays open (insensitive) until the edit ends."""
        self.gui.run_action(self.image_window(), "GPT Image Edit")
        dialog = self.gui.window("^python-fu-gpt-image-edit$")
        time.sleep(0.5)  # GTK maps the dialog's widgets after the window
        click_prompt_box(self.gui, dialog)
        self.gui.key("ctrl+a")  # the prompt box may hold the last prompt
        self.gui.type(PROMPT)
        # Off the screen while the edit waits, out of the screenshots of the canvas.
        self.gui.xdotool("windowmove", dialog, "1279", "0")
        self.gui.key("alt+o")
        self.dialog = dialog

    def repeat_edit(self) -> None:
        """Filters > Repeat (Ctrl+F): the last edit again with its values and no dialog,
        its progress (and GIMP's Cancel) in the image window's status bar."""
        self.press("ctrl+f")

    def click_cancel(self) -> None:
        window = self.image_window()
        geometry = self.gui.xdotool("getwindowgeometry", window)
        width, height = map(int, re.search(r"Geometry: (\d+)x(\d+)", geometry).groups())
        self.gui.click(window, width - CANCEL_FROM_RIGHT, height - CANCEL_FROM_BOTTOM)


@pytest.fixture(scope="module")
def session(tmp_path_factory, fake_wisgate_server):
    gimp = real_gimp.provide(real_gimp.GIMP2)
    installed = real_gimp.installed_home(gimp, tmp_path_factory.mktemp)
    folder = tmp_path_factory.mktemp("previews-2.10")
    home = folder / "home"
    shutil.copytree(installed / ".config", home / ".config", symlinks=True)
    for name in ("tmp", "data", "shots"):
        (folder / name).mkdir()
    desktop = Desktop()
    env = {"GPT_IMAGE_EDIT_CONFIG": str(folder / "settings.json"), "TMPDIR": str(folder / "tmp"),
           "XDG_DATA_HOME": str(folder / "data")}
    gui = Gui(gimp, desktop, home, folder, env, binds=[installed], script=SCRIPT)
    current = Gimp2Session(real_gimp.GIMP2, gui, fake_wisgate_server, folder, home)
    try:
        current.open_picture("lake.png")
        current.gui.xdotool("windowsize", current.image_window(), "1270", "900")
        yield current
    finally:
        fake_wisgate_server.held.set()  # a test that failed mid-edit: let the edit end
        gui.quit()
        desktop.close()


def test_a_preview_shows_where_the_result_lands_and_goes_with_one_undo(session):
    session.endpoint("held_previews")
    session.gui.ask("select_ellipse", image=session.image, box=ELLIPSE)
    before = session.state()
    unchanged = session.shot("gimp2-before-preview.png", for_docs=False)
    session.start_edit()
    state = session.wait_for_preview()
    # A retoucher's edit asks for the default two previews.
    fields = session.fake.requests[-1].fields
    assert (fields.get("stream"), fields.get("partial_images")) == ("true", "2")
    # Above the source layer, visible, locked, marked by a parasite that is never saved;
    # the retoucher's active layer still the active one; undo on.
    assert layer_names(state) == [PREVIEW, "Background"]
    preview = state["layers"][0]
    assert preview["visible"] and preview["lock_content"] and preview["lock_position"]
    assert preview["preview_parasite"] == {"persistent": False, "undoable": False}
    assert state["selected"] == before["selected"] and state["undo_enabled"]
    # On the canvas: the inverted mosaic the stand-in streams, where the ellipse is.
    changed = canvas_change(unchanged, session.shot("gimp2-preview.png", for_docs=False))
    assert changed > 0.02, f"no preview on the canvas ({changed:.3f} of it changed)"
    session.gui.xdotool("windowmove", session.dialog, "0", "500")  # gimpfu's, with progress
    session.gui.screen(session.shots / "screen-preview.png")
    # The retoucher's own step while waiting: Select All, undoable as ever.
    session.press("ctrl+a")
    assert session.state()["selection"] == [0, 0, *before_size(before)]
    session.fake.held.set()

    state = session.wait_for_layers(2)
    result = state["layers"][0]
    assert result["name"] == NAME and result["preview_parasite"] is None
    assert (result["offsets"], result["size"]) == (preview["offsets"], preview["size"])
    session.press("ctrl+z")  # the whole edit, previews included
    after_undo = session.state()
    assert after_undo["layers"] == before["layers"]
    assert after_undo["selection"] == [0, 0, *before_size(before)]
    session.press("ctrl+z")  # then the retoucher's Select All
    assert session.state()["selection"] == [
        ELLIPSE[0], ELLIPSE[1], ELLIPSE[0] + ELLIPSE[2], ELLIPSE[1] + ELLIPSE[3]]
    assert session.new_messages() == []
    assert "Traceback" not in session.gui.log_text()


def test_cancel_while_a_preview_shows_leaves_nothing_and_says_nothing(session):
    session.endpoint("held_previews")
    before = session.state()
    session.repeat_edit()
    session.wait_for_preview()
    session.shot("gimp2-cancel.png", for_docs=False)
    session.gui.screen(session.shots / "screen-cancel.png")
    session.click_cancel()
    session.wait_for_no_job()
    after = session.wait_state(lambda s: PREVIEW not in layer_names(s))
    assert after["layers"] == before["layers"] and after["selected"] == before["selected"]
    assert after["undo_enabled"]
    assert "Traceback" not in session.gui.log_text()
    assert session.new_messages() == []
    # The undo history is the one before the edit: its last step the test's ellipse.
    session.press("ctrl+z")
    undone = session.state()
    assert undone["selection"] is None and undone["layers"] == before["layers"]
    session.press("ctrl+y")
    assert session.new_messages() == []


def test_a_failure_after_a_preview_takes_it_away(session):
    session.endpoint("stream_error")
    before = session.state()
    session.start_edit()
    session.wait_for_preview()
    messages = session.wait_for_messages()
    assert len(messages) == 1 and "stopped the edit before it was finished" in messages[0]
    after = session.wait_state(lambda s: PREVIEW not in layer_names(s))
    assert after["layers"] == before["layers"] and after["undo_enabled"]
    session.wait_for_no_job()
    assert "Traceback" not in session.gui.log_text()
