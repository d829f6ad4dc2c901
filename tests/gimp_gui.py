"""Real GIMP 3 with its windows on a private Xvfb with a window manager (openbox), played
with xdotool as a retoucher would: keys, GIMP's action search, dialogs, screenshots.

GIMP runs tests/gimp3/interactive_session.py as its batch script: it opens pictures and
reports what GIMP holds (layers, masks, the selection, the selected layers) when asked;
everything else goes through GIMP's windows. GIMP's messages go to its console
(--console-messages), so every message it shows is counted in its log; without it
(console_messages=False) they go where a retoucher sees them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests import real_gimp

WAIT_SECONDS = 90.0
TOOLS = ("Xvfb", "openbox", "xdotool", "import")
SCREEN = "1280x960x24"


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found: install them with "
                           "'apt-get install xvfb openbox xdotool imagemagick'.")


class Desktop:
    """Xvfb and openbox: a screen with a window manager, as a person has."""

    def __init__(self):
        require_tools()
        read_end, write_end = os.pipe()
        self.server = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", SCREEN, "-nolisten",
             "tcp"], pass_fds=(write_end,), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        assert number, "Xvfb did not start"
        self.display = f":{number}"
        self.window_manager = subprocess.Popen(
            ["openbox", "--sm-disable"], env={**os.environ, "DISPLAY": self.display},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def close(self) -> None:
        for process in (self.window_manager, self.server):
            process.terminate()
            process.wait(timeout=10)


class Gui:
    """One GIMP with its windows, the script serving commands, and xdotool."""

    def __init__(self, gimp: real_gimp.RealGimp, desktop: Desktop, home: Path,
                 folder: Path, env: dict[str, str], binds=(), console_messages=True,
                 script: Path = real_gimp.SCRIPTS / "interactive_session.py"):
        self.gimp, self.display, self.folder = gimp, desktop.display, folder
        self.out = folder / "out"
        self.out.mkdir()
        self.log = folder / "gimp.log"
        self.commands = 0
        with open(self.log, "w") as stream:
            self.process = gimp.start_gui_script(
                script, home=home,
                display=self.display, env={"GIMP_TEST_OUT": str(self.out), **env},
                binds=[folder, *binds], stdout=stream,
                extra_args=["--console-messages"] if console_messages else [])

    # -- the script -------------------------------------------------------------------
    def ask(self, do: str, **arguments) -> dict:
        number = self.commands
        self.commands += 1
        command = self.out / f"command-{number}.json"
        temporary = command.with_suffix(".tmp")
        temporary.write_text(json.dumps({"do": do, **arguments}))
        temporary.rename(command)
        answer = self.out / f"answer-{number}.json"
        deadline = time.monotonic() + WAIT_SECONDS
        while not answer.exists():
            assert time.monotonic() < deadline and self.process.poll() is None, (
                f"GIMP did not answer {do}:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)
        reply = json.loads(answer.read_text())
        assert "error" not in reply, reply["error"]
        return reply

    def quit(self) -> None:
        if self.process.poll() is None:
            self.ask("quit")
            self.process.wait(timeout=120)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    # -- the person at the screen -----------------------------------------------------
    def xdotool(self, *args: str) -> str:
        done = subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": self.display},
                              capture_output=True, text=True, timeout=30)
        return done.stdout.strip()

    def visible_windows(self) -> list[str]:
        return [self.xdotool("getwindowname", window) for window in
                self.xdotool("search", "--onlyvisible", "--name", ".").split()]

    def find_window(self, name: str) -> str | None:
        found = self.xdotool("search", "--onlyvisible", "--name", name).split()
        return found[-1] if found else None

    def window(self, name: str, timeout: float = WAIT_SECONDS) -> str:
        """Wait for a visible window whose name matches, activate it, return its id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find_window(name)
            if found:
                self.xdotool("windowactivate", "--sync", found)
                self.xdotool("windowfocus", "--sync", found)
                return found
            assert self.process.poll() is None, f"GIMP ended:\n{self.log_text()[-3000:]}"
            time.sleep(0.3)
        raise AssertionError(f"no window named {name!r} appeared; visible: "
                             f"{self.visible_windows()}")

    def wait_gone(self, name: str, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while self.find_window(name):
            assert time.monotonic() < deadline, f"{name!r} is still open"
            time.sleep(0.3)

    def type(self, text: str) -> None:
        self.xdotool("type", "--delay", "20", text)

    def key(self, *keys: str) -> None:
        self.xdotool("key", "--delay", "80", *keys)

    def click(self, window: str, x: int, y: int) -> None:
        self.xdotool("mousemove", "--window", window, str(x), str(y))
        self.xdotool("click", "1")

    def run_action(self, image_window: str, action: str) -> None:
        """GIMP's action search (the / key), as a person reaches any menu entry."""
        self.xdotool("windowactivate", "--sync", image_window)
        self.key("slash")
        self.window("Search Actions")
        self.type(action)
        time.sleep(1.0)  # the list fills as one types
        self.key("Return")

    def screenshot(self, window: str, path: Path) -> Path:
        time.sleep(0.5)  # let GTK draw what just changed
        subprocess.run(["import", "-window", window, str(path)], check=True, timeout=60,
                       env={**os.environ, "DISPLAY": self.display})
        return path

    def screen(self, path: Path) -> Path:
        return self.screenshot("root", path)
