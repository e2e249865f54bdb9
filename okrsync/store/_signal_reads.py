"""Signal reads: the active OKR tree, the set-based aggregate of linked items per tactic,
the newest check-ins, and the tactics items are linked to. `okrsync.signals` computes signals
from what these return (the value types live in `okrsync.signal_types`); no statement lives there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from okrsync.config import SignalsConfig
from okrsync.models import CONTAINER_KINDS
from okrsync.signal_types import (
    ItemCounts,
    KeyResultInfo,
    ObjectiveInfo,
    Structure,
    TacticInfo,
    midnight,
)
from okrsync.store._sql import chunks
from okrsync.store.tables import (
    CHECKIN,
    ITEM_LINK,
    KEY_RESULT,
    OBJECTIVE,
    TACTIC,
    WORK_ITEM,
    UTCDateTime,
)

CHUNK = 1000
CONTAINERS = tuple(sorted(str(k) for k in CONTAINER_KINDS))
Selector = Literal["whole", "ids", "period"]  # which links an aggregate statement reads

# -- reading the tree --------------------------------------------------------------------------


OBJECTIVE_COLS = (
    "id",
    "title",
    "owner",
    "period",
    "period_start",
    "period_end",
    "parent_id",
    "weight",
)
KEY_RESULT_COLS = (
    "id", "objective_id", "title", "unit", "start_value", "target_value", "direction", "weight",
    "owner",
)  # fmt: skip


def load_structure(conn: Connection, objective_ids: Collection[str] | None = None) -> Structure:
    """The active tree, or only the given objectives' part of it."""
    o, k, t = OBJECTIVE, KEY_RESULT, TACTIC
    oq = sa.select(*(o.c[n] for n in OBJECTIVE_COLS)).where(o.c.archived_at.is_(None))
    oq = oq.order_by(o.c.id)
    kq = (
        sa.select(*(k.c[n] for n in KEY_RESULT_COLS))
        .join(o, o.c.id == k.c.objective_id)
        .where(k.c.archived_at.is_(None), o.c.archived_at.is_(None))
        .order_by(k.c.id)
    )
    tq = sa.select(t.c.id, t.c.key_result_id, t.c.title, t.c.weight).join(
        k, k.c.id == t.c.key_result_id
    )
    tq = tq.where(t.c.archived_at.is_(None)).order_by(t.c.id)
    if objective_ids is not None:
        oq = oq.where(o.c.id.in_(objective_ids))
        kq = kq.where(k.c.objective_id.in_(objective_ids))
        tq = tq.where(k.c.objective_id.in_(objective_ids))
    s = Structure()
    s.objectives = {r[0]: ObjectiveInfo(*r) for r in conn.execute(oq)}
    s.key_results = {r[0]: KeyResultInfo(*r) for r in conn.execute(kq)}
    s.tactics = {r[0]: TacticInfo(*r) for r in conn.execute(tq) if r[1] in s.key_results}
    return s


def objectives_of_tactics(conn: Connection, tactic_ids: Collection[str]) -> set[str]:
    """The objectives the given tactics roll up into."""
    q = sa.select(KEY_RESULT.c.objective_id).join(TACTIC, TACTIC.c.key_result_id == KEY_RESULT.c.id)
    found: set[str] = set()
    for chunk in chunks(sorted(tactic_ids), CHUNK):
        found.update(conn.execute(q.where(TACTIC.c.id.in_(chunk)).distinct()).scalars())
    return found


def latest_checkins(
    conn: Connection, as_of: date, key_result_ids: Collection[str]
) -> dict[str, tuple[float, datetime]]:
    """Each key result's newest check-in recorded on or before the as-of date (read only)."""
    c = CHECKIN
    q = (
        sa.select(c.c.key_result_id, c.c.value, c.c.recorded_at)
        .where(c.c.recorded_at < midnight(as_of + timedelta(days=1)))
        .order_by(c.c.recorded_at, c.c.id)
    )
    found: dict[str, tuple[float, datetime]] = {}
    for chunk in chunks(sorted(key_result_ids), CHUNK):
        for r in conn.execute(q.where(c.c.key_result_id.in_(chunk))):
            found[r.key_result_id] = (r.value, r.recorded_at)
    return found


# -- the set-based aggregate -------------------------------------------------------------------


def _count(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)


def _sum(cond: sa.ColumnElement[bool], value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((cond, value), else_=None)), 0.0)


def _aggregate_params(period_start: date, as_of: date, cfg: SignalsConfig) -> dict[str, Any]:
    """The bound values of `_aggregate_statement`: UTC midnights computed here."""
    return {
        "period_start": midnight(period_start),
        "window_start": midnight(as_of - timedelta(days=cfg.throughput_window_days - 1)),
        "as_of_end": midnight(as_of + timedelta(days=1)),
        "stale_before": midnight(as_of - timedelta(days=cfg.stale_days - 1)),
        "as_of": as_of,
        "period_day": period_start,
    }


@dataclass(frozen=True)
class Counting:
    """The predicates every tactic count is made of, over `work_item` ⋈ `item_link` and the
    bound parameters of `_aggregate_params`. The aggregate sums them; `_item_reads` lists the
    items they hold (`okrsync items`), so a count and its drill-down list cannot disagree."""

    present: sa.ColumnElement[bool]  # not deleted, not a container
    counted: sa.ColumnElement[bool]  # present, and not history (closed before the period)
    first_rule: sa.ColumnElement[bool]  # an item linked by several rules: its lowest rule
    counts: dict[str, sa.ColumnElement[bool]]  # aggregate column → the items it counts


def counting() -> Counting:
    """`Counting` over `WORK_ITEM` and `ITEM_LINK`, with fresh bound parameters."""
    link, twin, w = ITEM_LINK, ITEM_LINK.alias("twin"), WORK_ITEM
    # An item linked by several rules counts once: keep only its link with the lowest rule.
    first_rule = ~(
        sa.select(twin.c.rule_id)
        .where(
            twin.c.connector == link.c.connector,
            twin.c.external_id == link.c.external_id,
            twin.c.tactic_id == link.c.tactic_id,
            twin.c.rule_id < link.c.rule_id,
        )
        .exists()
    )
    status = w.c.status
    closed = sa.func.coalesce(w.c.completed_at, w.c.updated)
    period_dt = sa.bindparam("period_start", type_=UTCDateTime)
    window_start = sa.bindparam("window_start", type_=UTCDateTime)
    as_of_end = sa.bindparam("as_of_end", type_=UTCDateTime)
    stale_before = sa.bindparam("stale_before", type_=UTCDateTime)
    as_of = sa.bindparam("as_of", type_=sa.Date)
    live = status != "dropped"
    open_ = status.in_(("todo", "in_progress"))
    present = sa.and_(w.c.deleted_at.is_(None), w.c.kind.not_in(CONTAINERS))
    counts: dict[str, sa.ColumnElement[bool]] = {
        "total": live,
        "done": status == "done",
        "in_progress": status == "in_progress",
        "todo": status == "todo",
        "dropped": status == "dropped",
        "unestimated": sa.and_(live, w.c.estimate.is_(None)),
        "done_in_window": sa.and_(status == "done", closed >= window_start, closed < as_of_end),
        "scope_added": sa.and_(live, w.c.created >= period_dt),
        "overdue": sa.and_(open_, w.c.due < as_of),
        "stale": sa.and_(status == "in_progress", w.c.updated < stale_before),
    }
    counted = sa.and_(present, sa.or_(open_, closed >= period_dt))
    return Counting(present, counted, first_rule, counts)


@cache
def _aggregate_statement(selector: Selector) -> sa.Select[Any]:
    """One GROUP BY over DISTINCT (tactic, item) links ⋈ work_item for tactics sharing a
    period start: every count is a conditional sum of a `counting()` predicate, every date a
    bound parameter.

    Built once per selector — "whole" (every link), "ids" (the expanding `tactic_ids`),
    "period" (the active tactics whose objective starts on `period_day`) — and executed with
    `_aggregate_params`: an incremental recompute neither rebuilds nor re-keys it."""
    link, w, p = ITEM_LINK, WORK_ITEM, counting()
    # Grouping on an expression keeps SQLite from walking item_link in tactic order to skip
    # the sort (a random item lookup per link, ten times slower): it scans work_item and
    # probes the links' primary key instead. PostgreSQL hash-aggregates either way.
    tactic = sa.func.coalesce(link.c.tactic_id, sa.literal_column("''"))
    wanted: sa.ColumnElement[bool] = sa.true()
    if selector == "ids":
        wanted = link.c.tactic_id.in_(sa.bindparam("tactic_ids", expanding=True))
    elif selector == "period":
        wanted = link.c.tactic_id.in_(_tactics_starting(sa.bindparam("period_day", type_=sa.Date)))
    return (
        sa.select(
            tactic.label("tactic_id"),
            *(_count(cond).label(name) for name, cond in p.counts.items()),
            _sum(p.counts["total"], w.c.estimate).label("estimate_total"),
            _sum(p.counts["done"], w.c.estimate).label("estimate_done"),
            sa.func.max(w.c.updated).label("last_activity"),
        )
        .select_from(w)
        .join(
            link, sa.and_(link.c.connector == w.c.connector, link.c.external_id == w.c.external_id)
        )
        .where(wanted, p.first_rule, p.counted)
        .group_by(tactic)
    )


# Sums of fractional estimates differ in the last bits with the order SQL adds them (plans,
# backends, full vs incremental): rounded, a recompute of unchanged data is the same value and
# writes no snapshot.
ESTIMATE_DIGITS = 6


def _counts_from_row(row: Any) -> ItemCounts:
    return ItemCounts(
        int(row.total), int(row.done), int(row.in_progress), int(row.todo), int(row.dropped),
        round(float(row.estimate_total), ESTIMATE_DIGITS),
        round(float(row.estimate_done), ESTIMATE_DIGITS), int(row.unestimated),
        int(row.done_in_window), int(row.scope_added), int(row.overdue), int(row.stale),
        row.last_activity,
    )  # fmt: skip


def item_counts(
    conn: Connection,
    structure: Structure,
    as_of: date,
    cfg: SignalsConfig,
    tactic_ids: Collection[str] | None = None,
) -> dict[str, ItemCounts]:
    """Counts for the structure's tactics (or `tactic_ids`): one query per period start,
    a chunked IN list when restricted to a few tactics."""
    by_start: dict[date, list[str]] = defaultdict(list)
    wanted = structure.tactics if tactic_ids is None else tactic_ids
    for tid in wanted:
        if tid in structure.tactics:
            by_start[structure.period_of_tactic(tid).start].append(tid)
    found: dict[str, ItemCounts] = {}
    for start, ids in by_start.items():
        params = _aggregate_params(start, as_of, cfg)
        if tactic_ids is not None:  # a few tactics, as bound ids
            batches = [{**params, "tactic_ids": chunk} for chunk in chunks(sorted(ids), CHUNK)]
            stmt = _aggregate_statement("ids")
        else:  # no filter for one period; a subquery per period when they differ
            batches = [params]
            stmt = _aggregate_statement("whole" if len(by_start) == 1 else "period")
        for batch in batches:
            for row in conn.execute(stmt, batch):
                if row.tactic_id in structure.tactics:
                    found[row.tactic_id] = _counts_from_row(row)
    return found


def active_tactics() -> sa.Select[Any]:
    """The ids of tactics that are active with their key result and objective."""
    return (
        sa.select(TACTIC.c.id)
        .join(KEY_RESULT, KEY_RESULT.c.id == TACTIC.c.key_result_id)
        .join(OBJECTIVE, OBJECTIVE.c.id == KEY_RESULT.c.objective_id)
        .where(
            TACTIC.c.archived_at.is_(None),
            KEY_RESULT.c.archived_at.is_(None),
            OBJECTIVE.c.archived_at.is_(None),
        )
    )


def _tactics_starting(day: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """The active tactics whose objective starts on `day`."""
    return active_tactics().where(OBJECTIVE.c.period_start == day)


# The incremental path reads a few thousand scattered pages (each restricted tactic's links,
# their items); after any write SQLite drops the connection's page cache, so each comes back
# as a system call and a copy. Memory-mapped, they are read in place: about 40 % off the
# restricted aggregate. The map lasts for the read only (the daemon's RSS stays as it was);
# the full path scans work_item in order and gains nothing from it. Capped by SQLite.
SQLITE_MMAP_BYTES = 1 << 30


@contextmanager
def _reading(engine: Engine, *, mapped: bool) -> Iterator[Connection]:
    """A connection for the signal reads; on SQLite memory-mapped if `mapped`."""
    with engine.connect() as conn:
        if not mapped or engine.dialect.name != "sqlite":
            yield conn
            return
        before = int(conn.exec_driver_sql("PRAGMA mmap_size").scalar_one())
        conn.exec_driver_sql(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        try:
            yield conn
        finally:
            conn.exec_driver_sql(f"PRAGMA mmap_size={before}")


def signal_inputs(
    engine: Engine,
    as_of: date,
    cfg: SignalsConfig,
    tactic_ids: Collection[str] | None = None,
) -> tuple[Structure, dict[str, ItemCounts], dict[str, tuple[float, datetime]]]:
    """What signals are computed from: the tree (whole, or the objectives `tactic_ids` roll up
    into), item counts per tactic and each key result's newest check-in by `as_of`."""
    with _reading(engine, mapped=tactic_ids is not None) as conn:
        scope = None if tactic_ids is None else objectives_of_tactics(conn, tactic_ids)
        structure = load_structure(conn, scope)
        restrict = None if scope is None else list(structure.tactics)
        counts = item_counts(conn, structure, as_of, cfg, restrict)
        checkins = latest_checkins(conn, as_of, structure.key_results)
    return structure, counts, checkins


def linked_tactics(engine: Engine, connector: str, external_ids: Iterable[str]) -> set[str]:
    """The tactics the given items are linked to (for the incremental path after a sync)."""
    q = sa.select(ITEM_LINK.c.tactic_id).where(ITEM_LINK.c.connector == connector).distinct()
    found: set[str] = set()
    with engine.connect() as conn:
        for chunk in chunks(sorted(set(external_ids)), CHUNK):
            found.update(conn.execute(q.where(ITEM_LINK.c.external_id.in_(chunk))).scalars())
    return found
