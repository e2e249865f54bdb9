"""One lock discipline for every writer: `sync --once`, the daemon and replicas.

SQLite: whoever holds `<db>.lock` is the only writer; the next one exits 1 naming it.
PostgreSQL: one process per connector (advisory locks); a held connector is skipped, naming
the holder. A run left "running" is abandoned only once its owner (host, pid, start time)
is gone.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from okrsync.locks import Holder, LockHeld, StoreLock
from okrsync.sandbox import Sandbox
from okrsync.service import ABANDONED, reap_stale_runs
from okrsync.store import RunOwner, Store, process_start
from okrsync.store.tables import SyncRunRow
from tests.helpers import run_cli, write
from tests.integration.test_service import all_runs, daemon, events, wait_for, world

SLOW_S = 8  # github's first request hangs this long: the run stays in flight meanwhile


def flat(text: str) -> str:
    """Rich wraps long error lines: compare with single spaces."""
    return " ".join(text.split())


@contextmanager
def sync_in_flight(
    tmp_path: Path,
    sb: Sandbox,
    cfg: Path,
    env: dict[str, str],
    url: str,
    *args: str,
    slow_s: float = SLOW_S,
) -> Iterator[subprocess.Popen[bytes]]:
    """`okrsync sync --once ARGS` in the background, yielded once its github run hangs."""
    sb.inject("github", "slow", 1, delay=slow_s)
    cmd = [sys.executable, "-m", "okrsync.cli", "-c", str(cfg), "sync", "--once", *args]
    with (tmp_path / "first.err").open("wb") as err:
        proc = subprocess.Popen(
            cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        wait_for(
            lambda: sb.stats()["faults_fired"] and github_running(url), "a github run in flight"
        )
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def github_running(url: str) -> list[SyncRunRow]:
    return [r for r in all_runs(url) if r.connector == "github" and r.status == "running"]


def assert_counted_once(url: str) -> None:
    """No run was abandoned, and each stored item was counted as created exactly once."""
    runs = all_runs(url)
    assert not [r for r in runs if r.status != "ok"], [(r.connector, r.error) for r in runs]
    store = Store.open(url, upgrade=False)
    try:
        for name in {r.connector for r in runs}:
            created = sum(r.items_created for r in runs if r.connector == name)
            assert created == len(store.items(name)), name
    finally:
        store.close()


def test_second_sync_once_on_sqlite_is_refused_and_counts_are_not_doubled(
    tmp_path: Path,
) -> None:
    """A `sync --once` while another runs on one SQLite store exits 1 naming the first."""
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    with world(tmp_path) as (sb, cfg, env), sync_in_flight(tmp_path, sb, cfg, env, url) as first:
        r = run_cli("-c", str(cfg), "sync", "--once", cwd=tmp_path, env=env)
        assert r.code == 1, r.stdout
        said = flat(r.stderr)
        assert f"`okrsync sync --once` (pid {first.pid} on host {socket.gethostname()})" in said
        assert "okrsync.db.lock; wait for it to finish" in said
        assert "Traceback" not in r.stderr
        assert first.wait(timeout=60) == 0
    assert len(all_runs(url)) == 4  # one run per connector: the refused sync made none
    assert_counted_once(url)


def test_sync_once_beside_a_daemon_is_refused_naming_it(tmp_path: Path) -> None:
    """`sync --once` while `okrsync run` holds the SQLite store: exit 1, the daemon named."""
    log = tmp_path / "okrsync.log"
    with world(tmp_path, schedule="every 1h") as (_, cfg, env), daemon(cfg, env, log) as d:
        d.port()
        r = run_cli("-c", str(cfg), "sync", "--once", "--connector", "jira", cwd=tmp_path, env=env)
        assert r.code == 1, r.stdout
        said = flat(r.stderr)
        assert f"the daemon (pid {d.proc.pid} on host" in said
        assert "okrsync.db.lock; stop it or let it sync" in said
        assert d.stop() == 0


def test_daemon_starting_during_a_live_sync_once_leaves_its_run_alone(tmp_path: Path) -> None:
    """A daemon started while `sync --once` runs exits 1; the live run is not abandoned."""
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    log = tmp_path / "okrsync.log"
    with (
        world(tmp_path, schedule="every 1h") as (sb, cfg, env),
        sync_in_flight(tmp_path, sb, cfg, env, url) as first,
    ):
        with daemon(cfg, env, log) as d:
            assert d.proc.wait(timeout=30) == 1
        said = flat(log.with_suffix(".err").read_text())
        assert f"`okrsync sync --once` (pid {first.pid} on host" in said
        assert github_running(url), "the live run was closed"
        assert first.wait(timeout=60) == 0
    assert_counted_once(url)


def test_a_run_is_abandoned_only_when_its_owner_is_gone(store: Store) -> None:
    """Dead pid, reused pid, other host or no owner: abandoned; a live owner's run is kept."""
    host = socket.gethostname()
    with subprocess.Popen(["sleep", "60"]) as alive:
        dead = subprocess.Popen(["true"])
        dead.wait()
        live = RunOwner(host, alive.pid, process_start(alive.pid))
        kept = store.start_run("gh", owner=live)
        gone = [
            store.start_run("gh", owner=RunOwner(host, dead.pid, "1@old")),
            store.start_run("gh", owner=RunOwner(host, alive.pid, "1@another-process")),
            store.start_run("gh", owner=RunOwner("elsewhere", alive.pid, None)),
        ]
        assert reap_stale_runs(store, "gh") == live
        runs = {r.id: r for r in store.runs("gh")}
        assert runs[kept].status == "running"
        for run_id in gone:
            assert runs[run_id].status == "interrupted"
            assert (runs[run_id].error or "").startswith(ABANDONED)
        assert f"pid {dead.pid} on host {host}" in (runs[gone[0]].error or "")
        alive.kill()
    assert reap_stale_runs(store, "gh") is None
    assert next(r for r in store.runs("gh") if r.id == kept).status == "interrupted"


def test_a_lock_file_from_an_older_okrsync_still_names_its_pid(tmp_path: Path) -> None:
    """A lock held by a process that wrote only its pid is reported as that pid."""
    held = StoreLock(tmp_path / "x.db", "sync --once")
    held.acquire()
    held.path.write_text("4242\n")
    with pytest.raises(LockHeld, match=r"another okrsync process \(pid 4242\) holds .*x\.db\.lock"):
        StoreLock(tmp_path / "x.db").acquire()
    held.release()


@pytest.mark.postgres
def test_advisory_lock_holder_is_named(pg_url: str) -> None:
    """On PostgreSQL a held connector names its holder: command, pid and host."""
    store = Store.open(pg_url)
    mine, theirs = store.advisory_locks("sync --once"), store.advisory_locks()

    async def check() -> None:
        async with mine.hold("github") as got:
            assert got
            async with theirs.hold("github") as also:
                assert not also
            assert theirs.holder("github") == Holder(
                "sync --once", os.getpid(), socket.gethostname()
            )
        assert theirs.holder("github") is None

    try:
        asyncio.run(check())
    finally:
        mine.close()
        theirs.close()
        store.close()


@pytest.mark.postgres
def test_sync_once_on_postgres_skips_a_held_connector_naming_the_holder(
    tmp_path: Path, pg_url: str
) -> None:
    """A held connector is skipped by `sync --once` (exit 1 if nothing ran) and a daemon."""
    log = tmp_path / "daemon.log"  # the daemon's own: `sync --once` logs to okrsync.log
    with (
        world(tmp_path, pg_url, schedule="every 1h") as (sb, cfg, env),
        sync_in_flight(tmp_path, sb, cfg, env, pg_url, "--connector", "github", slow_s=25) as first,
    ):
        holder = f"held by `okrsync sync --once` (pid {first.pid} on host"
        only = run_cli(
            "-c", str(cfg), "sync", "--once", "--connector", "github", cwd=tmp_path, env=env
        )
        assert only.code == 1, only.stdout
        assert f"skipped github: {holder}" in flat(only.stderr)
        rest = run_cli("-c", str(cfg), "sync", "--once", cwd=tmp_path, env=env)
        assert rest.code == 0, rest.stderr
        assert f"skipped github: {holder}" in flat(rest.stderr)
        cfg_d = write(
            tmp_path / "d.toml", cfg.read_text().replace(str(tmp_path / "okrsync.log"), str(log))
        )
        with daemon(cfg_d, env, log) as d:
            skipped = wait_for(
                lambda: [
                    e
                    for e in events(log)
                    if e["event"] == "sync.skipped_locked" and e["connector"] == "github"
                ],
                "the daemon to skip github",
            )
            wait_for(
                lambda: len([e for e in events(log) if e["event"] == "sync.end"]) == 3,
                "the daemon's other runs",
            )
            assert d.stop() == 0
        assert holder in skipped[0]["reason"]
        assert github_running(pg_url), "the live run was closed"
        assert first.wait(timeout=60) == 0
    github = [r for r in all_runs(pg_url) if r.connector == "github"]
    assert len(github) == 1
    assert_counted_once(pg_url)
