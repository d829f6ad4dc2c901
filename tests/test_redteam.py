"""The worker attacked, one test per class of issue #8 (docs/security.md), through a hostile
server of our own on loopback (tests/hostile_server.py) and the real command line.

Each test asserts what reached the other host, memory, time, the files left behind and the
sentence shown. Memory is the worker process's own peak (VmHWM of its address space, which,
unlike ru_maxrss, does not inherit the forking test process's size), measured by a wrapper
that runs the command line in a child process.
"""

from __future__ import annotations

import email.utils
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from gpt_image_edit import logs
from gpt_image_edit.client import EditRequest, ImagesClient, RetryPolicy, WaitBudget
from gpt_image_edit.errors import BadInputError, BadResponseError, RateLimitError
from gpt_image_edit.settings import Settings
from tests import hostile_server as hostile
from tests.hostile_server import HostileServer

KEY = "sk-redteam-key-0123456789abcdef"
RSS_FILE_ENV = "REDTEAM_RSS_FILE"
# Runs the command line and records its own peak memory (kB on Linux) in a file.
MEASURED = (
    "import os, sys\n"
    "from gpt_image_edit.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "finally:\n"
    "    with open('/proc/self/status') as status:\n"
    "        peak = [line.split()[1] for line in status if line.startswith('VmHWM:')][0]\n"
    "    with open(os.environ['" + RSS_FILE_ENV + "'], 'w') as out:\n"
    "        out.write(peak)\n"
    "sys.exit(code)\n")
SETTING_ENVS = ("GPT_IMAGE_EDIT_API_KEY", "WISDOM_GATE_KEY", "GPT_IMAGE_EDIT_BASE_URL",
                "GPT_IMAGE_EDIT_TIMEOUT", "GPT_IMAGE_EDIT_CONFIG")
FAST = RetryPolicy(max_retries=2, backoff=0.01, backoff_max=0.05)


@pytest.fixture
def endpoint():
    with HostileServer() as server:
        server.route("/v1/models", lambda handler, received: handler.send_body(
            200, b'{"object": "list", "data": []}'))
        yield server


@pytest.fixture
def other_host():
    with HostileServer() as server:
        yield server


@pytest.fixture
def env(tmp_path, endpoint):
    environment = {name: value for name, value in os.environ.items()
                   if name not in SETTING_ENVS}
    environment.update(GPT_IMAGE_EDIT_API_KEY=KEY,
                       GPT_IMAGE_EDIT_BASE_URL=endpoint.url("/v1"),
                       GPT_IMAGE_EDIT_CONFIG=str(tmp_path / "config" / "settings.json"),
                       XDG_CONFIG_HOME=str(tmp_path / "config"),
                       # The sentences as a GIMP user reads them: the host names its menu.
                       GPT_IMAGE_EDIT_SETTINGS_PLACE="Filters > AI > GPT Image Settings...",
                       PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "plugin"),
                                                   environment.get("PYTHONPATH", "")]))
    return environment


class Run:
    def __init__(self, finished: subprocess.CompletedProcess, seconds: float, peak_kb: int):
        self.code = finished.returncode
        self.stdout = finished.stdout
        self.stderr = finished.stderr
        self.seconds = seconds
        self.peak_mb = peak_kb / 1024

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


def run(*arguments, env: dict, cwd: Path | None = None, umask: int | None = None,
        stdin: str | None = None, timeout: float = 120) -> Run:
    rss_file = Path(env["GPT_IMAGE_EDIT_CONFIG"]).parent.parent / "peak-rss"
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-c", MEASURED, *map(str, arguments)],
        env=dict(env, **{RSS_FILE_ENV: str(rss_file)}), cwd=cwd, capture_output=True,
        text=True, input=stdin, timeout=timeout,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
    seconds = time.monotonic() - started
    peak = int(rss_file.read_text()) if rss_file.exists() else 0
    return Run(finished, seconds, peak)


def photo(path: Path, size=(64, 48), noisy: bool = False, metadata: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if noisy:
        picture = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        picture = Image.new("RGB", size, (200, 40, 90))
    if metadata:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text("GPSPosition", "51.5007 N, 0.1246 W")
        picture.save(path, "PNG", pnginfo=info)
    else:
        picture.save(path, "PNG")
    return path


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def key_seen_by(server: HostileServer) -> bool:
    return any(KEY in json.dumps(received.headers) or KEY.encode() in received.body
               for received in server.received)


def client_for(endpoint: HostileServer, timeout: float = 30.0, **options) -> ImagesClient:
    settings = Settings(api_key=KEY, base_url=endpoint.url("/v1"), timeout=timeout,
                        key_source="GPT_IMAGE_EDIT_API_KEY")
    return ImagesClient(settings, retry=options.pop("retry", FAST), **options)


def small_request(n: int = 1, size: str = "64x48") -> EditRequest:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(buffer, "PNG")
    return EditRequest(image=buffer.getvalue(), prompt="x", model="gpt-image-2", size=size,
                       quality="low", n=n)


# -- 1. the key goes only to the endpoint's origin, as the connecting parser reads it --------
MISREAD = [
    ("backslash", "http://{other}\\@{endpoint}/x.png"),
    ("user info", "http://{endpoint}@{other}/x.png"),
    ("space", "http://{endpoint} @{other}/x.png"),
    ("tab", "http://{endpoint}/x.png\t@{other}/"),
    ("control character", "http://{endpoint}\x00@{other}/x.png"),
]


@pytest.mark.parametrize("hop", ["answer", "redirect"])
@pytest.mark.parametrize("name, template", MISREAD, ids=[name for name, _ in MISREAD])
def test_key_goes_only_to_the_endpoints_origin(endpoint, other_host, name, template, hop):
    other_host.route("/x.png", hostile.png_file())
    endpoint.route("/x.png", hostile.png_file())
    address = template.format(other=other_host.authority, endpoint=endpoint.authority)
    if hop == "redirect":
        endpoint.route("/hop.png", hostile.redirect(address))
        address = endpoint.url("/hop.png")
    endpoint.route("/v1/images/edits", hostile.url_answer(address))
    started = time.monotonic()
    with pytest.raises(BadResponseError) as raised, client_for(endpoint) as client:
        client.edit(small_request())
    assert time.monotonic() - started < 5
    assert str(raised.value).startswith("WisGate pointed to its result at an address that "
                                        "could be misread (")
    assert str(raised.value).endswith("), so it was not fetched: try again.")
    assert not key_seen_by(other_host)
    assert other_host.received == []


def test_key_rules_still_let_honest_addresses_through(endpoint, other_host):
    """The control for the test above: the same setup with plain addresses works, the key
    going to the endpoint's picture and not to the other host's."""
    endpoint.route("/mine.png", hostile.png_file())
    other_host.route("/theirs.png", hostile.png_file())
    for address in (endpoint.url("/mine.png"), other_host.url("/theirs.png")):
        endpoint.route("/v1/images/edits", hostile.url_answer(address))
        with client_for(endpoint) as client:
            assert len(client.edit(small_request()).images) == 1
    assert endpoint.received[-1].headers["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in other_host.received[-1].headers


# -- 2. user info in the endpoint ----------------------------------------------------------
def test_endpoint_user_info_is_refused_and_never_repeated(tmp_path, env, endpoint):
    password = "pa55-w0rd-in-url"
    env = dict(env, GPT_IMAGE_EDIT_BASE_URL=f"http://admin:{password}@{endpoint.authority}/v1")
    picture = photo(tmp_path / "a.png")
    edit = run("edit", picture, "--prompt", "x", "--json", env=env)
    check = run("check", env=env)
    shown = run("settings", env=env)
    for result in (edit, check):
        assert result.code == 2
        assert result.lines[-1].endswith("The endpoint holds a user name or password, which "
                                         "is never sent: remove it from the endpoint in "
                                         "Filters > AI > GPT Image Settings... (or "
                                         "GPT_IMAGE_EDIT_BASE_URL); the API key goes in the "
                                         "key setting.")
    summary = json.loads(shown.stdout)
    assert summary["effective"]["base_url"]["value"] == endpoint.url("/v1")
    assert summary["problem"].startswith("The endpoint holds a user name or password")
    log = (tmp_path / "config" / "gpt-image-edit.log")
    everything = "".join(r.stdout + r.stderr for r in (edit, check, shown)) + (
        log.read_text() if log.exists() else "")
    assert password not in everything and "admin" not in everything
    assert endpoint.received == []
    assert files_in(tmp_path) == ["a.png", "config", "peak-rss"]


# -- 3. answers are bounded on their decoded size -------------------------------------------
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compression_bomb_fails_in_little_memory_and_time(tmp_path, env, endpoint, encoding):
    endpoint.route("/v1/images/edits", hostile.compression_bomb(1024 ** 3, encoding))
    picture = photo(tmp_path / "in" / "a.png", size=(1024, 1024))
    result = run("edit", picture, "--prompt", "x", "--size", "1024x1024", env=env)
    assert result.code == 4
    assert result.lines == [f"{picture}: WisGate's answer was far larger than the pictures "
                            "asked for, so it was not read: try again, and check the "
                            "endpoint if it keeps happening."]
    assert result.peak_mb < 600 and result.seconds < 30
    assert endpoint.sent_bytes < 2 * 1024 * 1024  # the bomb itself is about 1 MB
    assert files_in(picture.parent) == ["a.png"]


@pytest.mark.parametrize("declared", [300_000_000, None], ids=["declared", "chunked"])
def test_huge_base64_answer_is_refused_early(tmp_path, env, endpoint, declared):
    endpoint.route("/v1/images/edits", hostile.endless_base64(declared))
    picture = photo(tmp_path / "in" / "a.png", size=(1024, 1024))
    result = run("edit", picture, "--prompt", "x", "--size", "1024x1024", env=env)
    assert result.code == 4
    assert "far larger than the pictures asked for" in result.lines[-1]
    assert result.peak_mb < 300 and result.seconds < 30
    # 1024x1024 pictures need at most about 7 MB of base64: the rest was never read.
    assert endpoint.sent_bytes < 40 * 1024 * 1024
    assert files_in(picture.parent) == ["a.png"]


# -- 4. total deadlines and waits ----------------------------------------------------------
@pytest.mark.parametrize("where", ["answer", "download"])
def test_trickling_answer_ends_with_the_timeout_sentence(tmp_path, env, endpoint, other_host,
                                                         where):
    if where == "answer":
        endpoint.route("/v1/images/edits", hostile.trickle(0.5))
    else:
        other_host.route("/x.png", hostile.trickle(0.5))
        endpoint.route("/v1/images/edits", hostile.url_answer(other_host.url("/x.png")))
    picture = photo(tmp_path / "in" / "a.png")
    result = run("edit", picture, "--prompt", "x", env=dict(env, GPT_IMAGE_EDIT_TIMEOUT="1"))
    assert result.code == 4
    assert result.lines[-1] == (f"{picture}: WisGate's answer did not arrive within 4 s (4 "
                                "times the timeout of 1 s): raise the timeout "
                                "(GPT_IMAGE_EDIT_TIMEOUT or Filters > AI > GPT Image "
                                "Settings...) and try again.")
    assert 4 <= result.seconds < 10
    assert files_in(picture.parent) == ["a.png"]
    assert not key_seen_by(other_host)


def _in_an_hour() -> str:
    return email.utils.formatdate(time.time() + 3600, usegmt=True)


@pytest.mark.parametrize("headers", [{"Retry-After": "3600"}, {"retry-after-ms": "3600000"},
                                     "date"], ids=["seconds", "milliseconds", "http-date"])
def test_a_wait_longer_than_allowed_fails_at_once(endpoint, headers):
    headers = {"Retry-After": _in_an_hour()} if headers == "date" else headers
    endpoint.route("/v1/images/edits", hostile.rate_limited(headers))
    started = time.monotonic()
    with pytest.raises(RateLimitError) as raised, client_for(
            endpoint, retry=RetryPolicy()) as client:
        client.edit(small_request())
    assert time.monotonic() - started < 3
    assert str(raised.value).startswith("WisGate is rate limiting your requests and asks to "
                                        "wait ")
    assert "at most 60 s a time, 120 s in all" in str(raised.value)
    assert len(endpoint.received) == 1


def test_waits_stop_when_the_edits_budget_is_spent(endpoint):
    endpoint.route("/v1/images/edits", hostile.rate_limited({"Retry-After": "1"}))
    started = time.monotonic()
    with pytest.raises(RateLimitError), client_for(
            endpoint, retry=RetryPolicy(max_retries=5),
            waits=WaitBudget(per_wait=60, total=1.5)) as client:
        client.edit(small_request())
    assert 1 <= time.monotonic() - started < 3
    assert len(endpoint.received) == 2  # one wait of 1 s fits the budget, a second does not


def test_a_batch_under_endless_rate_limits_ends_soon(tmp_path, env, endpoint):
    endpoint.route("/v1/images/edits", hostile.rate_limited({"Retry-After": "86400"}))
    pictures = [photo(tmp_path / "in" / f"p{number}.png") for number in range(6)]
    result = run("edit", *pictures, "--prompt", "x", "--jobs", "2", env=env)
    assert result.code == 3 and result.seconds < 30
    assert result.lines[0] == "6 of 6 edits failed:"
    for picture, line in zip(pictures, result.lines[1:]):
        assert line.startswith(f"  {picture}: ") or line.startswith(f"  {picture.name} was not")
    assert len(endpoint.received) <= 2
    assert files_in(tmp_path / "in") == [picture.name for picture in pictures]


# -- 5. signals ------------------------------------------------------------------------------
def test_signals_at_any_moment_leave_only_whole_results(tmp_path, env, endpoint):
    endpoint.route("/v1/images/edits", hostile.hold(0.3, hostile.pictures(2)))
    source = photo(tmp_path / "in" / "big.png", size=(2400, 1600), noisy=True)
    selection = tmp_path / "in" / "area.png"
    area = Image.new("L", (2400, 1600), 0)
    area.paste(255, (100, 100, 2300, 1500))
    area.save(selection)
    environment = dict(env, **{RSS_FILE_ENV: str(tmp_path / "rss")})
    outcomes = []
    # Counted from the moment the upload arrives: the answer comes 0.3 s later, then the
    # two results are composed and written (about a second on this 4 MP picture).
    for number, delay in enumerate([0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.9, 1.2, 1.6, 3.0]):
        out = tmp_path / f"out{number}"
        uploads = len(endpoint.received)
        process = subprocess.Popen(
            [sys.executable, "-c", MEASURED, "edit", str(source), "--selection",
             str(selection), "--prompt", "x", "-n", "2", "-o", str(out)],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while len(endpoint.received) == uploads and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        sent = signal.SIGTERM if number % 2 else signal.SIGINT
        process.send_signal(sent)
        stdout, stderr = process.communicate(timeout=60)
        outcomes.append(process.returncode)
        assert "Traceback" not in stderr
        if process.returncode != 0:
            assert process.returncode == (143 if sent == signal.SIGTERM else 130)
            assert stderr.strip().splitlines()[-1].startswith("Stopped")
        left = files_in(out) if out.exists() else []
        assert not [name for name in left if name.startswith(".") or name.endswith(".tmp")]
        for name in left:  # whatever has a result name holds the whole result
            with Image.open(out / name) as written:
                written.load()
                assert written.size == (2400, 1600)
        if process.returncode != 0 and not left:
            assert not out.exists()  # the folder this run made goes again
    # The sweep spans the whole edit: signals before, during and after the write.
    assert {130, 143} <= set(outcomes) and outcomes[-1] == 0


def test_a_job_cancelled_with_sigterm_stops_at_once_and_leaves_nothing(tmp_path, env,
                                                                       endpoint):
    """GIMP cancels an edit by terminating the worker (SIGKILL 2 s later)."""
    endpoint.route("/v1/images/edits", hostile.hold(30, hostile.pictures(1)))
    job = _job(tmp_path / "job")
    process = subprocess.Popen(
        [sys.executable, "-c", MEASURED, "job", str(job)],
        env=dict(env, **{RSS_FILE_ENV: str(tmp_path / "rss")}), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not endpoint.received and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    process.terminate()
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 143 and time.monotonic() - started < 2
    assert stderr.strip().splitlines() == ["Stopped (terminated): nothing half-written was "
                                           "left."]
    assert files_in(tmp_path / "job" / "results") == []


# -- 6. the answer decides nothing it should not -----------------------------------------------
def test_only_the_pictures_asked_for_are_used(tmp_path, env, endpoint):
    endpoint.route("/v1/images/edits", hostile.pictures(5))
    picture = photo(tmp_path / "in" / "a.png")
    result = run("edit", picture, "--prompt", "x", "-n", "2", "--json", env=env)
    assert result.code == 0
    assert len(result.stdout.splitlines()) == 2
    assert files_in(picture.parent) == ["a-edit-1.png", "a-edit-2.png", "a.png"]
    job_folder = tmp_path / "job"
    job_folder.mkdir()
    photo(job_folder / "source.png")
    (job_folder / "job.json").write_text(json.dumps({
        "protocol": 1, "prompt": "x", "model": "gpt-image-2", "size": "auto",
        "quality": "low", "variants": 1,
        "layer": {"width": 64, "height": 48, "offset_x": 0, "offset_y": 0},
        "source": {"path": "source.png"}, "selection": None, "output_dir": "results"}))
    job = run("job", job_folder / "job.json", env=env)
    assert job.code == 0
    manifest = json.loads((job_folder / "results" / "manifest.json").read_text())
    assert [result["path"] for result in manifest["results"]] == ["variant-1.png"]
    assert files_in(job_folder / "results") == ["manifest.json", "variant-1.png"]


def test_metadata_never_leaves_the_machine(tmp_path, env, endpoint):
    endpoint.route("/v1/images/edits", hostile.pictures(1))
    # 1024x1024 is a size the model takes as it is: only metadata decides the upload.
    tagged = photo(tmp_path / "tagged" / "a.png", size=(1024, 1024), metadata=True)
    plain = photo(tmp_path / "plain" / "a.png", size=(1024, 1024))
    chunk = b"prVt" + b"camera serial 12345"
    data = plain.read_bytes()
    end = data.rindex(b"IEND") - 4
    private = (len(chunk) - 4).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "a.png").write_bytes(data[:end] + private + data[end:])
    for picture in (tagged, plain, tmp_path / "private" / "a.png"):
        assert run("edit", picture, "--prompt", "x", env=env).code == 0
    uploads = [received.body for received in endpoint.received]
    assert b"GPSPosition" not in uploads[0] and b"51.5007" not in uploads[0]
    assert plain.read_bytes() in uploads[1]  # the control: a bare file goes as it is
    assert b"camera serial" not in uploads[2]


# -- 7. pay only for what can be saved ------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0 and os.environ.get("CI") != "true":
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as stream:
        try:
            while True:
                stream.write(b"\0" * 65536)
                stream.flush()
        except OSError:
            pass


def test_a_full_disk_is_found_before_the_upload(tmp_path, env, endpoint, small_disk):
    endpoint.route("/v1/images/edits", hostile.pictures(1))
    fill(small_disk)
    picture = photo(tmp_path / "in" / "a.png")
    result = run("edit", picture, "--prompt", "x", "-o", small_disk / "out", env=env)
    assert result.code == 2
    assert len(result.lines) == 1
    assert result.lines[0].startswith(f"{picture}: The disk holding {small_disk / 'out'} is "
                                      "full (the results may need 0.1 MB, 0.0 MB are free): "
                                      "free some space or choose another folder with -o.")
    assert [received for received in endpoint.received if "edits" in received.path] == []
    assert files_in(small_disk) == ["filler"]


def test_a_disk_filling_up_during_the_edit_leaves_nothing(tmp_path, env, endpoint, small_disk):
    out = small_disk / "out"
    endpoint.route("/v1/images/edits", hostile.before(lambda: fill(small_disk),
                                                      hostile.pictures(1)))
    picture = photo(tmp_path / "in" / "a.png", size=(320, 240), noisy=True)
    selection = tmp_path / "in" / "area.png"
    Image.new("L", (320, 240), 255).save(selection)
    result = run("edit", picture, "--selection", selection, "--prompt", "x", "-o", out,
                 env=env)
    assert result.code == 2
    assert result.lines == [f"{picture}: The disk holding {out} is full: free some space or "
                            "choose another folder with -o."]
    assert files_in(small_disk) == ["filler"]  # the folder it made is gone, nothing partial


# -- 8. the job protocol stays in its folder ------------------------------------------------
def _job(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "source.png").exists():
        photo(folder / "source.png")
    job = {"protocol": 1, "prompt": "x", "model": "gpt-image-2", "size": "auto",
           "quality": "low", "variants": 1,
           "layer": {"width": 64, "height": 48, "offset_x": 0, "offset_y": 0},
           "source": {"path": "source.png"}, "selection": None, "output_dir": "results"}
    job.update(changes)
    (folder / "job.json").write_text(json.dumps(job))
    return folder / "job.json"


@pytest.mark.parametrize("case", ["output absolute", "output dotdot", "output symlink",
                                  "source dotdot", "source absolute", "source symlink",
                                  "selection symlink"])
def test_a_job_reads_and_writes_only_inside_its_folder(tmp_path, env, endpoint, case):
    endpoint.route("/v1/images/edits", hostile.pictures(1))
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = photo(outside / "secret.png")
    folder = tmp_path / "job"
    folder.mkdir()
    changes = {
        "output absolute": {"output_dir": str(outside / "results")},
        "output dotdot": {"output_dir": "../outside/results"},
        "output symlink": {"output_dir": "linked"},
        "source dotdot": {"source": {"path": "../outside/secret.png"}},
        "source absolute": {"source": {"path": str(secret)}},
        "source symlink": {"source": {"path": "linked.png"}},
        "selection symlink": {"selection": {"path": "linked.png"}},
    }[case]
    (folder / "linked").symlink_to(outside)
    (folder / "linked.png").symlink_to(secret)
    job = _job(folder, **changes)
    result = run("job", job, env=env)
    assert result.code == 2
    shown = result.stderr + result.stdout
    manifest = folder / "results" / "manifest.json"
    if manifest.exists():
        shown += manifest.read_text()
    assert "names a file outside its folder" in shown and "Traceback" not in shown
    assert files_in(outside) == ["secret.png"]
    assert endpoint.received == []


# -- 9. settings and logs --------------------------------------------------------------------
def test_a_broken_settings_file_is_one_sentence_everywhere_and_repairable(tmp_path, env,
                                                                          endpoint):
    settings_file = Path(env["GPT_IMAGE_EDIT_CONFIG"])
    settings_file.parent.mkdir(mode=0o700)
    settings_file.write_bytes(b"\xff\xfe not json")
    os.chmod(settings_file, 0o600)
    picture = photo(tmp_path / "in" / "a.png")
    job = _job(tmp_path / "job")
    sentence = f"The settings file {settings_file} cannot be read"
    for arguments in (["check"], ["edit", picture, "--prompt", "x"], ["settings"]):
        result = run(*arguments, env=env)
        assert len(result.lines) == 1 and sentence in result.lines[0]
        assert "Traceback" not in result.stderr
    assert run("job", job, env=env).code == 2
    assert sentence in (tmp_path / "job" / "results" / "manifest.json").read_text()
    repaired = run("settings", "--update-from-stdin", env=env, stdin='{"timeout": 60}')
    assert repaired.code == 0 and json.loads(repaired.stdout)["problem"] is None
    assert run("check", env=env).code == 0
    assert endpoint.received[-1].path == "/v1/models"


def test_a_readable_key_file_is_made_private_with_a_warning(tmp_path, env, endpoint):
    del env["GPT_IMAGE_EDIT_API_KEY"]
    settings_file = Path(env["GPT_IMAGE_EDIT_CONFIG"])
    settings_file.parent.mkdir(mode=0o700)
    settings_file.write_text(json.dumps({"api_key": KEY}))
    os.chmod(settings_file, 0o644)
    result = run("check", env=env)
    assert result.code == 0
    assert result.lines == [f"The settings file {settings_file} holds the API key and was "
                            "readable by other users: it is now private (mode 0600); consider "
                            "replacing the key."]
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600


@pytest.mark.parametrize("case", ["file writable", "folder writable", "file of another user"])
def test_settings_others_could_change_are_refused(tmp_path, env, endpoint, other_host, case):
    """A planted endpoint would receive the key: such settings are not used at all."""
    del env["GPT_IMAGE_EDIT_BASE_URL"]
    if case == "file of another user" and os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    settings_file = Path(env["GPT_IMAGE_EDIT_CONFIG"])
    settings_file.parent.mkdir(mode=0o700)
    settings_file.write_text(json.dumps({"base_url": other_host.url("/v1")}))
    os.chmod(settings_file, 0o600)
    if case == "file writable":
        os.chmod(settings_file, 0o666)
    elif case == "folder writable":
        os.chmod(settings_file.parent, 0o777)
    else:
        os.chown(settings_file, 65534, 65534)
    result = run("check", env=env)
    assert result.code == 2 and len(result.lines) == 1
    assert {"file writable": "can be changed by other users",
            "folder writable": "can be changed by other users",
            "file of another user": "belongs to another user"}[case] in result.lines[0]
    assert other_host.received == [] and endpoint.received == []


def test_logs_stay_private_after_rotation_and_hide_every_secret(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "LOG_MAX_BYTES", 2000)
    monkeypatch.setenv("GPT_IMAGE_EDIT_API_KEY", KEY)
    monkeypatch.setenv("GPT_IMAGE_EDIT_CONFIG", str(tmp_path / "config" / "settings.json"))
    monkeypatch.setenv("GPT_IMAGE_EDIT_BASE_URL", "https://bob:hunter2-secret@example.com/v1")
    path = logs.setup_logging()
    logger = logs.logging.getLogger("gpt_image_edit.redteam")
    for number in range(60):
        logger.warning("line %d: key %s, Authorization: Basic Ym9iOmh1bnRlcjI=, see "
                       "https://bob:hunter2-secret@example.com/v1 and Bearer %s.", number, KEY,
                       KEY)
    for handler in logs.logging.getLogger(logs.LOGGER_NAME).handlers:
        handler.flush()
    files = sorted(path.parent.glob("gpt-image-edit.log*"))
    assert len(files) == 3  # rotated twice
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        text = file.read_text()
        assert KEY not in text and "hunter2" not in text and "Ym9iOmh1bnRlcjI" not in text
        assert "bob:" not in text
    last = files[0].read_text().strip().splitlines()[-1]
    assert last.endswith("Authorization: [redacted], see https://[redacted]@example.com/v1 "
                         "and Bearer [redacted].")


# -- 10. text ----------------------------------------------------------------------------------
def test_a_prompt_that_is_not_text_is_bad_input(tmp_path, env, endpoint):
    picture = photo(tmp_path / "in" / "a.png")
    finished = subprocess.run([sys.executable, "-c", MEASURED, "edit", str(picture),
                               "--prompt", b"sky \xff\xfe".decode("utf-8", "surrogateescape")],
                              env=dict(env, **{RSS_FILE_ENV: str(tmp_path / "rss")}),
                              capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2
    assert finished.stderr.strip() == ("The prompt is not valid text (it holds bytes that are "
                                       "not UTF-8, or broken characters): type it again, or "
                                       "save the file it comes from as UTF-8.")
    job = _job(tmp_path / "job", prompt="sky \ud800")
    assert run("job", job, env=env).code == 2
    manifest = json.loads((tmp_path / "job" / "results" / "manifest.json").read_text())
    assert manifest["error"]["kind"] == "bad_input"
    assert endpoint.received == []


# -- 11. file modes ----------------------------------------------------------------------------
def test_results_get_the_usual_mode_and_private_files_stay_private(tmp_path, env, endpoint):
    endpoint.route("/v1/images/edits", hostile.pictures(1))
    picture = photo(tmp_path / "in" / "a.png")
    saved = run("settings", "--update-from-stdin", env=env, umask=0o022,
                stdin=json.dumps({"api_key": KEY}))
    assert saved.code == 0
    assert run("edit", picture, "--prompt", "x", env=env, umask=0o022).code == 0
    assert run("edit", picture, "--prompt", "x", env=env, umask=0o077).code == 0
    config = tmp_path / "config"
    assert stat.S_IMODE((picture.parent / "a-edit.png").stat().st_mode) == 0o644
    assert stat.S_IMODE((picture.parent / "a-edit2.png").stat().st_mode) == 0o600
    assert stat.S_IMODE((config / "settings.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((config / "gpt-image-edit.log").stat().st_mode) == 0o600


# -- endpoint check, in-process ----------------------------------------------------------------
def test_the_client_refuses_an_endpoint_with_user_info_before_anything(endpoint):
    settings = Settings(api_key=KEY, base_url=f"http://u:p-secret@{endpoint.authority}/v1")
    with pytest.raises(BadInputError) as raised:
        ImagesClient(settings)
    assert "p-secret" not in str(raised.value)
    assert endpoint.received == []


# -- 12. streamed answers (issue 12): the same caps, deadline and key rules ------------------
def test_an_endless_event_stream_is_cut_by_the_answer_cap(tmp_path, env, endpoint):
    endpoint.route("/v1/images/edits", hostile.endless_events())
    picture = photo(tmp_path / "in" / "a.png", size=(1024, 1024))
    previews = tmp_path / "previews"
    result = run("edit", picture, "--prompt", "x", "--size", "1024x1024", "--save-previews",
                 previews, env=env)
    assert result.code == 4
    assert "far larger than the pictures asked for" in result.lines[-1]
    assert result.peak_mb < 300 and result.seconds < 30
    # Three 1024x1024 pictures' worth (the result and two previews) at most, then cut.
    assert endpoint.sent_bytes < 40 * 1024 * 1024
    assert files_in(picture.parent) == ["a.png"]
    assert not previews.exists()  # the previews of a failed edit are taken away


def test_an_endless_trickle_of_events_ends_at_the_deadline(tmp_path, env, endpoint):
    endpoint.route("/v1/images/edits", hostile.endless_events(0.5, comments=True))
    picture = photo(tmp_path / "in" / "a.png")
    result = run("edit", picture, "--prompt", "x", env=dict(env, GPT_IMAGE_EDIT_TIMEOUT="1"))
    assert result.code == 4
    assert result.lines[-1].startswith(f"{picture}: WisGate's answer did not arrive within 4 s")
    assert 4 <= result.seconds < 10
    assert files_in(picture.parent) == ["a.png"]


def test_a_huge_event_is_refused_early(tmp_path, env, endpoint):
    endpoint.route("/v1/images/edits", hostile.huge_event())
    picture = photo(tmp_path / "in" / "a.png", size=(1024, 1024))
    result = run("edit", picture, "--prompt", "x", "--size", "1024x1024", env=env)
    assert result.code == 4
    assert "far larger than the pictures asked for" in result.lines[-1]
    assert result.peak_mb < 300 and result.seconds < 30
    # One 1024x1024 picture needs at most about 9 MB of base64: the rest was never read.
    assert endpoint.sent_bytes < 20 * 1024 * 1024
    assert files_in(picture.parent) == ["a.png"]


def test_a_stream_never_carries_the_key_elsewhere_or_into_a_sentence(tmp_path, env, endpoint,
                                                                     other_host):
    other_host.route("/x.png", hostile.png_file())
    echoed = {"type": "error", "error": {"message": f"bad key Bearer {KEY} ({KEY})",
                                         "code": "server_error"}}
    endpoint.route("/v1/images/edits", hostile.events(
        hostile.event("image_edit.partial_image", {
            "type": "image_edit.partial_image", "url": other_host.url("/x.png")}),
        hostile.event("error", echoed)))
    picture = photo(tmp_path / "in" / "a.png")
    result = run("edit", picture, "--prompt", "x", "--json", env=env)
    assert result.code == 4
    assert KEY not in result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["message"].startswith(
        "WisGate stopped the edit before it was finished")
    assert other_host.received == []
    assert files_in(picture.parent) == ["a.png"]
    # A completed event that points elsewhere instead of carrying its picture: not fetched.
    endpoint.route("/v1/images/edits", hostile.events(hostile.event(
        "image_edit.completed", {"type": "image_edit.completed",
                                 "url": other_host.url("/x.png")})))
    result = run("edit", picture, "--prompt", "x", env=env)
    assert result.code == 4
    assert result.lines[-1] == (f"{picture}: WisGate's stream finished without the picture: "
                                "try again.")
    assert other_host.received == [] and not key_seen_by(other_host)
    assert files_in(picture.parent) == ["a.png"]
