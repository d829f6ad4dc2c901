"""The GPT Image Edit dialog's Help, in real GIMP 3.0 on Xvfb: F1 goes through GIMP's help
system (the plug-in's help domain, help/en/gimp-help.xml) to its web-browser plug-in, which
opens the manual the installer put beside the entry. The "browser" here is a desktop entry
that records the address it was asked to open, as the desktop's default for web pages.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.test_gimp3_dialog import WAIT_SECONDS, display, home, start_gimp  # noqa: F401

RECORDER = """#!/bin/sh
printf '%s\\n' "$1" >> {urls}
"""
DESKTOP_ENTRY = """[Desktop Entry]
Type=Application
Name=Address recorder
Exec={recorder} %u
MimeType=text/html;x-scheme-handler/file;x-scheme-handler/http;x-scheme-handler/https;
"""
DEFAULTS = """[Default Applications]
text/html=address-recorder.desktop
x-scheme-handler/file=address-recorder.desktop
x-scheme-handler/http=address-recorder.desktop
x-scheme-handler/https=address-recorder.desktop
"""


def use_recorder_as_browser(user_home: Path, folder: Path, gimp_version: str = "3.0") -> Path:
    """Make the address recorder the home's default web browser (and GIMP's help browser);
    the file it writes."""
    urls = folder / "urls.txt"
    recorder = folder / "record-address"
    recorder.write_text(RECORDER.format(urls=urls))
    recorder.chmod(0o755)
    applications = user_home / ".local" / "share" / "applications"
    applications.mkdir(parents=True, exist_ok=True)
    (applications / "address-recorder.desktop").write_text(
        DESKTOP_ENTRY.format(recorder=recorder))
    (user_home / ".config" / "mimeapps.list").write_text(DEFAULTS)
    # GIMP's own help browser is not in Debian's GIMP (3 or 2.10); without this GIMP first asks once
    # whether to use the web browser instead.
    with open(user_home / ".config" / "GIMP" / gimp_version / "gimprc", "a") as gimprc:
        gimprc.write("(help-browser web-browser)\n")
    return urls


def wait_for_lines(path: Path, process) -> list[str]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_text().strip():
            return path.read_text().split()
        time.sleep(0.3)
    return []


def test_f1_in_the_edit_dialog_opens_the_installed_manual(start_gimp, home, tmp_path):  # noqa: F811
    urls = use_recorder_as_browser(home, tmp_path)
    gimp = start_gimp("cancel", {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-test"})
    gimp.window("^GPT Image Edit$")

    gimp.key("F1")
    opened = wait_for_lines(urls, gimp.process)
    gimp.window("^GPT Image Edit$")
    gimp.key("Escape")

    entry = home / ".config" / "GIMP" / "3.0" / "plug-ins" / "gpt-image-edit"
    manual = entry / "help" / "en" / "manual.html"
    assert opened == [f"file://{manual}#edit"], gimp.log.read_text()[-3000:]
    assert manual.read_text() == (Path(__file__).parent.parent / "docs" / "manual.html") \
        .read_text()
    assert 'id="edit"' in manual.read_text()
    assert gimp.report("cancelled.json")["status"] == "cancel"
