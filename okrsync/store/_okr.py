"""The OKR tree as loaded from the mapping files, and check-ins: the only writers of
key-result values (`add_checkin`, `correct_checkin`, `delete_checkin`, each with its audit
row in `checkin_audit`); nothing derives them from work items.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.errors import ConfigError
from okrsync.okrfile import OkrTree
from okrsync.store.tables import CHECKIN, CHECKIN_AUDIT, KEY_RESULT, OBJECTIVE, TACTIC


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ApplyReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Checkin:
    """A reading of a key result's metric, taken at `recorded_at` (entered then or later)."""

    key_result_id: str
    value: float
    confidence: float | None
    note: str | None
    recorded_at: datetime
    author: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class CheckinChange:
    """Who corrects or deletes a check-in, when and why; for a correction, what else changes
    (None: kept). `key_result_id`, when given, must be the check-in's own."""

    by: str | None = None
    when: datetime | None = None  # None: now
    reason: str | None = None
    at: datetime | None = None
    confidence: float | None = None
    note: str | None = None
    key_result_id: str | None = None


@dataclass(frozen=True)
class CheckinAudit:
    """One write to a check-in: "add", "correct" (with the values before) or "delete"."""

    checkin_id: int
    key_result_id: str
    action: str
    value: float | None
    recorded_at: datetime | None
    old_value: float | None
    old_recorded_at: datetime | None
    old_confidence: float | None
    old_note: str | None
    old_author: str | None
    changed_by: str | None
    changed_at: datetime
    reason: str | None


def apply_okr_tree(conn: Connection, tree: OkrTree) -> ApplyReport:
    """Load the tree idempotently: add new ids, update changes, archive removed ones.

    Check-ins are never touched: an archived key result keeps its history, and comes back
    with it when its id reappears.
    """
    _lock_tree(conn)
    report = ApplyReport()
    ts = now()
    obj_rows = {o.id: _obj_values(o) for o in tree.objectives.values()}
    # Parents are set in a second pass so insertion order never trips the FK.
    _sync_table(
        conn,
        OBJECTIVE,
        {k: {**v, "parent_id": None} for k, v in obj_rows.items()},
        ts,
        report,
        "objective",
    )
    for oid, vals in obj_rows.items():
        conn.execute(
            sa.update(OBJECTIVE).where(OBJECTIVE.c.id == oid).values(parent_id=vals["parent_id"])
        )
    krs = {k.id: _kr_values(k) for k in tree.key_results.values()}
    _sync_table(conn, KEY_RESULT, krs, ts, report, "key_result")
    tacs = {t.id: _tactic_values(t) for t in tree.tactics.values()}
    _sync_table(conn, TACTIC, tacs, ts, report, "tactic")
    return report


def _lock_tree(conn: Connection) -> None:
    """Take the OKR tables' write lock first: two loads at once (replicas starting together)
    run one after the other, the second reading the first's rows instead of inserting them
    again (a duplicate key)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("LOCK TABLE objective IN EXCLUSIVE MODE"))
    else:  # SQLite: a write takes the database's write lock before the reads
        conn.execute(sa.delete(OBJECTIVE).where(sa.false()))


def _sync_table(
    conn: Connection,
    table: sa.Table,
    wanted: Mapping[str, dict[str, Any]],
    ts: datetime,
    report: ApplyReport,
    label: str,
) -> None:
    existing = {r._mapping["id"]: dict(r._mapping) for r in conn.execute(sa.select(table))}
    for ident, vals in wanted.items():
        old = existing.get(ident)
        if old is None:
            conn.execute(sa.insert(table).values(id=ident, updated_at=ts, **vals))
            report.added.append(f"{label}:{ident}")
            continue
        changed = {k: v for k, v in vals.items() if old.get(k) != v and k != "parent_id"}
        if old["archived_at"] is not None:
            report.restored.append(f"{label}:{ident}")
            changed["archived_at"] = None
        elif set(changed) - {"source"}:  # a moved line is not a change to report
            report.updated.append(f"{label}:{ident}")
        if changed:
            conn.execute(
                sa.update(table).where(table.c.id == ident).values(updated_at=ts, **changed)
            )
    for ident, old in existing.items():
        if ident not in wanted and old["archived_at"] is None:
            conn.execute(sa.update(table).where(table.c.id == ident).values(archived_at=ts))
            report.archived.append(f"{label}:{ident}")


def add_checkin(
    conn: Connection,
    key_result_id: str,
    value: float,
    *,
    confidence: float | None = None,
    note: str | None = None,
    author: str | None = None,
    at: datetime | None = None,
) -> Checkin:
    """Record a key result's measured value, taken at `at` (default: now; never later), and
    its "add" audit row."""
    entered = now()
    recorded = at or entered
    _check_reading(value, confidence, recorded, entered)
    _check_active(conn, key_result_id)
    result = conn.execute(
        sa.insert(CHECKIN).values(
            key_result_id=key_result_id,
            value=float(value),
            confidence=confidence,
            note=note,
            author=author,
            recorded_at=recorded,
        )
    )
    (ident,) = result.inserted_primary_key or (None,)
    added = Checkin(key_result_id, float(value), confidence, note, recorded, author, ident)
    _audit(conn, "add", None, added, author, entered, None)
    return added


def correct_checkin(
    conn: Connection,
    checkin_id: int,
    value: float,
    change: CheckinChange,
) -> tuple[Checkin, Checkin]:
    """Give check-in `checkin_id` a new value (and, where `change` says, a new time,
    confidence or note); the values before are kept in its "correct" audit row. Returns the
    check-in (before, after)."""
    before = _stored(conn, checkin_id, change.key_result_id)
    after = replace(
        before,
        value=float(value),
        recorded_at=change.at or before.recorded_at,
        confidence=before.confidence if change.confidence is None else change.confidence,
        note=before.note if change.note is None else change.note,
    )
    when = change.when or now()
    _check_reading(after.value, after.confidence, after.recorded_at, when)
    conn.execute(
        sa.update(CHECKIN)
        .where(CHECKIN.c.id == checkin_id)
        .values(
            value=after.value,
            recorded_at=after.recorded_at,
            confidence=after.confidence,
            note=after.note,
        )
    )
    _audit(conn, "correct", before, after, change.by, when, change.reason)
    return before, after


def delete_checkin(conn: Connection, checkin_id: int, change: CheckinChange) -> Checkin:
    """Remove check-in `checkin_id` from the key result's readings (progress no longer sees
    it); its values are kept in its "delete" audit row. Returns the removed check-in."""
    before = _stored(conn, checkin_id, change.key_result_id)
    conn.execute(sa.delete(CHECKIN).where(CHECKIN.c.id == checkin_id))
    _audit(conn, "delete", before, None, change.by, change.when or now(), change.reason)
    return before


def _check_reading(value: float, confidence: float | None, at: datetime, entered: datetime) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"a check-in's value must be a finite number, got {value}")
    if confidence is not None and not 0 <= confidence <= 1:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}")
    if at.tzinfo is None:
        raise ConfigError("a check-in's time needs a time zone (UTC is assumed by the CLI)")
    if at > entered:
        raise ConfigError(
            f"a check-in records a reading already taken: {at:%Y-%m-%d %H:%M} UTC is in the "
            f"future (now {entered:%Y-%m-%d %H:%M} UTC)"
        )


def _check_active(conn: Connection, key_result_id: str) -> None:
    kr_table = KEY_RESULT
    row = conn.execute(
        sa.select(kr_table.c.archived_at).where(kr_table.c.id == key_result_id)
    ).first()
    if row is None:
        raise ConfigError(
            f"no key result {key_result_id!r}; run `okrsync okrs sync` after adding it "
            "to a mapping file, or check the id with `okrsync okrs show`"
        )
    if row[0] is not None:
        raise ConfigError(
            f"key result {key_result_id!r} is archived (removed from the mapping files)"
        )


def _stored(conn: Connection, checkin_id: int, key_result_id: str | None) -> Checkin:
    """The stored check-in `checkin_id` (of `key_result_id`, when given), or a ConfigError
    saying why there is none."""
    t = CHECKIN
    row = conn.execute(sa.select(t).where(t.c.id == checkin_id)).first()
    if row is None:
        raise ConfigError(_missing(conn, checkin_id))
    found = _checkin(row)
    if key_result_id is not None and found.key_result_id != key_result_id:
        raise ConfigError(
            f"check-in #{checkin_id} belongs to key result {found.key_result_id!r}, not "
            f"{key_result_id!r}; give the check-in id alone, or check it with "
            f"`okrsync checkins {found.key_result_id}`"
        )
    return found


def _missing(conn: Connection, checkin_id: int) -> str:
    """Why there is no check-in `checkin_id`: deleted (when, by whom), or never recorded."""
    a = CHECKIN_AUDIT
    q = sa.select(a).where(a.c.checkin_id == checkin_id, a.c.action == "delete")
    gone = conn.execute(q).first()
    if gone is not None:
        by = f" by {gone.changed_by}" if gone.changed_by else ""
        return (
            f"check-in #{checkin_id} of {gone.key_result_id!r} was deleted on "
            f"{gone.changed_at:%Y-%m-%d %H:%M} UTC{by}; record the reading again with "
            f"`okrsync checkin {gone.key_result_id} --value V --at WHEN`"
        )
    return (
        f"no check-in #{checkin_id}; the ids are in the first column of "
        "`okrsync checkins KEY_RESULT`"
    )


def _audit(
    conn: Connection,
    action: str,
    before: Checkin | None,
    after: Checkin | None,
    by: str | None,
    when: datetime,
    reason: str | None,
) -> None:
    """One audit row: the reading after the change and, when there was one, before it."""
    ref = after or before
    assert ref is not None  # noqa: S101 - every write has one side
    conn.execute(
        sa.insert(CHECKIN_AUDIT).values(
            checkin_id=ref.id,
            key_result_id=ref.key_result_id,
            action=action,
            value=after.value if after else None,
            recorded_at=after.recorded_at if after else None,
            old_value=before.value if before else None,
            old_recorded_at=before.recorded_at if before else None,
            old_confidence=before.confidence if before else None,
            old_note=before.note if before else None,
            old_author=before.author if before else None,
            changed_by=by,
            changed_at=when,
            reason=reason,
        )
    )


def _checkin(r: Any) -> Checkin:
    return Checkin(r.key_result_id, r.value, r.confidence, r.note, r.recorded_at, r.author, r.id)


def checkins(conn: Connection, key_result_id: str) -> list[Checkin]:
    """A key result's check-ins (deleted ones are gone), oldest reading first."""
    t = CHECKIN
    rows = conn.execute(
        sa.select(t).where(t.c.key_result_id == key_result_id).order_by(t.c.recorded_at, t.c.id)
    )
    return [_checkin(r) for r in rows]


def latest_checkins(conn: Connection) -> dict[str, Checkin]:
    """The newest reading of every key result: the latest `recorded_at` (then the latest id),
    not the latest entered: a backdated check-in does not replace a newer reading."""
    t = CHECKIN
    rows = conn.execute(sa.select(t).order_by(t.c.recorded_at, t.c.id))
    return {r.key_result_id: _checkin(r) for r in rows}


def checkin_audit(conn: Connection, key_result_id: str) -> list[CheckinAudit]:
    """A key result's audit trail: every check-in added, corrected or deleted, in order."""
    a = CHECKIN_AUDIT
    rows = conn.execute(
        sa.select(a).where(a.c.key_result_id == key_result_id).order_by(a.c.changed_at, a.c.id)
    )
    return [
        CheckinAudit(
            r.checkin_id, r.key_result_id, r.action, r.value, r.recorded_at, r.old_value,
            r.old_recorded_at, r.old_confidence, r.old_note, r.old_author, r.changed_by,
            r.changed_at, r.reason,
        )
        for r in rows
    ]  # fmt: skip


def _obj_values(o: Any) -> dict[str, Any]:
    return {
        "title": o.title,
        "owner": o.owner,
        "period": o.period,
        "period_start": o.start,
        "period_end": o.end,
        "parent_id": o.parent,
        "weight": o.weight,
        "source": str(o.source),
    }


def _kr_values(k: Any) -> dict[str, Any]:
    return {
        "objective_id": k.objective,
        "title": k.title,
        "unit": k.unit,
        "start_value": k.start,
        "target_value": k.target,
        "direction": k.direction,
        "weight": k.weight,
        "owner": k.owner,
        "source": str(k.source),
    }


def _tactic_values(t: Any) -> dict[str, Any]:
    return {
        "key_result_id": t.key_result,
        "title": t.title,
        "weight": t.weight,
        "source": str(t.source),
    }
