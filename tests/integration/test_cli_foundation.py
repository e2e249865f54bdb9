"""The CLI as a user runs it: tree sync, check-ins, errors with file:line and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import TREE, CliResult, run_cli, write

CONFIG = """
[store]
url = "sqlite:///data/okrsync.db"

[mappings]
paths = ["okrs"]
"""


def setup(tmp_path: Path, tree: str = TREE) -> Path:
    write(tmp_path / "okrsync.toml", CONFIG)
    write(tmp_path / "okrs" / "main.toml", tree)
    return tmp_path


def test_sync_show_checkin_and_history(tmp_path: Path) -> None:
    """A manager loads the tree, checks in twice and reads the history and progress."""
    cwd = setup(tmp_path)
    r = run_cli("okrs", "sync", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "1 objectives, 2 key results, 1 tactics from 1 file(s): 4 added" in r.stdout
    assert run_cli("okrs", "sync", cwd=cwd).stdout.endswith(
        "0 added, 0 updated, 0 archived, 0 restored\n"
    )
    assert run_cli("checkin", "latency", "--value", "30", cwd=cwd).code == 0
    r = run_cli(
        "checkin",
        "latency",
        "--value",
        "25",
        "--confidence",
        "0.6",
        "--note",
        "after cache",
        cwd=cwd,
    )
    assert r.code == 0
    assert "checked in latency = 25" in r.stdout
    r = run_cli("checkins", "latency", cwd=cwd)
    assert "33%" in r.stdout
    assert "50%" in r.stdout
    assert "after cache" in r.stdout
    r = run_cli("okrs", "show", cwd=cwd)
    assert "latency" in r.stdout
    assert "50%" in r.stdout
    assert "no data" in r.stdout


def test_broken_mapping_file_changes_nothing(tmp_path: Path) -> None:
    """A bad file gives file:line, exit 2, no traceback, and the stored tree stays."""
    cwd = setup(tmp_path)
    assert run_cli("okrs", "sync", cwd=cwd).code == 0
    write(cwd / "okrs" / "main.toml", TREE.replace("target = 12", 'target = "twelve"'))
    r = run_cli("okrs", "sync", cwd=cwd)
    assert r.code == 2
    assert f"{Path('okrs') / 'main.toml'}:13: 'target' must be a number" in r.stderr.replace(
        str(cwd) + "/", ""
    )
    assert "Traceback" not in r.stderr
    r = run_cli("okrs", "show", cwd=cwd)
    assert "conv" in r.stdout
    assert "checkout" in r.stdout


def test_config_errors_name_the_key_and_line(tmp_path: Path) -> None:
    """An unknown config key and a malformed config file both exit 2 with file:line."""
    write(tmp_path / "okrsync.toml", CONFIG + '\n[logging]\nlevle = "info"\n')
    r = run_cli("okrs", "show", cwd=tmp_path)
    assert r.code == 2
    assert "okrsync.toml:8: unknown key 'logging.levle'; did you mean 'level'?" in r.stderr
    write(tmp_path / "okrsync.toml", "[store\nurl = 1\n")
    r = run_cli("okrs", "show", cwd=tmp_path)
    assert r.code == 2
    assert "okrsync.toml:1:" in r.stderr
    assert "TOML syntax error" in r.stderr


def test_checkin_unknown_key_result(tmp_path: Path) -> None:
    """Checking in to a missing key result says how to find the right id."""
    cwd = setup(tmp_path)
    run_cli("okrs", "sync", cwd=cwd)
    r = run_cli("checkin", "nope", "--value", "1", cwd=cwd)
    assert r.code == 2
    assert "no key result 'nope'" in r.stderr
    assert "Traceback" not in r.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    """`okrsync db upgrade` creates the schema and reports the revision."""
    cwd = setup(tmp_path)
    r = run_cli("db", "upgrade", cwd=cwd)
    assert r.code == 0
    assert "revision 0009" in r.stdout
    assert (cwd / "data" / "okrsync.db").exists()


TOKEN_ENV = "OKRSYNC_TEST_CLI_TOKEN"
CONNECTOR = f"""
[[connectors]]
name = "gh"
type = "github"
base_url = "http://127.0.0.1:9"
scope = ["octocat/Hello-World"]
token_env = "{TOKEN_ENV}"
"""
# Lines once written after CONFIG: [[connectors]] 7, name 8, type 9, scope 11, token_env 12;
# a key appended after it lands on line 13.


def connector_config(tmp_path: Path, extra: str = "", **swap: str) -> Path:
    """The foundation config plus one GitHub connector (its token variable unset)."""
    text = CONFIG + CONNECTOR
    for old, new in swap.items():
        assert old in text
        text = text.replace(old, new)
    setup(tmp_path)
    return write(tmp_path / "okrsync.toml", text + extra)


def assert_config_error(r: CliResult, where: str, says: str) -> None:
    assert r.code == 2, (r.code, r.stderr)
    assert f"okrsync.toml:{where}" in r.stderr, r.stderr
    assert says in " ".join(r.stderr.split()), r.stderr
    assert "Traceback" not in r.stderr + r.stdout


@pytest.mark.parametrize(
    ("extra", "swap", "where", "says"),
    [
        ('schedule = "99 99 99 99 99"', {}, "13:", "cron field minute '99'"),
        ('schedule = "0 9 * * 9"', {}, "13:", "crontab weekdays are 0-7"),
        ('schedule = "every 0s"', {}, "13:", "the interval must be between 1s and 366d"),
        ("jitter_s = inf", {}, "13:", "key 'connectors.0.jitter_s': Input should be a finite"),
        ("jitter_s = 1e300", {}, "13:", "less than or equal to 3600"),
        ("timeout_s = nan", {}, "13:", "key 'connectors.0.timeout_s': Input should be a finite"),
        ("", {'type = "github"': 'type = "gihtub"'}, "9:", "did you mean 'github'?"),
        ("", {"octocat/Hello-World": "o/r/../../../admin/x"}, "11:", "is not a GitHub"),
        ("", {'"github"': '"jira"', '"octocat/Hello-World"': '"web"'}, "11:", "mean 'WEB'?"),
        ("", {'"github"': '"asana"'}, "11:", "is not an Asana project gid"),
        ("", {'name = "gh"': 'name = "gh\\n"'}, "8:", "key 'connectors.0.name': must be"),
    ],
)
def test_bad_connector_values_exit_2_at_their_line(
    tmp_path: Path, extra: str, swap: dict[str, str], where: str, says: str
) -> None:
    """Every connector value is checked when any command loads the config: file:line, exit 2."""
    connector_config(tmp_path, extra + "\n", **swap)
    assert_config_error(run_cli("okrs", "show", cwd=tmp_path), where, says)


@pytest.mark.parametrize("value", ['schedule = "99 99 99 99 99"', "jitter_s = inf"])
def test_the_daemon_refuses_a_bad_schedule_instead_of_crashing(tmp_path: Path, value: str) -> None:
    """`okrsync run` exits 2 with file:line at start; it used to die in the scheduler."""
    connector_config(tmp_path, value + "\n")
    r = run_cli("run", cwd=tmp_path, env={TOKEN_ENV: "t0ken"}, timeout=30)
    assert_config_error(r, "13:", "key 'connectors.0.")


@pytest.mark.parametrize("command", [("sync", "--once"), ("run", "--once")])
def test_an_unset_token_variable_is_a_config_error_for_commands_that_sync(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Not a failed run: exit 2 naming the variable and its line, before any tracker call."""
    connector_config(tmp_path)
    r = run_cli(*command, cwd=tmp_path)
    assert_config_error(r, "12:", f"environment variable {TOKEN_ENV} (named by token_env)")


def test_an_unreadable_token_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing token file: exit 2, its line and the path read (from the config's folder)."""
    connector_config(tmp_path, **{f'token_env = "{TOKEN_ENV}"': 'token_file = "gh_token"'})
    r = run_cli("sync", "--once", cwd=tmp_path)
    assert_config_error(r, "12:", f"cannot read token_file {tmp_path.resolve() / 'gh_token'}")


def test_reports_exports_and_mapping_checks_need_no_tokens(tmp_path: Path) -> None:
    """Only commands that call trackers ask for credentials."""
    connector_config(tmp_path)
    for command in (
        ("okrs", "sync"),
        ("report",),
        ("export", "--format", "json"),
        ("mappings", "check"),
    ):
        r = run_cli(*command, cwd=tmp_path)
        assert r.code == 0, (command, r.stderr)
