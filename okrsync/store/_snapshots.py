"""Signal snapshots: insert what changed since each subject's newest snapshot, read history."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from okrsync.signal_types import Snapshot, Subject
from okrsync.store._sql import chunks
from okrsync.store.tables import SNAPSHOT

CHUNK = 1000


def latest_digests(
    conn: Connection, subject_ids: Collection[str] | None = None
) -> dict[tuple[str, str], str]:
    """The digest of each subject's newest snapshot (all subjects, or those ids)."""
    s = SNAPSHOT
    newest = sa.select(sa.func.max(s.c.id)).group_by(s.c.subject_type, s.c.subject_id)
    q = sa.select(s.c.subject_type, s.c.subject_id, s.c.digest)
    if subject_ids is None:
        rows: Iterable[Any] = conn.execute(q.where(s.c.id.in_(newest)))
        return {(r.subject_type, r.subject_id): r.digest for r in rows}
    found: dict[tuple[str, str], str] = {}
    for chunk in chunks(sorted(subject_ids), CHUNK):
        sub = newest.where(s.c.subject_id.in_(chunk))
        rows = conn.execute(q.where(s.c.id.in_(sub)))
        found.update({(r.subject_type, r.subject_id): r.digest for r in rows})
    return found


def add_changed(conn: Connection, as_of: date, subjects: Sequence[Subject], *, full: bool) -> int:
    """Insert a snapshot for every subject whose digest differs from its newest one; `full`
    reads every subject's newest digest in one statement instead of by id."""
    computed_at = datetime.now(UTC)
    known = latest_digests(conn, None if full else {sid for _, sid, _, _ in subjects})
    rows = [
        {
            "subject_type": kind,
            "subject_id": sid,
            "as_of": as_of,
            "computed_at": computed_at,
            "digest": d,
            "values": values,
        }
        for kind, sid, values, d in subjects
        if known.get((kind, sid)) != d
    ]
    if rows:
        conn.execute(sa.insert(SNAPSHOT), rows)
    return len(rows)


def history(engine: Engine, subject_id: str, limit: int) -> list[Snapshot]:
    """A subject's newest `limit` snapshots, oldest first."""
    s = SNAPSHOT
    q = (
        sa.select(s.c.subject_type, s.c.subject_id, s.c.as_of, s.c.computed_at, s.c["values"])
        .where(s.c.subject_id == subject_id)
        .order_by(s.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(q))
    return [Snapshot(r[0], r[1], r[2], r[3], dict(r[4])) for r in reversed(rows)]
