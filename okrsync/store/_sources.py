"""Readings from key-result sources (okrsync.sources), recorded in one transaction: a run
row in `sync_run` (connector `source:<key result>`, "ok" or "failed" with its reason) and,
on success, a check-in per new reading through `_okr.add_checkin` (with its audit row).

A reading whose key result already holds a check-in from the same source at the same time
is skipped, so a backfill run twice adds nothing. Earlier check-ins are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.store import _okr, _runs
from okrsync.store.tables import CHECKIN


@dataclass(frozen=True)
class Recorded:
    """What one source run left in the store."""

    run_id: int
    added: int
    skipped: int  # readings already recorded from this source


def source_author(kind: str) -> str:
    """The author of a check-in a source recorded: `source:<kind>`."""
    return f"source:{kind}"


def run_name(key_result_id: str) -> str:
    """The `sync_run.connector` of a key result's source runs: `source:<key result>`."""
    return f"source:{key_result_id}"


def record_readings(
    conn: Connection,
    key_result_id: str,
    kind: str,
    readings: Sequence[tuple[datetime, float]],
) -> Recorded:
    """A run "ok" and a check-in for each reading not yet recorded from this source."""
    run_id = _runs.start_run(conn, run_name(key_result_id))
    author = source_author(kind)
    known = _recorded_times(conn, key_result_id, author)
    added = 0
    for at, value in readings:
        if at in known:
            continue
        _okr.add_checkin(conn, key_result_id, value, author=author, at=at)
        known.add(at)
        added += 1
    _runs.finish_run(conn, run_id, "ok")
    return Recorded(run_id, added, len(readings) - added)


def record_failure(conn: Connection, key_result_id: str, reason: str) -> int:
    """A run "failed" with its reason; no check-in is added or changed."""
    run_id = _runs.start_run(conn, run_name(key_result_id))
    _runs.finish_run(conn, run_id, "failed", error=reason)
    return run_id


def _recorded_times(conn: Connection, key_result_id: str, author: str) -> set[datetime]:
    t = CHECKIN
    q = sa.select(t.c.recorded_at).where(t.c.key_result_id == key_result_id, t.c.author == author)
    return {r[0] for r in conn.execute(q)}
