"""Sync runs: recorded as "running" by their owner process, finished or abandoned.

A run's owner is its host, pid and process start time (`RunOwner`), so a pid reused by
another process, or after a reboot, does not pass for it.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.store.tables import SYNC_RUN, SyncRunRow


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunOwner:
    """The process that records a sync run: host name, pid and the process's start time.

    `start` is `/proc/<pid>/stat`'s starttime (clock ticks since boot) and the boot id, so a
    pid reused by another process, or after a reboot, does not pass for the owner (None where
    /proc is absent: then only the pid is checked).
    """

    host: str
    pid: int
    start: str | None

    @classmethod
    def current(cls) -> RunOwner:
        return _owner_of(os.getpid())

    def __str__(self) -> str:
        return f"pid {self.pid} on host {self.host}"


@functools.cache
def _owner_of(pid: int) -> RunOwner:  # cached per pid: a forked child gets its own
    return RunOwner(socket.gethostname(), pid, process_start(pid))


_STARTTIME = 22 - 3  # proc(5) numbers stat's fields from 1; ours start at field 3, state


def process_start(pid: int) -> str | None:
    """`<starttime ticks>@<boot id>` of a live process, or None (no /proc, gone, a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The fields after the command name (which may hold spaces or ")"). A zombie or dead
    # process has exited: it owns nothing.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < _STARTTIME + 1 or fields[0] in ("Z", "X"):
        return None
    return f"{fields[_STARTTIME]}@{_boot_id()}"


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return "?"


def start_run(
    conn: Connection, connector: str, owner: RunOwner | None = None, trigger: str = "schedule"
) -> int:
    """Record a run as "running", owned by `owner` (default: this process), started by
    `trigger` ("schedule", "manual" or "webhook")."""
    t = SYNC_RUN
    who = owner or RunOwner.current()
    res = conn.execute(
        sa.insert(t).values(
            connector=connector,
            started_at=now(),
            status="running",
            host=f"{who.host}:{who.pid}",
            owner_host=who.host,
            owner_pid=who.pid,
            owner_start=who.start,
            lost_scopes=[],
            trigger=trigger,
        )
    )
    key = res.inserted_primary_key
    assert key is not None  # noqa: S101 - an INSERT always returns its key
    return int(key[0])


def finish_run(
    conn: Connection,
    run_id: int,
    status: str,
    *,
    requests: int = 0,
    retries: int = 0,
    rate_limit_wait_s: float = 0.0,
    error: str | None = None,
) -> None:
    t = SYNC_RUN
    conn.execute(
        sa.update(t)
        .where(t.c.id == run_id)
        .values(
            status=status,
            ended_at=now(),
            requests=requests,
            retries=retries,
            rate_limit_wait_s=rate_limit_wait_s,
            error=error,
        )
    )


def running_runs(conn: Connection, connector: str) -> list[tuple[int, RunOwner | None]]:
    """`connector`'s runs recorded as "running", with their owners (None: not recorded)."""
    t = SYNC_RUN
    q = sa.select(t.c.id, t.c.owner_host, t.c.owner_pid, t.c.owner_start).where(
        t.c.connector == connector, t.c.status == "running"
    )
    rows = conn.execute(q.order_by(t.c.id)).all()
    return [
        (int(r.id), RunOwner(r.owner_host, r.owner_pid, r.owner_start) if r.owner_pid else None)
        for r in rows
    ]


def abandon_runs(conn: Connection, run_ids: Mapping[int, str]) -> int:
    """Mark runs still "running" as interrupted, each with its reason (owner gone)."""
    t = SYNC_RUN
    n = 0
    for run_id, reason in run_ids.items():
        res = conn.execute(
            sa.update(t)
            .where(t.c.id == run_id, t.c.status == "running")
            .values(status="interrupted", ended_at=now(), error=reason)
        )
        n += int(res.rowcount or 0)
    return n


def runs(
    conn: Connection,
    connector: str | None = None,
    *,
    failed: bool = False,
    since: datetime | None = None,
    limit: int = 50,
) -> list[SyncRunRow]:
    """Recorded sync runs, newest first."""
    t = SYNC_RUN
    q = sa.select(t).order_by(t.c.id.desc()).limit(limit)
    if connector:
        q = q.where(t.c.connector == connector)
    if failed:
        q = q.where(t.c.status != "ok")
    if since:
        q = q.where(t.c.started_at >= since)
    return [SyncRunRow.of(r) for r in conn.execute(q).mappings()]


def run(conn: Connection, run_id: int) -> SyncRunRow | None:
    """One recorded sync run, or None."""
    row = conn.execute(sa.select(SYNC_RUN).where(SYNC_RUN.c.id == run_id)).mappings().first()
    return None if row is None else SyncRunRow.of(row)
