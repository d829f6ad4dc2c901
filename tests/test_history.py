"""The results history (plugin/gpt_image_edit/history.py): kept privately, pruned by age
and size, listed newest first by `gpt-image-edit history`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from PIL import Image

from gpt_image_edit import history

DAY = 24 * 3600


def png(colour=(200, 10, 10), size=(16, 16)) -> bytes:
    stream = io.BytesIO()
    Image.new("RGB", size, colour).save(stream, "PNG")
    return stream.getvalue()


def test_results_are_kept_privately_with_their_record(tmp_path):
    kept = history.keep([png(), Image.new("RGBA", (8, 8))], "a red boat", "lake.xcf",
                        "gpt-image-2", folder=tmp_path, now=1000.0)
    assert [path.name.endswith(f"-{n}.png") for n, path in enumerate(kept, 1)] == [True] * 2
    assert all(os.stat(path).st_mode & 0o777 == 0o600 for path in kept)
    assert os.stat(tmp_path / history.INDEX).st_mode & 0o777 == 0o600
    records = [json.loads(line) for line in (tmp_path / history.INDEX).read_text().splitlines()]
    assert [(r["prompt"], r["image"], r["model"], r["variant"]) for r in records] == [
        ("a red boat", "lake.xcf", "gpt-image-2", 1), ("a red boat", "lake.xcf",
                                                       "gpt-image-2", 2)]
    assert (tmp_path / kept[0].name).read_bytes() == png()


def test_a_picture_received_from_a_url_is_kept_as_it_came(tmp_path):
    """A `url` answer's body is read into a bytearray: kept byte for byte all the same."""
    (kept,) = history.keep([bytearray(png())], "p", None, "m", folder=tmp_path)
    assert kept.read_bytes() == png()


def test_a_picture_received_as_jpeg_is_kept_as_png(tmp_path):
    stream = io.BytesIO()
    Image.new("RGB", (16, 8), (0, 90, 200)).save(stream, "JPEG")
    (kept,) = history.keep([stream.getvalue()], "p", None, "m", folder=tmp_path)
    with Image.open(kept) as picture:
        assert (picture.format, picture.size) == ("PNG", (16, 8))


def test_old_and_too_many_pictures_are_pruned(tmp_path, monkeypatch):
    now = 100 * DAY
    old = history.keep([png()], "old", None, "m", folder=tmp_path, now=now - 8 * DAY)
    recent = history.keep([png((0, 0, 0))], "recent", None, "m", folder=tmp_path,
                          now=now - DAY)
    newest = history.keep([png((0, 0, 255))], "newest", None, "m", folder=tmp_path, now=now)
    assert not old[0].exists() and recent[0].exists() and newest[0].exists()
    assert [entry["prompt"] for entry in history.entries(tmp_path)] == ["newest", "recent"]
    # Over the size limit, the oldest go first.
    monkeypatch.setattr(history, "KEEP_BYTES", newest[0].stat().st_size + 1)
    history.prune(tmp_path, now)
    assert [entry["prompt"] for entry in history.entries(tmp_path)] == ["newest"]
    assert not recent[0].exists()


def test_an_unwritable_history_never_fails_the_edit(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert history.keep([png()], "p", None, "m", folder=blocked / "history") == []


def test_the_command_lists_the_history_newest_first(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    folder = tmp_path / "gpt-image-edit" / "history"
    assert history.history_dir(env, platform="linux") == folder
    empty = subprocess.run([sys.executable, "-m", "gpt_image_edit", "history"], env=env,
                           capture_output=True, text=True)
    assert empty.returncode == 0 and str(folder) in empty.stderr
    first = history.keep([png()], "first", "a.xcf", "m", folder=folder, now=1_000_000.0)
    second = history.keep([png()], "second", None, "m", folder=folder, now=1_000_100.0)
    listed = subprocess.run([sys.executable, "-m", "gpt_image_edit", "history"], env=env,
                            capture_output=True, text=True)
    lines = listed.stdout.splitlines()
    assert listed.returncode == 0 and len(lines) == 2
    assert str(second[0]) in lines[0] and "second" in lines[0]
    assert str(first[0]) in lines[1] and "a.xcf: first" in lines[1]
    as_json = subprocess.run([sys.executable, "-m", "gpt_image_edit", "history", "--json"],
                             env=env, capture_output=True, text=True)
    assert [json.loads(line)["path"] for line in as_json.stdout.splitlines()] == [
        str(second[0]), str(first[0])]
