"""Config values are checked at load with file:line and the fix; tokens only when needed."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from structlog.testing import capture_logs

from okrsync.config import ConnectorConfig, load_settings, scope_problem
from okrsync.connector import GROUP, installed_types
from okrsync.errors import ConfigError
from okrsync.sandbox import Sandbox
from okrsync.service import trigger_for

TOKEN_ENV = "OKRSYNC_TEST_CONFIG_TOKEN"
CONNECTOR = """\
[store]
url = "sqlite:///okrsync.db"

[[connectors]]
name = "gh"
type = "github"
base_url = "https://api.github.com"
scope = ["octocat/Hello-World"]
token_env = "OKRSYNC_TEST_CONFIG_TOKEN"
"""
# Line numbers in CONNECTOR: [[connectors]] 4, name 5, type 6, scope 8, token_env 9; a key
# appended by `config(extra=...)` lands on line 10.


def config(tmp_path: Path, text: str = CONNECTOR, extra: str = "", **swap: str) -> Path:
    for old, new in swap.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "okrsync.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    return str(exc.value)


@pytest.fixture(autouse=True)
def _no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("99 99 99 99 99", "cron field minute '99'"),
        ("0 99 * * *", "cron field hour '99'"),
        ("*/0 * * * *", "Increment must be higher than 0"),
        ("0 0 L * *", "cron field day 'L'"),
        ("0 9 * * 8", "crontab weekdays are 0-7"),
        ("0 9 * * 5-2", "crontab weekdays are 0-7"),
        ("0 0 30 2 *", "never fires"),
        ("every 0s", "between 1s and 366d"),
        ("every 999999999999d", "between 1s and 366d"),
        ("every 15 minutes", "use 'every <n><s|m|h|d>'"),
    ],
)
def test_schedules_the_scheduler_cannot_run_are_refused_at_their_line(
    tmp_path: Path, schedule: str, says: str
) -> None:
    """A cron field out of range, a weekday past 7, a date that never comes or a zero interval."""
    msg = refused(config(tmp_path, extra=f"schedule = {_toml(schedule)}\n"))
    assert msg.startswith(f"{tmp_path / 'okrsync.toml'}:10: key 'connectors.0.schedule': ")
    assert says in msg


def test_valid_schedules_load(tmp_path: Path) -> None:
    """Cron lines with names, steps and ranges and intervals up to 366 days load as before."""
    for schedule in (
        "*/10 * * * *",
        "0 9 * * mon-fri",
        "0 */2 1 jan,jul *",
        "every 366d",
        "0 9 * * 1-5",
    ):
        settings = load_settings(config(tmp_path, extra=f'schedule = "{schedule}"\njitter_s = 0\n'))
        assert settings.connectors[0].schedule == schedule


@pytest.mark.parametrize(
    ("dow", "days"),
    [
        ("1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0", {"Sun"}),
        ("7", {"Sun"}),
        ("*/2", {"Sun", "Tue", "Thu", "Sat"}),
        ("1-5/2", {"Mon", "Wed", "Fri"}),
        ("5-7", {"Fri", "Sat", "Sun"}),
        ("sat,sun", {"Sat", "Sun"}),
    ],
)
def test_cron_weekdays_keep_their_crontab_meaning(dow: str, days: set[str]) -> None:
    """`1-5` runs Monday to Friday as in crontab (APScheduler alone counts 0 as Monday)."""
    cc = ConnectorConfig(
        name="gh",
        type="github",
        base_url="http://127.0.0.1:9",
        scope=["o/r"],
        token_env="T",
        schedule=f"0 9 * * {dow}",
        jitter_s=0,
    )
    trigger = trigger_for(cc)
    when, seen = datetime(2026, 12, 7, tzinfo=UTC), set()  # a Monday
    for _ in range(14):
        fire = trigger.get_next_fire_time(None, when)
        assert fire is not None
        seen.add(fire.strftime("%a"))
        when = fire + timedelta(hours=1)
    assert seen == days


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("inf", "Input should be a finite number"),
        ("nan", "Input should be a finite number"),
        ("1e300", "less than or equal to 3600"),
        ("3601", "less than or equal to 3600"),
        ("-1", "greater than or equal to 0"),
    ],
)
def test_jitter_is_finite_and_at_most_an_hour(tmp_path: Path, value: str, says: str) -> None:
    """`jitter_s = inf` crashed the daemon and `1e300` made a connector that never runs."""
    msg = refused(config(tmp_path, extra=f"jitter_s = {value}\n"))
    assert msg.startswith(f"{tmp_path / 'okrsync.toml'}:10: key 'connectors.0.jitter_s': ")
    assert says in msg


def test_jitter_longer_than_the_interval_is_refused(tmp_path: Path) -> None:
    """A jitter past the interval would push every run beyond the next one."""
    msg = refused(config(tmp_path, extra='schedule = "every 5s"\njitter_s = 10\n'))
    assert msg.startswith(f"{tmp_path / 'okrsync.toml'}:11: key 'connectors.0.jitter_s': ")
    assert "jitter_s = 10 is longer than the schedule's interval (5 s)" in msg
    assert "at most 5" in msg
    ok = load_settings(config(tmp_path, extra='schedule = "every 5s"\njitter_s = 5\n'))
    assert ok.connectors[0].jitter_s == 5


def test_unset_jitter_never_exceeds_a_short_interval(tmp_path: Path) -> None:
    """A config that worked before (`every 5s`, no jitter_s) still loads: 5 s of jitter."""
    settings = load_settings(config(tmp_path, extra='schedule = "every 5s"\n'))
    assert settings.connectors[0].jitter_s == 5
    assert load_settings(config(tmp_path)).connectors[0].jitter_s == 10


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("[[connectors]]", "timeout_s", "inf"),
        ("[signals]", "divergence_threshold", "nan"),
        ("[signals]", "at_risk_share", "inf"),
        ("[signals]", "outcome_at_risk_margin", "nan"),
        ("[service]", "shutdown_timeout_s", "inf"),
    ],
)
def test_every_float_in_the_config_is_finite(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    """inf and nan are refused in timeouts and thresholds too, at their line."""
    if section == "[[connectors]]":
        path = config(tmp_path, extra=f"{key} = {value}\n")
        where, line = f"connectors.0.{key}", 10
    else:
        path = config(tmp_path, text=f"{section}\n{key} = {value}\n")
        where, line = f"{section.strip('[]')}.{key}", 2
    msg = refused(path)
    assert msg == f"{path}:{line}: key '{where}': Input should be a finite number"


def test_unknown_connector_type_is_a_config_error_with_did_you_mean(tmp_path: Path) -> None:
    """Not a failed run: the line, the nearest installed type and the list of installed ones."""
    msg = refused(config(tmp_path, **{'type = "github"': 'type = "gihtub"'}))
    assert msg == (
        f"{tmp_path / 'okrsync.toml'}:6: connector 'gh': unknown connector type 'gihtub'; "
        f"did you mean 'github'? installed types: {', '.join(installed_types())}"
    )
    assert {"jira", "asana", "github"} <= set(installed_types())


@pytest.mark.parametrize(
    "scope",
    [
        "o/r/../../../admin/x",
        "o/..",
        "o/.",
        "../r",
        "octocat",
        "o/r/issues",
        "https://github.com/o/r",
        "o/r?per_page=1",
        "o/r#x",
        "o/r%2F..",
        "-o/r",
        "o/r\n",
        " o/r",
    ],
)
def test_github_scope_is_one_owner_slash_repo(tmp_path: Path, scope: str) -> None:
    """A scope is pasted into the URL path: only GitHub's owner/repo characters get there."""
    text = CONNECTOR.replace('"octocat/Hello-World"', f'"octocat/web", {_toml(scope)}')
    msg = refused(config(tmp_path, text=text))
    assert msg.startswith(f"{tmp_path / 'okrsync.toml'}:8: connector 'gh': scope {scope!r} ")
    assert 'is not a GitHub "owner/repo"' in msg


def test_jira_scope_is_a_project_key_with_an_upper_case_hint(tmp_path: Path) -> None:
    """Jira keys are capital letters, digits and _, starting with a letter."""
    swap = {'type = "github"': 'type = "jira"', '"octocat/Hello-World"': '"WEB", "mob"'}
    msg = refused(config(tmp_path, **swap))
    assert msg.startswith(f"{tmp_path / 'okrsync.toml'}:8: connector 'gh': scope 'mob' ")
    assert msg.endswith("did you mean 'MOB'?")
    for bad in ("W", "1WEB", "WEB-1", "WEB OR project = X", 'WEB"'):
        assert scope_problem("jira", bad) is not None, bad


def test_asana_scope_is_a_gid(tmp_path: Path) -> None:
    """Asana project gids are digits only."""
    swap = {'type = "github"': 'type = "asana"', '"octocat/Hello-World"': '"Growth"'}
    msg = refused(config(tmp_path, **swap))
    assert msg.startswith(f"{tmp_path / 'okrsync.toml'}:8: connector 'gh': scope 'Growth' ")
    assert "is not an Asana project gid" in msg
    assert scope_problem("asana", "12010000000000/1") is not None


def test_real_scopes_and_the_sandbox_scopes_are_accepted() -> None:
    """Every scope the sandbox, the tests' fixtures and the docs use keeps loading."""
    with Sandbox(seed=3, sizes={"jira": 5, "jira_dc": 5, "asana": 5, "github": 5}) as sb:
        scopes = {kind: sb.scopes(kind) for kind in ("jira", "jira_dc", "asana", "github")}
    used = {
        "jira": [*scopes["jira"], *scopes["jira_dc"], "TESTKEY13", "WEB", "MOB", "MY_KEY2"],
        "asana": [*scopes["asana"], "1200357126478233"],
        "github": [*scopes["github"], "octocat/Hello-World", "o/r", "acme/.github", "a_b/c.d-e"],
    }
    for kind, values in used.items():
        assert [s for s in values if scope_problem(kind, s)] == [], kind
    assert scope_problem("plugin-of-someone-else", "anything/../at all") is None


def test_connector_name_is_a_strict_slug(tmp_path: Path) -> None:
    """No trailing newline, capitals or spaces in a connector's name."""
    for bad in ('"gh\\n"', '"GH"', '"g h"', '"-gh"'):
        msg = refused(config(tmp_path, **{'name = "gh"': f"name = {bad}"}))
        assert msg.startswith(f"{tmp_path / 'okrsync.toml'}:5: key 'connectors.0.name': must be ")
    with pytest.raises(ValueError, match="must be lowercase"):
        ConnectorConfig(name="gh\n", type="github", base_url="https://x", scope=["o/r"])


def test_loading_needs_no_credentials(tmp_path: Path) -> None:
    """Report, export and mapping commands load the config on a machine without tokens."""
    settings = load_settings(config(tmp_path))
    assert settings.connectors[0].token_env == TOKEN_ENV
    assert TOKEN_ENV not in os.environ


def test_unset_token_env_is_refused_at_its_line(tmp_path: Path) -> None:
    """`check_credentials` (sync, run) names the variable, its line and the fix."""
    settings = load_settings(config(tmp_path))
    with pytest.raises(ConfigError) as exc:
        settings.check_credentials()
    assert str(exc.value) == (
        f"{tmp_path / 'okrsync.toml'}:9: connector 'gh': environment variable {TOKEN_ENV} "
        "(named by token_env) is not set; export it before starting okrsync"
    )


def test_unset_email_env_is_refused_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jira Cloud's e-mail variable (a key of the Jira plug-in) is a credential too."""
    monkeypatch.setenv(TOKEN_ENV, "t0ken-value")
    swap = {'type = "github"': 'type = "jira"', '"octocat/Hello-World"': '"WEB"'}
    path = config(tmp_path, extra='email_env = "OKRSYNC_TEST_UNSET_EMAIL"\n', **swap)
    with pytest.raises(ConfigError, match=r"okrsync.toml:10: connector 'gh': environment variable"):
        load_settings(path).check_credentials()


def test_missing_or_empty_token_file_is_refused_at_its_line(tmp_path: Path) -> None:
    """A token file that cannot be read, or holds nothing, is a config error with file:line."""
    swap = {f'token_env = "{TOKEN_ENV}"': 'token_file = "secrets/gh_token"'}
    settings = load_settings(config(tmp_path, **swap))
    with pytest.raises(ConfigError) as exc:
        settings.check_credentials()
    assert str(exc.value).startswith(
        f"{tmp_path / 'okrsync.toml'}:9: connector 'gh': cannot read token_file "
        f"{tmp_path / 'secrets' / 'gh_token'}: No such file or directory; check the path"
    )
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "gh_token").write_text("\n")
    with pytest.raises(ConfigError, match=r"okrsync.toml:9: connector 'gh': token_file .* empty"):
        settings.check_credentials()


def test_a_connector_without_credentials_is_refused_at_its_section(tmp_path: Path) -> None:
    """Neither token_env nor token_file: the [[connectors]] line and both ways to fix it."""
    settings = load_settings(config(tmp_path, **{f'token_env = "{TOKEN_ENV}"\n': ""}))
    with pytest.raises(ConfigError, match=r"okrsync.toml:4: connector 'gh': no credentials; set"):
        settings.check_credentials()


def test_only_enabled_or_named_connectors_need_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disabled connector may lack its token; `--connector NAME` checks just that one."""
    monkeypatch.setenv(TOKEN_ENV, "t0ken-value")
    second = CONNECTOR.split("\n\n", 1)[1].replace('"gh"', '"off"').replace(TOKEN_ENV, "UNSET_X")
    settings = load_settings(config(tmp_path, extra=f"\n{second}enabled = false\n"))
    settings.check_credentials()
    settings.check_credentials("gh")
    with pytest.raises(ConfigError, match=r"okrsync.toml:16: connector 'off': environment"):
        settings.check_credentials("off")


def test_relative_token_file_is_read_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like the store and the mappings, not from wherever okrsync was started."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "gh_token").write_text("t0ken-from-etc\n")
    (folder / "gh_token").chmod(0o600)
    (tmp_path / "gh_token").write_text("t0ken-from-cwd\n")
    monkeypatch.chdir(tmp_path)
    swap = {f'token_env = "{TOKEN_ENV}"': 'token_file = "gh_token"'}
    settings = load_settings(config(folder, **swap))
    settings.check_credentials()
    assert settings.connectors[0].token_file == str(folder.resolve() / "gh_token")
    assert settings.connectors[0].secret() == "t0ken-from-etc"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_token_file_others_can_read_gets_one_warning(tmp_path: Path, mode: int) -> None:
    """`config.token_file_readable` names the file and `chmod 600`; the token is not logged."""
    token = tmp_path / "gh_token"
    token.write_text("t0ken-shared\n")
    token.chmod(mode)
    swap = {f'token_env = "{TOKEN_ENV}"': 'token_file = "gh_token"'}
    settings = load_settings(config(tmp_path, **swap))
    with capture_logs() as logs:
        settings.check_credentials()
    warned = [e for e in logs if e["event"] == "config.token_file_readable"]
    assert len(warned) == 1
    assert warned[0]["log_level"] == "warning"
    assert warned[0]["file"] == str(token)
    assert warned[0]["hint"] == f"chmod 600 {token}"
    assert "t0ken-shared" not in repr(logs)


def test_a_private_token_file_gets_no_warning(tmp_path: Path) -> None:
    """0600 is the shape we ask for: nothing to say."""
    token = tmp_path / "gh_token"
    token.write_text("t0ken-private\n")
    token.chmod(0o600)
    swap = {f'token_env = "{TOKEN_ENV}"': 'token_file = "gh_token"'}
    with capture_logs() as logs:
        load_settings(config(tmp_path, **swap)).check_credentials()
    assert [e for e in logs if e["event"] == "config.token_file_readable"] == []


def test_store_url_environment_override_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OKRSYNC_STORE_URL still wins over the file's store.url."""
    monkeypatch.setenv("OKRSYNC_STORE_URL", "sqlite:////var/lib/okrsync/other.db")
    assert load_settings(config(tmp_path)).store_url() == "sqlite:////var/lib/okrsync/other.db"


def test_every_problem_of_the_file_is_reported_at_once(tmp_path: Path) -> None:
    """A bad store value, a misspelt key, a bad scope and a bad schedule: one error, four lines."""
    path = config(
        tmp_path,
        extra='schedule = "every 0s"\nregoin = "eu"\n',
        **{
            'url = "sqlite:///okrsync.db"': 'url = "sqlite:///okrsync.db"\nbusy_timeout_ms = -1',
            '"octocat/Hello-World"': '"octocat"',
        },
    )
    msg = refused(path)
    assert msg.startswith("4 problems in the configuration")
    assert f"{path}:3: key 'store.busy_timeout_ms'" in msg
    assert f"{path}:11: key 'connectors.0.schedule'" in msg
    assert f"{path}:12: unknown key 'connectors.0.regoin'" in msg
    assert f"{path}:9: connector 'gh'" in msg


def test_a_duplicate_name_and_another_problem_are_reported_together(tmp_path: Path) -> None:
    """The duplicate connector name is not the only thing said when more is wrong."""
    second = CONNECTOR.split("\n\n", 1)[1].replace('"octocat/Hello-World"', '"octocat"')
    msg = refused(config(tmp_path, extra="\n" + second))
    assert "connector name 'gh' is used twice" in msg
    assert "2 problems" in msg


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# --- plug-ins bring their own settings -------------------------------------------------------


class AcmeConfig(ConnectorConfig):
    """A third-party tracker's settings: one key of its own and its own scope rule."""

    region: Literal["eu", "us"] = "us"

    @classmethod
    def scope_problem(cls, scope: str) -> str | None:
        return None if scope.startswith("acme-") else f"scope {scope!r} must start with acme-"


class AcmeConnector:
    """Registered as `type = "acme"`; only its `Config` is read when a config file loads."""

    kind: ClassVar[str] = "acme"
    Config: ClassVar[type[ConnectorConfig]] = AcmeConfig


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `acme` plug-in installed beside the bundled ones (an entry point of this module)."""
    plugin = EntryPoint(name="acme", value=f"{__name__}:AcmeConnector", group=GROUP)

    def with_acme(*, group: str) -> list[EntryPoint]:
        return [*entry_points(group=group), plugin]

    monkeypatch.setattr("okrsync.connector.entry_points", with_acme)


ACME = {'type = "github"': 'type = "acme"', '"octocat/Hello-World"': '"acme-1"'}


def test_a_plugin_adds_keys_without_touching_okrsync(tmp_path: Path, acme: None) -> None:
    """A section is validated by its plug-in's model: its own key loads, with its own checks."""
    settings = load_settings(config(tmp_path, extra='region = "eu"\n', **ACME))
    assert isinstance(settings.connectors[0], AcmeConfig)
    assert settings.connectors[0].region == "eu"
    msg = refused(config(tmp_path, extra='region = "mars"\n', **ACME))
    assert msg.startswith(f"{tmp_path / 'okrsync.toml'}:10: key 'connectors.0.region': ")


def test_a_plugins_misspelt_key_gets_did_you_mean_at_its_line(tmp_path: Path, acme: None) -> None:
    """The did-you-mean draws on the plug-in's own keys."""
    msg = refused(config(tmp_path, extra='regoin = "eu"\n', **ACME))
    assert msg.startswith(
        f"{tmp_path / 'okrsync.toml'}:10: unknown key 'connectors.0.regoin'; did you mean 'region'?"
    )


def test_a_plugins_scope_rule_is_applied_at_the_scope_line(tmp_path: Path, acme: None) -> None:
    """Scopes are checked by the plug-in's `scope_problem`, at the `scope` line."""
    msg = refused(config(tmp_path, **{**ACME, '"acme-1"': '"acme-1", "x"'}))
    assert msg == f"{tmp_path / 'okrsync.toml'}:8: connector 'gh': scope 'x' must start with acme-"
    assert scope_problem("acme", "acme-2") is None


def test_another_trackers_key_is_refused_naming_its_owner(tmp_path: Path) -> None:
    """Jira's `email_env` in a GitHub section: the line, and which connector type takes it."""
    msg = refused(config(tmp_path, extra='email_env = "JIRA_EMAIL"\n'))
    assert msg.startswith(
        f"{tmp_path / 'okrsync.toml'}:10: unknown key 'connectors.0.email_env'; it belongs to "
        "type = 'jira' connectors only: remove it from this section"
    )


def test_jira_keys_are_jira_settings(tmp_path: Path) -> None:
    """`flavor` and `email_env` load in a Jira section, as the Jira plug-in's settings."""
    extra = 'flavor = "server"\nemail_env = "JIRA_EMAIL"\n'
    swap = {'type = "github"': 'type = "jira"', '"octocat/Hello-World"': '"WEB"'}
    cc = load_settings(config(tmp_path, extra=extra, **swap)).connectors[0]
    assert type(cc).__name__ == "JiraConfig"
    assert cc.model_dump(include={"flavor", "email_env"}) == {
        "flavor": "server",
        "email_env": "JIRA_EMAIL",
    }


def test_asanas_old_workspace_key_still_loads(tmp_path: Path) -> None:
    """`workspace` (documented for Asana, never read) is accepted so old files keep loading."""
    swap = {'type = "github"': 'type = "asana"', '"octocat/Hello-World"': '"1200357126478233"'}
    cc = load_settings(config(tmp_path, extra='workspace = "12000"\n', **swap)).connectors[0]
    assert cc.model_dump(include={"workspace"}) == {"workspace": "12000"}
