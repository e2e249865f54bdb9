"""The CLI as a user runs it: tree sync, check-ins, errors with file:line and exit codes."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import TREE, run_cli, write

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
    assert "revision 0002" in r.stdout
    assert (cwd / "data" / "okrsync.db").exists()
