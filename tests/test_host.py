"""The host side of the job protocol, as both GIMP entries use it (here on Python 3)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugin" / "gpt-image-edit"))
import gpt_image_edit_host as host  # noqa: E402

ARGUMENTS = {"prompt": "make it blue", "model": "gpt-image-2", "size": "auto",
             "quality": "high", "variants": 1}
LAYER = {"width": 64, "height": 48, "offset_x": 0, "offset_y": 0}


def stand_in_worker(tmp_path: Path, script: str) -> host.Worker:
    """An executable in the worker's place, so the host meets a worker that misbehaves."""
    program = tmp_path / "python"
    program.write_text("#!/bin/sh\n" + script + "\n")
    program.chmod(0o755)
    return host.Worker(str(program))


def run(worker: host.Worker) -> str:
    with host.Job() as job:
        job.write(ARGUMENTS, LAYER, "RGB", (0, 0), (LAYER["width"], LAYER["height"]))
        with pytest.raises(host.HostError) as failure:
            host.WorkerRun(worker, job).wait()
    return str(failure.value)


def test_a_worker_that_cannot_import_its_packages_means_it_is_not_set_up(tmp_path):
    worker = stand_in_worker(tmp_path, "echo \"ModuleNotFoundError: No module named 'PIL'\" >&2"
                                       "; exit 1")
    assert run(worker) == host.NOT_INSTALLED


def test_the_workers_last_word_is_shown_when_it_wrote_no_manifest(tmp_path):
    sentence = "The results folder could not be made: check the free disk space."
    worker = stand_in_worker(tmp_path, f"echo 'some log line' >&2; echo '{sentence}' >&2; exit 2")
    assert run(worker) == sentence


def test_an_error_on_the_host_side_stops_the_worker(tmp_path):
    worker = stand_in_worker(tmp_path, "exec sleep 60")
    with host.Job() as job:
        job.write(ARGUMENTS, LAYER, "RGB", (0, 0), (LAYER["width"], LAYER["height"]))
        with pytest.raises(ValueError), host.WorkerRun(worker, job) as running:
            raise ValueError("the host failed while the worker ran")
    assert running._process.poll() is not None


def test_a_worker_started_ahead_is_told_when_its_job_is_written(tmp_path):
    """The hosts start the worker before the export (wait_for_start) and send it one line
    once the job is complete; it reads the job only then."""
    worker = stand_in_worker(tmp_path, 'read line; echo "$line after $*" >&2; exit 2')
    with host.Job() as job:
        running = host.WorkerRun(worker, job, wait_for_start=True)
        with running:
            job.write(ARGUMENTS, LAYER, "RGB", (0, 0), (LAYER["width"], LAYER["height"]))
            running.start()
            with pytest.raises(host.HostError) as failure:
                running.wait()
    assert str(failure.value) == f"start after -m gpt_image_edit job {job.path} --wait-for-start"


def test_a_worker_started_ahead_that_died_says_why_when_started(tmp_path):
    worker = stand_in_worker(tmp_path, "echo \"ModuleNotFoundError: No module named 'PIL'\" >&2"
                                       "; exit 1")
    with host.Job() as job, host.WorkerRun(worker, job, wait_for_start=True) as running:
        running._process.wait()  # gone before the host is done exporting
        running.start()
        with pytest.raises(host.HostError) as failure:
            running.wait()
    assert str(failure.value) == host.NOT_INSTALLED


def test_the_worker_gets_its_own_python_path_not_gimps(monkeypatch):
    monkeypatch.setenv("PYTHONHOME", "/gimp/bundled/python")
    monkeypatch.setenv("PYTHONPATH", "/gimp/bundled/site-packages")
    env = host.Worker("/venv/bin/python", ["/data/lib"]).environment()
    assert "PYTHONHOME" not in env
    assert env["PYTHONPATH"] == "/data/lib"


def test_job_folders_are_private_and_marked_as_the_jobs_alone():
    with host.Job() as job:
        assert os.stat(job.folder).st_mode & 0o777 == 0o700
        assert os.path.isfile(os.path.join(job.folder, host.JOB_FOLDER_MARKER))
    assert not os.path.exists(job.folder)


def test_raw_pixels_are_read_back_only_at_their_exact_size(tmp_path):
    path = str(tmp_path / "variant-1.rgb")
    host.write_raw(path, bytes(range(24)))
    assert host.read_raw(path, 4, 2, "RGB") == bytes(range(24))
    for width, height, mode in ((4, 2, "RGBA"), (3, 2, "RGB"), (4, 2, "L")):
        with pytest.raises(ValueError):
            host.read_raw(path, width, height, mode)


def test_the_job_asks_for_raw_pixels_both_ways():
    with host.Job() as job:
        job.write(ARGUMENTS, LAYER, "RGBA", (3, 4), (20, 10), with_selection=True)
        with open(job.path) as handle:
            written = json.load(handle)
    assert written["protocol"] == 2 and written["result_pixels"] == "raw"
    assert written["source"] == {"path": "source.raw", "pixels": "RGBA", "x": 3, "y": 4,
                                 "width": 20, "height": 10}
    assert written["selection"] == {"path": "selection.gray", "pixels": "L"}
    assert os.path.basename(job.source_path) == "source.raw"
    assert os.path.basename(job.selection_path) == "selection.gray"
