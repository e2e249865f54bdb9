"""Clean files: after a command or the daemon, only the database file remains; read-only
commands in a folder without a store create nothing and say how to make one."""

from __future__ import annotations

import fcntl
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from okrsync.locks import LockHeld, StoreLock
from okrsync.store import Store
from tests.helpers import run_cli, write
from tests.integration.test_service import daemon, world

# what a configured folder holds besides the store: config, mappings, the log (and its .err)
CONFIG_FILES = {"okrsync.toml", "okrs", "okrsync.log", "okrsync.err"}


def leftovers(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} - CONFIG_FILES


def test_sync_report_and_run_once_leave_only_the_database(tmp_path: Path) -> None:
    """`sync --once`, `report` and `run --once` leave no -wal, -shm or .lock file behind."""
    with world(tmp_path) as (_sb, cfg, env):
        for args in (["sync", "--once"], ["report"], ["run", "--once"], ["runs"]):
            r = run_cli("-c", str(cfg), *args, cwd=tmp_path, env=env)
            assert r.code == 0, (args, r.stderr)
            assert leftovers(tmp_path) == {"okrsync.db"}, args


def test_daemon_stopped_by_sigterm_leaves_only_the_database(tmp_path: Path) -> None:
    """A daemon stopped with SIGTERM checkpoints the WAL and removes its lock file."""
    log = tmp_path / "okrsync.log"
    with world(tmp_path) as (_sb, cfg, env), daemon(cfg, env, log) as d:
        d.port()  # listening: the store is open and the lock held
        assert (tmp_path / "okrsync.db.lock").exists()
        assert d.stop(signal.SIGTERM) == 0
    assert leftovers(tmp_path) == {"okrsync.db"}


READ_ONLY = [
    ["report"],
    ["export", "--format", "json"],
    ["history", "grow"],
    ["runs"],
    ["runs", "show", "1"],
    ["items", "--unlinked", "--connector", "jira"],
    ["checkins", "kr1"],
    ["okrs", "show"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_command_in_an_empty_folder_creates_no_store(
    tmp_path: Path, args: list[str]
) -> None:
    """A read-only command with no store exits 2 saying how to make one, creating no file."""
    r = run_cli(*args, cwd=tmp_path, env={"OKRSYNC_CONFIG": ""})
    assert r.code == 2, (r.stdout, r.stderr)
    assert "no store at" in r.stderr
    assert "okrsync sync --once" in r.stderr
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
@pytest.mark.parametrize("args", [["report"], ["runs"], ["okrs", "show"]], ids=" ".join)
def test_read_only_command_on_an_empty_postgres_database_creates_no_schema(
    tmp_path: Path, pg_url: str, args: list[str]
) -> None:
    """On PostgreSQL (the database exists) a read-only command finds no okrsync schema, exits 2
    saying how to make one, and leaves the database empty; after `db upgrade` it runs."""
    cfg = write(tmp_path / "okrsync.toml", f'[store]\nurl = "{pg_url}"\n')
    r = run_cli("-c", str(cfg), *args, cwd=tmp_path)
    assert r.code == 2, (r.stdout, r.stderr)
    assert "no okrsync store in" in r.stderr
    assert "okrsync sync --once" in r.stderr
    engine = sa.create_engine(pg_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    assert run_cli("-c", str(cfg), "db", "upgrade", cwd=tmp_path).code == 0
    again = run_cli("-c", str(cfg), *args, cwd=tmp_path)
    assert "no okrsync store" not in again.stderr


def test_release_removes_the_lock_file(tmp_path: Path) -> None:
    """Releasing the store lock removes `okrsync.db.lock`; the next locker creates it anew."""
    lock = StoreLock(tmp_path / "okrsync.db", "sync --once")
    lock.acquire()
    assert lock.path.exists()
    lock.release()
    assert not lock.path.exists()
    with StoreLock(tmp_path / "okrsync.db", "demo") as again:
        assert "demo" in again.path.read_text()


def test_locker_whose_file_was_removed_meanwhile_locks_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file removed by its last holder between open and flock is re-opened, not trusted."""
    real = fcntl.flock
    path = tmp_path / "okrsync.db.lock"
    calls: list[int] = []

    def flock_after_release(fd: int, op: int) -> None:
        if not calls:  # the previous holder releases (removes the file) right now
            path.unlink()
        calls.append(fd)
        real(fd, op)

    monkeypatch.setattr("okrsync.locks.fcntl.flock", flock_after_release)
    lock = StoreLock(tmp_path / "okrsync.db", "sync --once")
    lock.acquire()
    assert len(calls) == 2
    assert path.exists()
    assert "sync --once" in path.read_text()
    with pytest.raises(LockHeld, match="sync --once"):
        StoreLock(tmp_path / "okrsync.db", "demo").acquire()
    lock.release()


@pytest.mark.parametrize(
    "args", [["logs"], ["explain", "grow"], ["mappings", "values"]], ids=" ".join
)
def test_other_readers_in_an_empty_folder_create_no_file(tmp_path: Path, args: list[str]) -> None:
    """`logs`, `explain` and `mappings values` without a store leave the folder empty."""
    r = run_cli(*args, cwd=tmp_path, env={"OKRSYNC_CONFIG": ""})
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_closing_beside_a_writer_does_not_wait_and_the_last_close_removes_the_wal(
    tmp_path: Path,
) -> None:
    """Store.close never waits on another process's write; the last one to close cleans up."""
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    Store.open(url).close()
    reader = Store.open(url, upgrade=False, busy_timeout_ms=5000)
    with reader.engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM work_item").all()
    other = sqlite3.connect(tmp_path / "okrsync.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("DELETE FROM work_item")
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 1.0
    other.execute("COMMIT")
    assert (tmp_path / "okrsync.db-wal").exists()
    other.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["okrsync.db"]
