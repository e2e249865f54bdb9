"""12-factor configuration: every key from the environment, flags over env over file over
defaults, each value's origin, every problem at once, and the CLI around it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from okrsync.config import load_settings, set_flags
from okrsync.config_sources import ConfigProblems
from okrsync.errors import ConfigError
from tests.helpers import run_cli

TEXT = """\
[signals]
stale_days = 10

[[connectors]]
name = "jira-cloud"
type = "jira"
base_url = "https://acme.atlassian.net"
scope = ["ENG"]
token_env = "OKRSYNC_TEST_ENV_JIRA_TOKEN"
email_env = "OKRSYNC_TEST_ENV_JIRA_EMAIL"

[[connectors]]
name = "gh"
type = "github"
base_url = "https://api.github.com"
scope = ["octocat/Hello-World"]
token_env = "OKRSYNC_TEST_ENV_GH_TOKEN"
"""
# Lines in TEXT: stale_days 2, jira [[connectors]] 4, its token_env 9, email_env 10,
# gh [[connectors]] 12, its token_env 17.


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OKRSYNC_ variable of the developer's shell, and no flag, leaks into a test."""
    for var in list(os.environ):
        if var.startswith("OKRSYNC_"):
            monkeypatch.delenv(var)
    yield
    set_flags({})


def cfg(tmp_path: Path, text: str = TEXT) -> Path:
    path = tmp_path / "okrsync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path | None) -> str:
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    return str(exc.value)


def test_section_keys_come_from_the_environment_as_toml_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OKRSYNC_<SECTION>__<KEY> sets that key; numbers, booleans and arrays are TOML values."""
    monkeypatch.setenv("OKRSYNC_SIGNALS__STALE_DAYS", "7")
    monkeypatch.setenv("OKRSYNC_SERVICE__PORT", "9000")
    monkeypatch.setenv("OKRSYNC_SERVICE__ENABLED", "false")
    monkeypatch.setenv("OKRSYNC_MAPPINGS__PATHS", '["okrs", "more"]')
    monkeypatch.setenv("OKRSYNC_STORE__URL", "postgresql+psycopg://okrsync@db/okrsync")
    s = load_settings(cfg(tmp_path))
    assert s.signals.stale_days == 7  # the file's 10 is overridden
    assert s.service.port == 9000
    assert s.service.enabled is False
    assert s.mappings.paths == ["okrs", "more"]
    assert s.store_url() == "postgresql+psycopg://okrsync@db/okrsync"


def test_connector_keys_come_from_the_environment_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jira-cloud` reads OKRSYNC_CONNECTORS__JIRA_CLOUD__*; an inline table is a status_map."""
    monkeypatch.setenv("OKRSYNC_CONNECTORS__JIRA_CLOUD__STATUS_MAP", '{ "QA" = "in_progress" }')
    monkeypatch.setenv("OKRSYNC_CONNECTORS__JIRA_CLOUD__SCHEDULE", "every 5m")
    monkeypatch.setenv("OKRSYNC_CONNECTORS__GH__ENABLED", "false")
    s = load_settings(cfg(tmp_path))
    jira = s.connector("jira-cloud")
    assert jira.status_map == {"QA": "in_progress"}
    assert jira.schedule == "every 5m"
    assert s.connector("gh").enabled is False


def test_a_text_key_keeps_its_text_and_empty_unsets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text key given digits stays text; an empty value unsets a key that may be unset."""
    monkeypatch.setenv("OKRSYNC_CONNECTORS__JIRA_CLOUD__ESTIMATE_FIELD", "10016")
    monkeypatch.setenv("OKRSYNC_LOGGING__FILE", "")
    text = TEXT.replace("[signals]", '[logging]\nfile = "okrsync.log"\n\n[signals]')
    s = load_settings(cfg(tmp_path, text))
    assert s.connector("jira-cloud").estimate_field == "10016"
    assert s.logging.file is None


def test_precedence_is_flag_then_environment_then_file_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each key takes the highest source that sets it, and records which one that was."""
    text = TEXT.replace("[signals]", '[logging]\nlevel = "warning"\n\n[signals]')
    path = cfg(tmp_path, text)
    monkeypatch.setenv("OKRSYNC_LOGGING__LEVEL", "error")
    assert load_settings(path).logging.level == "error"
    set_flags({"logging.level": ("--log-level", "debug")})
    s = load_settings(path)
    assert s.logging.level == "debug"
    assert str(s.origin("logging", "level")) == "flag --log-level"
    assert str(s.origin("signals", "stale_days")) == f"file {path}:5"
    assert str(s.origin("signals", "at_risk_share")) == "default"
    monkeypatch.setenv("OKRSYNC_CONNECTORS__GH__SCHEDULE", "every 1h")
    s = load_settings(path)
    assert str(s.origin("connectors", "gh", "schedule")) == "env OKRSYNC_CONNECTORS__GH__SCHEDULE"
    assert str(s.origin("connectors", "gh", "token_env")) == f"file {path}:20"


def test_the_environment_applies_without_a_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no file at all, the defaults and the environment make the configuration."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OKRSYNC_SIGNALS__STALE_DAYS", "3")
    s = load_settings()
    assert s.signals.stale_days == 3
    assert s.config_file is None


def test_an_unknown_variable_is_refused_with_did_you_mean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OKRSYNC_STORE__URLL names no key: the error names the variable and the right one."""
    monkeypatch.setenv("OKRSYNC_STORE__URLL", "sqlite:///x.db")
    msg = refused(cfg(tmp_path))
    assert "environment variable OKRSYNC_STORE__URLL" in msg
    assert "did you mean OKRSYNC_STORE__URL?" in msg


def test_an_unknown_connector_key_or_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt connector key gets the right variable; an unknown name lists the known."""
    monkeypatch.setenv("OKRSYNC_CONNECTORS__GH__SCHEDUEL", "every 1h")
    monkeypatch.setenv("OKRSYNC_CONNECTORS__GITLAB__SCHEDULE", "every 1h")
    msg = refused(cfg(tmp_path))
    assert "did you mean OKRSYNC_CONNECTORS__GH__SCHEDULE?" in msg
    assert "OKRSYNC_CONNECTORS__GITLAB__SCHEDULE: no connector whose name reads GITLAB" in msg
    assert "JIRA_CLOUD, GH" in msg


def test_a_bad_value_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error is at the variable, not at the file line the variable overrode."""
    monkeypatch.setenv("OKRSYNC_SIGNALS__STALE_DAYS", "0")
    monkeypatch.setenv("OKRSYNC_CONNECTORS__JIRA_CLOUD__STATUS_MAP", '{ "QA" = "in_progres" }')
    msg = refused(cfg(tmp_path))
    assert "environment variable OKRSYNC_SIGNALS__STALE_DAYS: key 'signals.stale_days'" in msg
    assert "environment variable OKRSYNC_CONNECTORS__JIRA_CLOUD__STATUS_MAP" in msg
    assert "okrsync.toml:2" not in msg


def test_token_variables_without_double_underscore_are_not_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OKRSYNC_JIRA_TOKEN (a token variable) is not taken for a misspelt key."""
    monkeypatch.setenv("OKRSYNC_JIRA_TOKEN", "secret")
    assert load_settings(cfg(tmp_path)).signals.stale_days == 10


def test_the_old_store_url_variable_works_and_the_new_one_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OKRSYNC_STORE_URL still sets store.url; OKRSYNC_STORE__URL wins when both are set."""
    monkeypatch.setenv("OKRSYNC_STORE_URL", "sqlite:////srv/old.db")
    s = load_settings(cfg(tmp_path))
    assert s.store_url() == "sqlite:////srv/old.db"
    assert str(s.origin("store", "url")) == "env OKRSYNC_STORE_URL"
    monkeypatch.setenv("OKRSYNC_STORE__URL", "sqlite:////srv/new.db")
    assert load_settings(cfg(tmp_path)).store_url() == "sqlite:////srv/new.db"


def test_every_problem_of_file_and_environment_is_reported_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three typos in the file and a bad variable: one error lists all four, each placed."""
    text = TEXT.replace("stale_days = 10", "stale_dayz = 10").replace(
        'base_url = "https://api.github.com"', 'base_url = "api.github.com"'
    )
    text = text.replace('scope = ["ENG"]', 'scope = ["ENG"]\nschedul = "every 5m"')
    monkeypatch.setenv("OKRSYNC_SERVICE__PORT", "70000")
    with pytest.raises(ConfigProblems) as exc:
        load_settings(cfg(tmp_path, text))
    lines = str(exc.value).splitlines()
    assert lines[0].startswith("4 problems in the configuration")
    path = tmp_path / "okrsync.toml"
    assert any(f"{path}:2: unknown key 'signals.stale_dayz'" in x for x in lines)
    assert any(f"{path}:9: unknown key 'connectors.0.schedul'" in x for x in lines)
    assert any(f"{path}:16: key 'connectors.1.base_url'" in x for x in lines)
    assert any("environment variable OKRSYNC_SERVICE__PORT" in x for x in lines)


def test_every_missing_credential_is_named_at_once(tmp_path: Path) -> None:
    """Each enabled connector's unreadable credential is named with its line, all together."""
    with pytest.raises(ConfigProblems) as exc:
        load_settings(cfg(tmp_path)).check_credentials()
    msg = str(exc.value)
    jira_token = "environment variable OKRSYNC_TEST_ENV_JIRA_TOKEN"
    assert f"okrsync.toml:9: connector 'jira-cloud': {jira_token}" in msg
    assert "okrsync.toml:10: connector 'jira-cloud'" in msg
    assert "okrsync.toml:17: connector 'gh': environment variable OKRSYNC_TEST_ENV_GH_TOKEN" in msg


# --- through the command line ----------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    return {**env, **extra}


def test_config_show_prints_origins_and_masks_secrets(tmp_path: Path) -> None:
    """Each key with its origin; the store password and token values are never shown."""
    cfg(tmp_path)
    env = cli_env(
        OKRSYNC_STORE__URL="postgresql+psycopg://okrsync:hunter2@db/okrsync",
        OKRSYNC_TEST_ENV_GH_TOKEN="ghp_supersecretvalue",
        OKRSYNC_CONNECTORS__GH__SCHEDULE="every 1h",
    )
    res = run_cli("config", "show", cwd=tmp_path, env=env)
    assert res.code == 0, res.stderr
    assert "hunter2" not in res.stdout
    assert "ghp_supersecretvalue" not in res.stdout
    assert 'url = "postgresql+psycopg://okrsync:***@db/okrsync"' in res.stdout
    assert "# env OKRSYNC_STORE__URL" in res.stdout
    assert "# env OKRSYNC_CONNECTORS__GH__SCHEDULE" in res.stdout
    assert "# file okrsync.toml:2" in res.stdout
    doc = json.loads(run_cli("config", "show", "--json", cwd=tmp_path, env=env).stdout)
    assert doc["store"]["url"] == {
        "value": "postgresql+psycopg://okrsync:***@db/okrsync",
        "source": "env OKRSYNC_STORE__URL",
    }
    assert doc["signals"]["stale_days"]["source"].endswith("okrsync.toml:2")
    assert doc["signals"]["at_risk_share"] == {"value": 0.15, "source": "default"}
    gh = doc["connectors"][1]
    assert gh["token_env"]["value"] == "OKRSYNC_TEST_ENV_GH_TOKEN"
    assert gh["schedule"]["source"] == "env OKRSYNC_CONNECTORS__GH__SCHEDULE"


def test_config_show_lists_each_notify_channel_with_its_origins(tmp_path: Path) -> None:
    """Each [[notify]] channel is shown, its keys' origins at their lines; the webhook URL is
    named by its variable, never shown (it is a secret)."""
    channel = '\n[[notify]]\nname = "ops"\nkind = "slack"\nurl_env = "OKRSYNC_TEST_SLACK"\n'
    cfg(tmp_path, TEXT + channel)
    env = cli_env(OKRSYNC_TEST_SLACK="https://hooks.slack.com/services/T0/B0/verysecret")
    res = run_cli("config", "show", cwd=tmp_path, env=env)
    assert res.code == 0, res.stderr
    assert "[[notify]]" in res.stdout
    assert "verysecret" not in res.stdout
    assert 'url_env = "OKRSYNC_TEST_SLACK"' in res.stdout
    doc = json.loads(run_cli("config", "show", "--json", cwd=tmp_path, env=env).stdout)
    (ops,) = doc["notify"]
    assert ops["name"] == {"value": "ops", "source": "file okrsync.toml:20"}
    assert ops["url_env"]["source"] == "file okrsync.toml:22"
    assert ops["enabled"] == {"value": True, "source": "default"}


def test_log_level_flag_wins_over_environment_and_file(tmp_path: Path) -> None:
    """`--log-level` is a root option of every command and beats OKRSYNC_LOGGING__LEVEL."""
    cfg(tmp_path)
    env = cli_env(OKRSYNC_LOGGING__LEVEL="error")
    res = run_cli("--log-level", "DEBUG", "config", "show", "--json", cwd=tmp_path, env=env)
    assert res.code == 0, res.stderr
    level = json.loads(res.stdout)["logging"]["level"]
    assert level == {"value": "debug", "source": "flag --log-level"}
    bad = run_cli("--log-level", "loud", "config", "show", cwd=tmp_path, env=env)
    assert bad.code == 2
    assert "--log-level" in bad.stderr


def test_a_three_typo_config_shows_all_three_with_exit_2(tmp_path: Path) -> None:
    """One run names every problem with file:line; no traceback."""
    text = TEXT.replace("stale_days = 10", "stale_dayz = 10").replace('"ENG"', '"eng"')
    text = text.replace('scope = ["octocat/Hello-World"]', 'scope = ["octocat"]')
    cfg(tmp_path, text)
    res = run_cli("config", "show", cwd=tmp_path, env=cli_env())
    assert res.code == 2
    assert "Traceback" not in res.stderr
    assert "3 problems" in res.stderr
    for line in (":2:", ":8:", ":16:"):
        assert line in res.stderr


def test_run_refuses_to_start_naming_every_missing_credential(tmp_path: Path) -> None:
    """`okrsync run` exits 2 before starting, naming each connector and its variable."""
    cfg(tmp_path, "[service]\nport = 0\n\n" + TEXT)
    res = run_cli("run", cwd=tmp_path, env=cli_env(), timeout=30)
    assert res.code == 2
    for name in ("OKRSYNC_TEST_ENV_JIRA_TOKEN", "OKRSYNC_TEST_ENV_JIRA_EMAIL"):
        assert f"connector 'jira-cloud': environment variable {name}" in res.stderr
    assert "connector 'gh': environment variable OKRSYNC_TEST_ENV_GH_TOKEN" in res.stderr
    assert "service.started" not in res.stdout
