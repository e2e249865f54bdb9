"""The OKR tree as loaded from the mapping files, and check-ins: the only writer of
key-result values (`add_checkin`); nothing derives them from work items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.errors import ConfigError
from okrsync.okrfile import OkrTree
from okrsync.store.tables import CHECKIN, KEY_RESULT, OBJECTIVE, TACTIC


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
    key_result_id: str
    value: float
    confidence: float | None
    note: str | None
    recorded_at: datetime


def apply_okr_tree(conn: Connection, tree: OkrTree) -> ApplyReport:
    """Load the tree idempotently: add new ids, update changes, archive removed ones.

    Check-ins are never touched: an archived key result keeps its history, and comes back
    with it when its id reappears.
    """
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
    """Record a key result's measured value."""
    if confidence is not None and not 0 <= confidence <= 1:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}")
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
    recorded = at or now()
    conn.execute(
        sa.insert(CHECKIN).values(
            key_result_id=key_result_id,
            value=float(value),
            confidence=confidence,
            note=note,
            author=author,
            recorded_at=recorded,
        )
    )
    return Checkin(key_result_id, float(value), confidence, note, recorded)


def checkins(conn: Connection, key_result_id: str) -> list[Checkin]:
    t = CHECKIN
    rows = conn.execute(
        sa.select(t).where(t.c.key_result_id == key_result_id).order_by(t.c.recorded_at, t.c.id)
    )
    return [Checkin(r.key_result_id, r.value, r.confidence, r.note, r.recorded_at) for r in rows]


def latest_checkins(conn: Connection) -> dict[str, Checkin]:
    """The newest check-in of every key result (one query)."""
    t = CHECKIN
    newest = (
        sa.select(t.c.key_result_id, sa.func.max(t.c.id).label("mid"))
        .group_by(t.c.key_result_id)
        .subquery()
    )
    q = sa.select(t).join(newest, t.c.id == newest.c.mid)
    return {
        r.key_result_id: Checkin(r.key_result_id, r.value, r.confidence, r.note, r.recorded_at)
        for r in conn.execute(q)
    }


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
        "source": str(k.source),
    }


def _tactic_values(t: Any) -> dict[str, Any]:
    return {
        "key_result_id": t.key_result,
        "title": t.title,
        "weight": t.weight,
        "source": str(t.source),
    }
