"""Settings: environment over settings file over defaults, and a private settings file."""

import json
import logging
import os
import stat
import sys
from pathlib import Path

import pytest

from gpt_image_edit import logs
from gpt_image_edit.errors import BadInputError
from gpt_image_edit.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    config_dir,
    config_path,
    load_settings,
    save_settings,
    settings_summary,
)

KEY = "sk-settings-test-0123456789"


def write_settings(path: Path, values: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values), encoding="utf-8")


def test_defaults_without_environment_or_file(private_config):
    settings = load_settings()
    assert settings.api_key is None
    assert settings.key_source == ""
    assert settings.base_url == DEFAULT_BASE_URL == "https://api.wisgate.ai/v1"
    assert settings.timeout == DEFAULT_TIMEOUT == 300.0


def test_settings_file_lives_in_the_xdg_config_folder(private_config):
    assert config_path() == private_config / "gpt-image-edit" / "settings.json"


@pytest.mark.parametrize("platform, expected", [
    ("linux", "xdg/gpt-image-edit"),
    ("darwin", "HOME/Library/Application Support/gpt-image-edit"),
    ("win32", "appdata/gpt-image-edit"),
])
def test_config_folder_is_the_platforms_usual_place(monkeypatch, tmp_path, platform, expected):
    monkeypatch.setattr(sys, "platform", platform)
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "APPDATA": str(tmp_path / "appdata")}
    wanted = expected.replace("HOME", str(Path.home())) if "HOME" in expected \
        else str(tmp_path / expected)
    assert config_dir(environ) == Path(wanted)


def test_linux_falls_back_to_dot_config(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    assert config_dir({}) == Path.home() / ".config" / "gpt-image-edit"


def test_config_environment_variable_names_another_file(tmp_path, monkeypatch):
    other = tmp_path / "elsewhere" / "my-settings.json"
    write_settings(other, {"api_key": KEY, "timeout": 42})
    monkeypatch.setenv("GPT_IMAGE_EDIT_CONFIG", str(other))
    settings = load_settings()
    assert (settings.api_key, settings.timeout, settings.key_source) == (KEY, 42.0,
                                                                         "settings file")


def test_file_overrides_defaults(private_config):
    write_settings(config_path(), {"api_key": KEY, "base_url": "https://proxy.example/v1/",
                                   "timeout": 120})
    settings = load_settings()
    assert settings.api_key == KEY
    assert settings.key_source == "settings file"
    assert settings.base_url == "https://proxy.example/v1"  # trailing slash dropped
    assert settings.timeout == 120.0


def test_environment_overrides_file(monkeypatch):
    write_settings(config_path(), {"api_key": "from-the-file", "base_url": "https://file/v1",
                                   "timeout": 120})
    monkeypatch.setenv("GPT_IMAGE_EDIT_API_KEY", KEY)
    monkeypatch.setenv("GPT_IMAGE_EDIT_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("GPT_IMAGE_EDIT_TIMEOUT", "7.5")
    settings = load_settings()
    assert settings.api_key == KEY
    assert settings.key_source == "GPT_IMAGE_EDIT_API_KEY"
    assert settings.base_url == "http://127.0.0.1:9/v1"
    assert settings.timeout == 7.5


def test_wisdom_gate_key_is_the_fallback_variable(monkeypatch):
    write_settings(config_path(), {"api_key": "from-the-file"})
    monkeypatch.setenv("WISDOM_GATE_KEY", "wisdom-key-123456")
    assert load_settings().api_key == "wisdom-key-123456"
    assert load_settings().key_source == "WISDOM_GATE_KEY"
    monkeypatch.setenv("GPT_IMAGE_EDIT_API_KEY", KEY)
    assert load_settings().api_key == KEY


def test_blank_environment_variable_counts_as_unset(monkeypatch):
    write_settings(config_path(), {"api_key": KEY})
    monkeypatch.setenv("GPT_IMAGE_EDIT_API_KEY", "  ")
    monkeypatch.setenv("GPT_IMAGE_EDIT_TIMEOUT", "")
    settings = load_settings()
    assert (settings.api_key, settings.timeout) == (KEY, DEFAULT_TIMEOUT)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf"])
def test_timeout_from_environment_must_be_a_positive_number(monkeypatch, value):
    monkeypatch.setenv("GPT_IMAGE_EDIT_TIMEOUT", value)
    with pytest.raises(BadInputError) as raised:
        load_settings()
    assert str(raised.value).startswith(f"GPT_IMAGE_EDIT_TIMEOUT ({value!r}) is not a positive "
                                        "number of seconds")
    assert raised.value.exit_code == 2


def test_timeout_in_file_must_be_a_positive_number():
    write_settings(config_path(), {"timeout": "soon"})
    with pytest.raises(BadInputError, match="The timeout in .*settings.json is not a positive"):
        load_settings()


def test_file_that_is_not_json_is_named_in_the_error(monkeypatch):
    monkeypatch.setenv("GPT_IMAGE_EDIT_SETTINGS_PLACE", "Filters > AI > GPT Image Settings...")
    path = config_path()
    path.parent.mkdir(parents=True)
    path.write_text("{ api_key: nope", encoding="utf-8")
    with pytest.raises(BadInputError) as raised:
        load_settings()
    assert str(raised.value) == (
        f"The settings file {path} is not valid JSON: save the settings again in "
        "Filters > AI > GPT Image Settings... or delete the file.")
    assert raised.value.kind == "bad_input"


def test_saved_file_is_private_even_with_a_permissive_umask(private_config):
    old_umask = os.umask(0)
    try:
        path = save_settings({"api_key": KEY})
    finally:
        os.umask(old_umask)
    assert path == config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text(encoding="utf-8")) == {"api_key": KEY}
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]  # no temp left


def test_saving_merges_and_none_removes():
    save_settings({"api_key": KEY, "timeout": 90})
    save_settings({"base_url": "https://other.example/v1"})
    assert json.loads(config_path().read_text(encoding="utf-8")) == {
        "api_key": KEY, "timeout": 90.0, "base_url": "https://other.example/v1"}
    save_settings({"api_key": None})
    settings = load_settings()
    assert settings.api_key is None
    assert (settings.timeout, settings.base_url) == (90.0, "https://other.example/v1")


def test_saving_replaces_a_broken_file():
    path = config_path()
    path.parent.mkdir(parents=True)
    path.write_text("not json", encoding="utf-8")
    save_settings({"api_key": KEY})
    assert load_settings().api_key == KEY


def test_saving_refuses_a_bad_timeout_and_keeps_the_file():
    save_settings({"timeout": 60})
    with pytest.raises(BadInputError, match="The timeout is not a positive number"):
        save_settings({"timeout": -1})
    assert load_settings().timeout == 60.0


def test_repr_never_shows_the_key(monkeypatch):
    monkeypatch.setenv("GPT_IMAGE_EDIT_API_KEY", KEY)
    settings = load_settings()
    assert KEY not in repr(settings)
    assert KEY not in str(settings)
    assert "GPT_IMAGE_EDIT_API_KEY" in repr(settings)


def test_log_file_sits_beside_the_settings_and_is_redacted(monkeypatch):
    monkeypatch.setenv("GPT_IMAGE_EDIT_API_KEY", KEY)
    path = logs.setup_logging()
    assert path == config_path().with_name("gpt-image-edit.log")
    logger = logging.getLogger("gpt_image_edit.test")
    logger.info("sent %s with Authorization: Bearer %s", "a picture", KEY)
    logger.warning("other token: Bearer abc.DEF-123")
    try:
        raise RuntimeError(f"failed with {KEY}")
    except RuntimeError:
        logger.exception("trouble")
    text = path.read_text(encoding="utf-8")
    assert "sent a picture with Authorization: Bearer [redacted]" in text
    assert "Bearer [redacted]" in text and "abc.DEF-123" not in text
    assert "RuntimeError: failed with [redacted]" in text
    assert KEY not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", ["{broken", '{"timeout": "soon"}', '{"api_key": 42}'])
def test_a_broken_file_is_a_problem_to_show_not_a_locked_dialog(private_config, content):
    """The settings dialog reads this summary before it opens: it must open to fix the file."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    summary = settings_summary()
    assert str(path) in summary["problem"]
    assert summary["base_url"] == DEFAULT_BASE_URL and summary["timeout"] == DEFAULT_TIMEOUT
    assert summary["api_key_available"] is False
    save_settings({"api_key": "sk-new", "timeout": 300})  # what the dialog saves
    repaired = settings_summary()
    assert repaired["problem"] is None and repaired["api_key_available"] is True
