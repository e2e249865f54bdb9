"""Reads for the web read model (`okrsync.web.readmodel`): the tree with each tactic's newest
snapshot (the dashboard's fast path: no item aggregate), the part of the tree one subject
belongs to, and the signal inputs of a few objectives.

The statements reuse `_signal_reads`' tree and check-in reads, so the web and `report` read
the same rows the same way.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from okrsync.signal_types import ItemCounts, Snapshot, Structure
from okrsync.store._signal_reads import (
    CHUNK,
    item_counts,
    latest_checkins,
    load_structure,
)
from okrsync.store._sql import chunks
from okrsync.store.tables import (
    CHECKIN,
    CHECKIN_AUDIT,
    KEY_RESULT,
    OBJECTIVE,
    SNAPSHOT,
    SYNC_RUN,
    TACTIC,
)

if TYPE_CHECKING:
    from okrsync.config import SignalsConfig

Checkins = dict[str, tuple[float, datetime]]
Kind = Literal["objective", "key_result", "tactic"]
KINDS: tuple[Kind, ...] = ("objective", "key_result", "tactic")


def newest_values(
    conn: Connection, kind: str, subject_ids: Collection[str] | None = None
) -> dict[str, tuple[date, dict[str, Any]]]:
    """Each subject's newest snapshot (its as-of date and values), of one kind; all of that
    kind, or the given ids (one index probe per subject: `ix_signal_snapshot_latest`)."""
    s = SNAPSHOT
    newest = sa.select(sa.func.max(s.c.id)).where(s.c.subject_type == kind)
    q = sa.select(s.c.subject_id, s.c.as_of, s.c["values"])
    if subject_ids is None:
        rows = conn.execute(q.where(s.c.id.in_(newest.group_by(s.c.subject_id))))
        return {r[0]: (r[1], dict(r[2])) for r in rows}
    found: dict[str, tuple[date, dict[str, Any]]] = {}
    for chunk in chunks(sorted(subject_ids), CHUNK):
        sub = newest.where(s.c.subject_id.in_(chunk)).group_by(s.c.subject_id)
        found.update({r[0]: (r[1], dict(r[2])) for r in conn.execute(q.where(s.c.id.in_(sub)))})
    return found


def current_inputs(
    engine: Engine, as_of: date, objective_ids: Collection[str] | None = None
) -> tuple[Structure, Checkins, dict[str, tuple[date, dict[str, Any]]]]:
    """The active tree (whole or those objectives), each key result's newest check-in by
    `as_of` and each tactic's newest snapshot, in one read transaction."""
    with engine.connect() as conn:
        structure = load_structure(conn, objective_ids)
        checkins = latest_checkins(conn, as_of, structure.key_results)
        ids = None if objective_ids is None else list(structure.tactics)
        return structure, checkins, newest_values(conn, "tactic", ids)


def objective_of(engine: Engine, kind: Kind, subject_id: str) -> str | None:
    """The objective an active subject belongs to (None: unknown or archived)."""
    o, k, t = OBJECTIVE, KEY_RESULT, TACTIC
    q: sa.Select[Any]
    if kind == "objective":
        q = sa.select(o.c.id).where(o.c.id == subject_id)
    elif kind == "key_result":
        q = sa.select(o.c.id).join(k, k.c.objective_id == o.c.id).where(k.c.id == subject_id)
        q = q.where(k.c.archived_at.is_(None))
    else:
        q = sa.select(o.c.id).join(k, k.c.objective_id == o.c.id)
        q = q.join(t, t.c.key_result_id == k.c.id).where(t.c.id == subject_id)
        q = q.where(k.c.archived_at.is_(None), t.c.archived_at.is_(None))
    with engine.connect() as conn:
        found = conn.execute(q.where(o.c.archived_at.is_(None))).scalar()
    return None if found is None else str(found)


def objective_inputs(
    engine: Engine, as_of: date, cfg: SignalsConfig, objective_ids: Collection[str]
) -> tuple[Structure, dict[str, ItemCounts], Checkins]:
    """`signal_inputs` for the given objectives only: their tree, the item counts of their
    tactics and their key results' newest check-ins by `as_of`."""
    with engine.connect() as conn:
        structure = load_structure(conn, objective_ids)
        counts = item_counts(conn, structure, as_of, cfg, list(structure.tactics))
        checkins = latest_checkins(conn, as_of, structure.key_results)
    return structure, counts, checkins


def kind(name: str) -> Kind:
    """A subject kind, checked."""
    for known in KINDS:
        if name == known:
            return known
    raise ValueError(f"unknown subject kind {name!r}")


def history(engine: Engine, kind: Kind, subject_id: str, limit: int) -> list[Snapshot]:
    """A subject's newest `limit` snapshots of that kind, oldest first."""
    s = SNAPSHOT
    q = (
        sa.select(s.c.subject_type, s.c.subject_id, s.c.as_of, s.c.computed_at, s.c["values"])
        .where(s.c.subject_type == kind, s.c.subject_id == subject_id)
        .order_by(s.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(q))
    return [Snapshot(r[0], r[1], r[2], r[3], dict(r[4])) for r in reversed(rows)]


def data_version(engine: Engine) -> tuple[Any, ...]:
    """What the tree and its signals are read from, fingerprinted in one statement: the
    newest snapshot, the check-ins and their audit, the newest key-result source run (its
    reading time or failure is shown), and each OKR table's size and newest change. Equal
    values: an answer built from them is still current (a cache key)."""
    run = SYNC_RUN.c.connector  # `source:<key result>`, as a range the index answers
    parts: list[sa.ScalarSelect[Any]] = [
        sa.select(sa.func.max(SNAPSHOT.c.id)).scalar_subquery(),
        sa.select(sa.func.max(SYNC_RUN.c.id))
        .where(run >= "source:", run < "source;")
        .scalar_subquery(),
        sa.select(sa.func.count()).select_from(CHECKIN).scalar_subquery(),
        sa.select(sa.func.max(CHECKIN.c.id)).scalar_subquery(),
        sa.select(sa.func.max(CHECKIN_AUDIT.c.id)).scalar_subquery(),
    ]
    for table in (OBJECTIVE, KEY_RESULT, TACTIC):
        parts += [
            sa.select(sa.func.count()).select_from(table).scalar_subquery(),
            sa.select(sa.func.max(table.c.updated_at)).scalar_subquery(),
            sa.select(sa.func.max(table.c.archived_at)).scalar_subquery(),
            sa.select(sa.func.count(table.c.archived_at)).scalar_subquery(),
        ]
    with engine.connect() as conn:
        row = conn.execute(sa.select(*parts)).one()
    return tuple(row)
