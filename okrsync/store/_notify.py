"""Notifications (okrsync.notify): the event scan's watermarks, what it reads (consecutive
snapshots of a subject, finished sync runs) and the outbox the sender works through.

Two replicas may run every statement here at once: an outbox insert is insert-if-absent on
UNIQUE(event_key, channel), a watermark only moves forward, and a row is claimed by one
conditional UPDATE (due, or its lease expired), so it is sent by one sender at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.signal_types import Snapshot
from okrsync.store._snapshots import CHUNK
from okrsync.store._sql import chunks, upsert
from okrsync.store.tables import NOTIFY_OUTBOX, NOTIFY_WATERMARK, SNAPSHOT, SYNC_RUN, SyncRunRow

OB = NOTIFY_OUTBOX
WM = NOTIFY_WATERMARK


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One event queued for one channel."""

    id: int
    event_key: str
    channel: str
    kind: str
    event: dict[str, Any]
    status: str
    attempts: int
    next_at: datetime
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None


def _row(r: Any) -> OutboxRow:
    return OutboxRow(
        r.id,
        r.event_key,
        r.channel,
        r.kind,
        dict(r.event),
        r.status,
        r.attempts,
        r.next_at,
        r.created_at,
        r.sent_at,
        r.last_error,
    )


# -- watermarks ------------------------------------------------------------------------
def watermark(conn: Connection, name: str, now: datetime) -> int:
    """The watermark `name` ("snapshot" or "run"); first asked, it is set to the newest id of
    its table (history is not announced; insert-if-absent: the replica that loses the race
    reads the winner's). Only that first call reads the table's newest id."""
    found = conn.execute(sa.select(WM.c.value).where(WM.c.name == name)).scalar()
    if found is not None:
        return int(found)
    ins = upsert(conn.dialect.name, WM).values(
        name=name, value=_newest_id(conn, name), updated_at=now
    )
    conn.execute(ins.on_conflict_do_nothing(index_elements=["name"]))
    return int(conn.execute(sa.select(WM.c.value).where(WM.c.name == name)).scalar_one())


def advance(conn: Connection, name: str, value: int, now: datetime) -> None:
    """Move the watermark forward to `value` (never back)."""
    conn.execute(
        sa.update(WM)
        .where(WM.c.name == name, WM.c.value < value)
        .values(value=value, updated_at=now)
    )


def _newest_id(conn: Connection, name: str) -> int:
    """The newest id of the table the watermark `name` follows (0: none yet, or no such
    table)."""
    table = {"snapshot": SNAPSHOT, "run": SYNC_RUN}.get(name)
    if table is None:
        return 0
    return int(conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0)


# -- what the scan reads -----------------------------------------------------------------
NumberedSnapshot = tuple[int, Snapshot]


def _snapshot(r: Any) -> NumberedSnapshot:
    return r.id, Snapshot(r.subject_type, r.subject_id, r.as_of, r.computed_at, dict(r.values))


def snapshots_after(
    conn: Connection, after_id: int, limit: int
) -> list[tuple[NumberedSnapshot | None, NumberedSnapshot]]:
    """Snapshots with ids after `after_id` (oldest first, at most `limit`), each with the one
    before it of the same subject (None: the subject's first)."""
    s = SNAPSHOT
    cols = (s.c.id, s.c.subject_type, s.c.subject_id, s.c.as_of, s.c.computed_at, s.c["values"])
    q = sa.select(*cols).where(s.c.id > after_id).order_by(s.c.id).limit(limit)
    batch = [_snapshot(r) for r in conn.execute(q)]
    last = _newest_upto(
        conn, cols, {(snap.subject_type, snap.subject_id) for _, snap in batch}, after_id
    )
    pairs: list[tuple[NumberedSnapshot | None, NumberedSnapshot]] = []
    for sid, snap in batch:
        subject = (snap.subject_type, snap.subject_id)
        pairs.append((last.get(subject), (sid, snap)))
        last[subject] = (sid, snap)
    return pairs


def _newest_upto(
    conn: Connection, cols: Sequence[Any], subjects: set[tuple[str, str]], upto: int
) -> dict[tuple[str, str], NumberedSnapshot]:
    """Each subject's newest snapshot with an id up to `upto`: the one before a subject's
    first in a batch of every id after `upto` (one index probe per subject, per kind and
    chunk of ids in one statement)."""
    s = SNAPSHOT
    found: dict[tuple[str, str], NumberedSnapshot] = {}
    for kind in sorted({k for k, _ in subjects}):
        ids = sorted(i for k, i in subjects if k == kind)
        newest = sa.select(sa.func.max(s.c.id)).where(s.c.subject_type == kind, s.c.id <= upto)
        for chunk in chunks(ids, CHUNK):
            sub = newest.where(s.c.subject_id.in_(chunk)).group_by(s.c.subject_id)
            for r in conn.execute(sa.select(*cols).where(s.c.id.in_(sub))):
                found[(r.subject_type, r.subject_id)] = _snapshot(r)
    return found


FINISHED = ("ok", "failed")  # the run statuses a streak is counted from


def runs_after(
    conn: Connection, after_id: int, history: int, limit: int
) -> list[tuple[SyncRunRow, list[str]]]:
    """Sync runs with ids after `after_id`, oldest first (at most `limit`), each with up to
    `history` statuses of its connector's earlier ok or failed runs, newest first."""
    q = sa.select(SYNC_RUN).where(SYNC_RUN.c.id > after_id).order_by(SYNC_RUN.c.id).limit(limit)
    runs = [SyncRunRow.of(r) for r in conn.execute(q).mappings()]
    earlier = _statuses_upto(conn, {r.connector for r in runs}, after_id, history)
    result: list[tuple[SyncRunRow, list[str]]] = []
    for run in runs:
        before = earlier.setdefault(run.connector, [])
        result.append((run, before[:history]))
        if run.status in FINISHED:
            before.insert(0, run.status)
    return result


def _statuses_upto(
    conn: Connection, connectors: set[str], upto: int, limit: int
) -> dict[str, list[str]]:
    """The statuses of each connector's newest `limit` ok or failed runs with ids up to `upto`
    (the runs before a batch of every id after it), newest first; one statement per chunk."""
    t = SYNC_RUN
    found: dict[str, list[str]] = {}
    for chunk in chunks(sorted(connectors), CHUNK):
        n = sa.func.row_number().over(partition_by=t.c.connector, order_by=t.c.id.desc())
        ranked = (
            sa.select(t.c.connector, t.c.status, t.c.id, n.label("n"))
            .where(t.c.connector.in_(chunk), t.c.id <= upto, t.c.status.in_(FINISHED))
            .subquery()
        )
        q = sa.select(ranked.c.connector, ranked.c.status).where(ranked.c.n <= limit)
        for connector, status in conn.execute(q.order_by(ranked.c.id.desc())):
            found.setdefault(connector, []).append(str(status))
    return found


# -- the outbox ----------------------------------------------------------------------------
def enqueue(conn: Connection, rows: Sequence[dict[str, Any]], now: datetime) -> int:
    """Insert each (event_key, channel) row unless it is already there; the rows inserted."""
    fresh = {"status": "pending", "attempts": 0, "next_at": now, "created_at": now}
    added = 0
    for chunk in chunks(rows, CHUNK):  # 8 binds a row: under SQLite's 32766 per statement
        ins = upsert(conn.dialect.name, OB).values([{**row, **fresh} for row in chunk])
        skip = ins.on_conflict_do_nothing(index_elements=["event_key", "channel"])
        # RETURNING, not rowcount: PostgreSQL's driver reports no usable count for skipped rows.
        added += len(conn.execute(skip.returning(OB.c.id)).all())
    return added


def _claimable(now: datetime) -> Any:
    due = sa.and_(OB.c.status == "pending", OB.c.next_at <= now)
    lapsed = sa.and_(OB.c.status == "sending", OB.c.lease_until < now)
    return sa.or_(due, lapsed)


def claim(
    conn: Connection, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[OutboxRow]:
    """Rows due (or whose sender's lease lapsed), taken by one conditional UPDATE: a row
    another sender took in between no longer matches and is left to it."""
    due = sa.select(OB.c.id).where(_claimable(now)).order_by(OB.c.next_at, OB.c.id).limit(limit)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    take = (
        sa.update(OB)
        .where(OB.c.id.in_(ids), _claimable(now))
        .values(
            status="sending",
            lease_owner=owner,
            lease_until=now + lease,
            attempts=OB.c.attempts + 1,
        )
        .returning(*OB.c)
    )
    return sorted((_row(r) for r in conn.execute(take)), key=lambda r: r.id)


def settle(
    conn: Connection,
    row_id: int,
    owner: str,
    status: str,
    now: datetime,
    *,
    next_at: datetime | None = None,
    error: str | None = None,
) -> bool:
    """Record a send's outcome ("sent", "pending" again with `next_at`, or "failed") if this
    sender still holds the row; False when its lease was lost."""
    values: dict[str, Any] = {"status": status, "lease_owner": None, "lease_until": None}
    values["last_error"] = error
    if status == "sent":
        values["sent_at"] = now
    if next_at is not None:
        values["next_at"] = next_at
    res = conn.execute(
        sa.update(OB)
        .where(OB.c.id == row_id, OB.c.lease_owner == owner, OB.c.status == "sending")
        .values(**values)
    )
    return res.rowcount == 1


def log(
    conn: Connection, limit: int, channel: str | None, statuses: Iterable[str] | None
) -> list[OutboxRow]:
    """Outbox rows, newest first, optionally of one channel and of some statuses."""
    q = sa.select(OB).order_by(OB.c.id.desc()).limit(limit)
    if channel is not None:
        q = q.where(OB.c.channel == channel)
    if statuses is not None:
        q = q.where(OB.c.status.in_(list(statuses)))
    return [_row(r) for r in conn.execute(q)]
