"""Derived signals. Outcome progress comes from check-ins only; execution from work items.

The two are computed by separate functions over separate inputs and never combined into one
number: a key result's progress is its metric, task completion stands beside it, and the
divergence flags compare the two.

    tactic        one set-based SQL aggregate per objective period start:
                  DISTINCT (tactic, item) links ⋈ work_item, GROUP BY tactic, CASE sums
    key result    outcome (latest check-in on or before the as-of date) and execution
                  (tactic completion averaged by weight, worst tactic status), flags
    objective     key results' outcome and execution averaged by weight, flags

Definitions follow PRODUCT.md ("Signals", "Precise definitions"). An item's *closing date* is
its `completed_at`, else its last `updated` (trackers do not all stamp dropped items): done
or dropped items closed before the period start are history and leave every count; done
items closed inside the throughput window count as completed there. All dates are UTC
calendar days; every comparison binds a UTC midnight computed here, so the SQL is the same on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.config import SignalsConfig
from okrsync.models import CONTAINER_KINDS
from okrsync.store import Store
from okrsync.store.tables import (
    CHECKIN,
    ITEM_LINK,
    KEY_RESULT,
    OBJECTIVE,
    SNAPSHOT,
    TACTIC,
    WORK_ITEM,
    UTCDateTime,
)

EPS = 1e-9
CHUNK = 1000
Selector = Literal["whole", "ids", "period"]  # which links an aggregate statement reads
CONTAINERS = tuple(sorted(str(k) for k in CONTAINER_KINDS))
STATUS_RANK = {"off_track": 3, "at_risk": 2, "on_track": 1, "done": 0}
TACTIC_SIGNALS = (
    "items_total",
    "items_done",
    "items_in_progress",
    "items_todo",
    "items_dropped",
    "completion",
    "estimate_total",
    "estimate_done",
    "items_unestimated",
    "throughput_per_week",
    "scope_added",
    "overdue",
    "stale",
    "last_activity",
    "forecast_finish",
    "execution_status",
)


def outcome_progress(
    start: float, target: float, current: float | None, direction: str
) -> float | None:
    """(current − start) / (target − start), clamped to 0..1; None without a check-in.

    With target == start the key result is 1 once reached in its direction, else 0.
    """
    if current is None:
        return None
    if target == start:
        reached = current >= target if direction == "increase" else current <= target
        return 1.0 if reached else 0.0
    return min(1.0, max(0.0, (current - start) / (target - start)))


def today() -> date:
    """Today's UTC calendar date: the default as-of date."""
    return datetime.now(UTC).date()


def midnight(day: date) -> datetime:
    """The aware UTC instant a calendar day starts."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# -- the shapes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @property
    def length(self) -> int:
        """L = end − start, in days."""
        return (self.end - self.start).days

    def expected(self, as_of: date) -> float:
        """The elapsed share of the period, clamped to 0..1."""
        if self.length <= 0:
            return 1.0 if as_of >= self.start else 0.0
        return min(1.0, max(0.0, (as_of - self.start).days / self.length))


@dataclass(frozen=True)
class ItemCounts:
    """One tactic's row of the SQL aggregate (counted items only)."""

    total: int = 0
    done: int = 0
    in_progress: int = 0
    todo: int = 0
    dropped: int = 0
    estimate_total: float = 0.0
    estimate_done: float = 0.0
    unestimated: int = 0
    done_in_window: int = 0
    scope_added: int = 0
    overdue: int = 0
    stale: int = 0
    last_activity: datetime | None = None

    @property
    def remaining(self) -> int:
        return self.total - self.done


@dataclass(frozen=True)
class TacticSignals:
    """Exactly the per-tactic signals of PRODUCT.md, in its order."""

    items_total: int
    items_done: int
    items_in_progress: int
    items_todo: int
    items_dropped: int
    completion: float | None
    estimate_total: float
    estimate_done: float
    items_unestimated: int
    throughput_per_week: float
    scope_added: int
    overdue: int
    stale: int
    last_activity: datetime | None
    forecast_finish: date | None
    execution_status: str

    def as_json(self) -> dict[str, Any]:
        """JSON-ready values in TACTIC_SIGNALS order: dates and timestamps as ISO 8601."""
        return {
            "items_total": self.items_total,
            "items_done": self.items_done,
            "items_in_progress": self.items_in_progress,
            "items_todo": self.items_todo,
            "items_dropped": self.items_dropped,
            "completion": self.completion,
            "estimate_total": self.estimate_total,
            "estimate_done": self.estimate_done,
            "items_unestimated": self.items_unestimated,
            "throughput_per_week": self.throughput_per_week,
            "scope_added": self.scope_added,
            "overdue": self.overdue,
            "stale": self.stale,
            "last_activity": _jsonable(self.last_activity),
            "forecast_finish": _jsonable(self.forecast_finish),
            "execution_status": self.execution_status,
        }


@dataclass(frozen=True)
class Outcome:
    start: float
    target: float
    current: float | None
    direction: str
    progress: float | None
    expected: float
    status: str
    checked_in_at: datetime | None = None


@dataclass(frozen=True)
class Execution:
    completion: float | None
    status: str
    tactics_with_data: int

    def as_json(self) -> dict[str, Any]:
        return {
            "completion": self.completion,
            "status": self.status,
            "tactics_with_data": self.tactics_with_data,
        }


@dataclass(frozen=True)
class KeyResultSignals:
    outcome: Outcome
    execution: Execution
    flags: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "outcome": {
                "start": o.start,
                "target": o.target,
                "current": o.current,
                "direction": o.direction,
                "progress": o.progress,
                "expected": o.expected,
                "status": o.status,
                "checked_in_at": _jsonable(o.checked_in_at),
            },
            "execution": self.execution.as_json(),
            "flags": list(self.flags),
        }


@dataclass(frozen=True)
class ObjectiveOutcome:
    progress: float | None
    expected: float
    status: str


@dataclass(frozen=True)
class ObjectiveSignals:
    outcome: ObjectiveOutcome
    execution: Execution
    flags: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "outcome": {"progress": o.progress, "expected": o.expected, "status": o.status},
            "execution": self.execution.as_json(),
            "flags": list(self.flags),
        }


@dataclass(frozen=True)
class ObjectiveInfo:
    id: str
    title: str
    owner: str | None
    period: str | None
    start: date
    end: date
    parent: str | None
    weight: float


@dataclass(frozen=True)
class KeyResultInfo:
    id: str
    objective_id: str
    title: str
    unit: str | None
    start: float
    target: float
    direction: str
    weight: float


@dataclass(frozen=True)
class TacticInfo:
    id: str
    key_result_id: str
    title: str
    weight: float


@dataclass
class Structure:
    """The active OKR tree (archived rows and their descendants left out), ordered by id."""

    objectives: dict[str, ObjectiveInfo] = field(default_factory=dict)
    key_results: dict[str, KeyResultInfo] = field(default_factory=dict)
    tactics: dict[str, TacticInfo] = field(default_factory=dict)

    def period_of_tactic(self, tactic_id: str) -> Period:
        kr = self.key_results[self.tactics[tactic_id].key_result_id]
        obj = self.objectives[kr.objective_id]
        return Period(obj.start, obj.end)


@dataclass
class SignalSet:
    """Signals of every subject computed in one pass, with the tree they belong to."""

    as_of: date
    structure: Structure
    tactics: dict[str, TacticSignals] = field(default_factory=dict)
    key_results: dict[str, KeyResultSignals] = field(default_factory=dict)
    objectives: dict[str, ObjectiveSignals] = field(default_factory=dict)

    def subjects(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(subject_type, id, JSON values) of every subject: what a snapshot stores."""
        for tid, ts in self.tactics.items():
            yield "tactic", tid, ts.as_json()
        for kid, ks in self.key_results.items():
            yield "key_result", kid, ks.as_json()
        for oid, os_ in self.objectives.items():
            yield "objective", oid, os_.as_json()


@dataclass(frozen=True)
class RecomputeReport:
    as_of: date
    tactics: int
    key_results: int
    objectives: int
    snapshots_written: int
    seconds: float


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


# -- pure signal functions -------------------------------------------------------------------


def forecast_finish(counts: ItemCounts, as_of: date, window_days: int) -> date | None:
    """as-of + floor(remaining × window ÷ completed-in-window) days; None if either is 0."""
    if counts.remaining <= 0 or counts.done_in_window <= 0:
        return None
    return as_of + timedelta(days=counts.remaining * window_days // counts.done_in_window)


def execution_status(
    counts: ItemCounts, forecast: date | None, period: Period, at_risk_share: float
) -> str:
    """no_data → done → off_track (nothing completed) → on_track → at_risk → off_track."""
    if counts.total == 0:
        return "no_data"
    if counts.remaining <= 0:
        return "done"
    if forecast is None:
        return "off_track"
    if forecast <= period.end:
        return "on_track"
    if (forecast - period.end).days <= at_risk_share * period.length + EPS:
        return "at_risk"
    return "off_track"


def tactic_signals(
    counts: ItemCounts, period: Period, as_of: date, cfg: SignalsConfig
) -> TacticSignals:
    """A tactic's signals from its aggregated item counts."""
    forecast = forecast_finish(counts, as_of, cfg.throughput_window_days)
    return TacticSignals(
        items_total=counts.total,
        items_done=counts.done,
        items_in_progress=counts.in_progress,
        items_todo=counts.todo,
        items_dropped=counts.dropped,
        completion=counts.done / counts.total if counts.total else None,
        estimate_total=counts.estimate_total,
        estimate_done=counts.estimate_done,
        items_unestimated=counts.unestimated,
        throughput_per_week=counts.done_in_window * 7 / cfg.throughput_window_days,
        scope_added=counts.scope_added,
        overdue=counts.overdue,
        stale=counts.stale,
        last_activity=counts.last_activity,
        forecast_finish=forecast,
        execution_status=execution_status(counts, forecast, period, cfg.at_risk_share),
    )


def outcome_status(progress: float | None, expected: float, margin: float) -> str:
    """done (1) → on_track (≥ expected) → at_risk (≥ expected − margin) → off_track."""
    if progress is None:
        return "no_data"
    if progress >= 1 - EPS:
        return "done"
    if progress >= expected - EPS:
        return "on_track"
    if progress >= expected - margin - EPS:
        return "at_risk"
    return "off_track"


def weighted_mean(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    """Mean of the non-null values by weight; all-zero weights → plain mean; none → None."""
    have = [(v, w) for v, w in pairs if v is not None]
    if not have:
        return None
    total = sum(w for _, w in have)
    if total <= 0:
        return sum(v for v, _ in have) / len(have)
    return sum(v * w for v, w in have) / total


def worst_status(statuses: Iterable[str]) -> str:
    """The worst of the statuses with data (off_track > at_risk > on_track > done)."""
    ranked = [s for s in statuses if s in STATUS_RANK]
    return max(ranked, key=STATUS_RANK.__getitem__) if ranked else "no_data"


def divergence(outcome: float | None, execution: float | None, threshold: float) -> tuple[str, ...]:
    """`output_without_outcome` / `outcome_without_output`; none when a side is null."""
    if outcome is None or execution is None:
        return ()
    if execution - outcome >= threshold - EPS:
        return ("output_without_outcome",)
    if outcome - execution >= threshold - EPS:
        return ("outcome_without_output",)
    return ()


def execution_of(tactics: Sequence[tuple[TacticSignals, float]]) -> Execution:
    """Tactic completion averaged by weight over tactics with data; the worst status."""
    have = [(t, w) for t, w in tactics if t.completion is not None]
    return Execution(
        completion=weighted_mean((t.completion, w) for t, w in have),
        status=worst_status(t.execution_status for t, _ in have),
        tactics_with_data=len(have),
    )


def key_result_signals(
    kr: KeyResultInfo,
    period: Period,
    latest: tuple[float, datetime] | None,
    tactics: Sequence[tuple[TacticSignals, float]],
    as_of: date,
    cfg: SignalsConfig,
) -> KeyResultSignals:
    """Outcome from the check-in, execution from the tactics, side by side, and the flags."""
    current, at = latest if latest else (None, None)
    progress = outcome_progress(kr.start, kr.target, current, kr.direction)
    expected = period.expected(as_of)
    outcome = Outcome(
        kr.start,
        kr.target,
        current,
        kr.direction,
        progress,
        expected,
        outcome_status(progress, expected, cfg.outcome_at_risk_margin),
        at,
    )
    execution = execution_of(tactics)
    flags = divergence(progress, execution.completion, cfg.divergence_threshold)
    return KeyResultSignals(outcome, execution, flags)


def objective_signals(
    period: Period,
    key_results: Sequence[tuple[KeyResultSignals, float]],
    as_of: date,
    cfg: SignalsConfig,
) -> ObjectiveSignals:
    """Key results' outcome progress and execution, each averaged by key-result weight."""
    progress = weighted_mean((k.outcome.progress, w) for k, w in key_results)
    expected = period.expected(as_of)
    completion = weighted_mean((k.execution.completion, w) for k, w in key_results)
    have = [k for k, _ in key_results if k.execution.completion is not None]
    execution = Execution(completion, worst_status(k.execution.status for k in have), len(have))
    outcome = ObjectiveOutcome(
        progress, expected, outcome_status(progress, expected, cfg.outcome_at_risk_margin)
    )
    return ObjectiveSignals(
        outcome, execution, divergence(progress, completion, cfg.divergence_threshold)
    )


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
    "id", "objective_id", "title", "unit", "start_value", "target_value", "direction", "weight"
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
    for chunk in _chunks(sorted(tactic_ids)):
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
    for chunk in _chunks(sorted(key_result_ids)):
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


@cache
def _aggregate_statement(selector: Selector) -> sa.Select[Any]:
    """One GROUP BY over DISTINCT (tactic, item) links ⋈ work_item for tactics sharing a
    period start: every count is a conditional sum, every date a bound parameter.

    Built once per selector — "whole" (every link), "ids" (the expanding `tactic_ids`),
    "period" (the active tactics whose objective starts on `period_day`) — and executed with
    `_aggregate_params`: an incremental recompute neither rebuilds nor re-keys it."""
    link, twin = ITEM_LINK, ITEM_LINK.alias("twin")
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
    w = WORK_ITEM
    status = w.c.status
    closed = sa.func.coalesce(w.c.completed_at, w.c.updated)
    period_dt = sa.bindparam("period_start", type_=UTCDateTime)
    window_start = sa.bindparam("window_start", type_=UTCDateTime)
    as_of_end = sa.bindparam("as_of_end", type_=UTCDateTime)
    stale_before = sa.bindparam("stale_before", type_=UTCDateTime)
    as_of = sa.bindparam("as_of", type_=sa.Date)
    live = status != "dropped"
    open_ = status.in_(("todo", "in_progress"))
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
            _count(live).label("total"),
            _count(status == "done").label("done"),
            _count(status == "in_progress").label("in_progress"),
            _count(status == "todo").label("todo"),
            _count(status == "dropped").label("dropped"),
            _sum(live, w.c.estimate).label("estimate_total"),
            _sum(status == "done", w.c.estimate).label("estimate_done"),
            _count(sa.and_(live, w.c.estimate.is_(None))).label("unestimated"),
            _count(sa.and_(status == "done", closed >= window_start, closed < as_of_end)).label(
                "done_in_window"
            ),
            _count(sa.and_(live, w.c.created >= period_dt)).label("scope_added"),
            _count(sa.and_(open_, w.c.due < as_of)).label("overdue"),
            _count(sa.and_(status == "in_progress", w.c.updated < stale_before)).label("stale"),
            sa.func.max(w.c.updated).label("last_activity"),
        )
        .select_from(w)
        .join(
            link, sa.and_(link.c.connector == w.c.connector, link.c.external_id == w.c.external_id)
        )
        .where(
            wanted,
            first_rule,
            w.c.deleted_at.is_(None),
            w.c.kind.not_in(CONTAINERS),
            sa.or_(open_, closed >= period_dt),
        )
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
            batches = [{**params, "tactic_ids": chunk} for chunk in _chunks(sorted(ids))]
            stmt = _aggregate_statement("ids")
        else:  # no filter for one period; a subquery per period when they differ
            batches = [params]
            stmt = _aggregate_statement("whole" if len(by_start) == 1 else "period")
        for batch in batches:
            for row in conn.execute(stmt, batch):
                if row.tactic_id in structure.tactics:
                    found[row.tactic_id] = _counts_from_row(row)
    return found


def _tactics_starting(day: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """The active tactics whose objective starts on `day`."""
    return (
        sa.select(TACTIC.c.id)
        .join(KEY_RESULT, KEY_RESULT.c.id == TACTIC.c.key_result_id)
        .join(OBJECTIVE, OBJECTIVE.c.id == KEY_RESULT.c.objective_id)
        .where(
            TACTIC.c.archived_at.is_(None),
            KEY_RESULT.c.archived_at.is_(None),
            OBJECTIVE.c.archived_at.is_(None),
            OBJECTIVE.c.period_start == day,
        )
    )


def _chunks(seq: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


# -- the public entry points -------------------------------------------------------------------


# The incremental path reads a few thousand scattered pages (each restricted tactic's links,
# their items); after any write SQLite drops the connection's page cache, so each comes back
# as a system call and a copy. Memory-mapped, they are read in place: about 40 % off the
# restricted aggregate. The map lasts for the read only (the daemon's RSS stays as it was);
# the full path scans work_item in order and gains nothing from it. Capped by SQLite.
SQLITE_MMAP_BYTES = 1 << 30


@contextmanager
def _reading(store: Store, *, mapped: bool) -> Iterator[Connection]:
    """A connection for the signal reads; on SQLite memory-mapped if `mapped`."""
    with store.engine.connect() as conn:
        if not mapped or store.dialect != "sqlite":
            yield conn
            return
        before = int(conn.exec_driver_sql("PRAGMA mmap_size").scalar_one())
        conn.exec_driver_sql(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        try:
            yield conn
        finally:
            conn.exec_driver_sql(f"PRAGMA mmap_size={before}")


def compute(
    store: Store,
    as_of: date | None = None,
    cfg: SignalsConfig | None = None,
    tactic_ids: Collection[str] | None = None,
) -> SignalSet:
    """Signals of the whole tree, or (with `tactic_ids`) of the objectives those tactics roll
    up into: every tactic of those objectives, their key results and the objectives."""
    as_of = as_of or today()
    cfg = cfg or SignalsConfig()
    with _reading(store, mapped=tactic_ids is not None) as conn:
        scope = None if tactic_ids is None else objectives_of_tactics(conn, tactic_ids)
        structure = load_structure(conn, scope)
        restrict = None if scope is None else list(structure.tactics)
        counts = item_counts(conn, structure, as_of, cfg, restrict)
        checkins = latest_checkins(conn, as_of, structure.key_results)
    return roll_up(structure, counts, checkins, as_of, cfg)


def roll_up(
    structure: Structure,
    counts: Mapping[str, ItemCounts],
    checkins: Mapping[str, tuple[float, datetime]],
    as_of: date,
    cfg: SignalsConfig,
) -> SignalSet:
    """Pure: tactic signals from counts, then key results, then objectives."""
    out = SignalSet(as_of, structure)
    empty = ItemCounts()
    periods = {oid: Period(o.start, o.end) for oid, o in structure.objectives.items()}
    tactics_of: dict[str, list[tuple[TacticSignals, float]]] = defaultdict(list)
    for tid, t in structure.tactics.items():
        period = periods[structure.key_results[t.key_result_id].objective_id]
        ts = tactic_signals(counts.get(tid, empty), period, as_of, cfg)
        out.tactics[tid] = ts
        tactics_of[t.key_result_id].append((ts, t.weight))
    krs_of: dict[str, list[tuple[KeyResultSignals, float]]] = defaultdict(list)
    for kid, kr in structure.key_results.items():
        period = periods[kr.objective_id]
        ks = key_result_signals(kr, period, checkins.get(kid), tactics_of[kid], as_of, cfg)
        out.key_results[kid] = ks
        krs_of[kr.objective_id].append((ks, kr.weight))
    for oid, period in periods.items():
        out.objectives[oid] = objective_signals(period, krs_of[oid], as_of, cfg)
    return out


def tactics_for_items(store: Store, connector: str, external_ids: Iterable[str]) -> set[str]:
    """The tactics the given items are linked to (for the incremental path after a sync)."""
    q = sa.select(ITEM_LINK.c.tactic_id).where(ITEM_LINK.c.connector == connector).distinct()
    found: set[str] = set()
    with store.engine.connect() as conn:
        for chunk in _chunks(sorted(set(external_ids))):
            found.update(conn.execute(q.where(ITEM_LINK.c.external_id.in_(chunk))).scalars())
    return found


def recompute(
    store: Store,
    as_of: date | None = None,
    cfg: SignalsConfig | None = None,
    changed_tactics: Collection[str] | None = None,
) -> RecomputeReport:
    """Compute (everything, or what `changed_tactics` affects) and snapshot what changed."""
    started = time.perf_counter()
    as_of = as_of or today()
    if changed_tactics is not None and not changed_tactics:
        return RecomputeReport(as_of, 0, 0, 0, 0, time.perf_counter() - started)
    signals = compute(store, as_of, cfg, changed_tactics)
    written = write_snapshots(store, signals)
    return RecomputeReport(
        as_of,
        len(signals.tactics),
        len(signals.key_results),
        len(signals.objectives),
        written,
        time.perf_counter() - started,
    )


# -- snapshots ---------------------------------------------------------------------------------


# What json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=False) builds on
# every call, built once.
_DIGEST_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest(values: Mapping[str, Any]) -> str:
    """A stable hash of a subject's values (sorted keys, compact JSON)."""
    return hashlib.sha256(_DIGEST_JSON.encode(values).encode()).hexdigest()


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
    for chunk in _chunks(sorted(subject_ids)):
        sub = newest.where(s.c.subject_id.in_(chunk))
        rows = conn.execute(q.where(s.c.id.in_(sub)))
        found.update({(r.subject_type, r.subject_id): r.digest for r in rows})
    return found


def write_snapshots(store: Store, signals: SignalSet) -> int:
    """Insert a snapshot for every subject whose values differ from its newest one."""
    subjects = list(signals.subjects())
    full = len(signals.structure.tactics) > 5 * CHUNK
    ids = None if full else {sid for _, sid, _ in subjects}
    computed_at = datetime.now(UTC)
    with store.tx() as conn:
        known = latest_digests(conn, ids)
        rows = [
            {
                "subject_type": kind,
                "subject_id": sid,
                "as_of": signals.as_of,
                "computed_at": computed_at,
                "digest": d,
                "values": values,
            }
            for kind, sid, values in subjects
            if known.get((kind, sid)) != (d := digest(values))
        ]
        if rows:
            conn.execute(sa.insert(SNAPSHOT), rows)
    return len(rows)


@dataclass(frozen=True)
class Snapshot:
    subject_type: str
    subject_id: str
    as_of: date
    computed_at: datetime
    values: dict[str, Any]


def history(store: Store, subject_id: str, limit: int = 20) -> list[Snapshot]:
    """A subject's newest `limit` snapshots, oldest first (tactics and key results alike)."""
    s = SNAPSHOT
    q = (
        sa.select(s.c.subject_type, s.c.subject_id, s.c.as_of, s.c.computed_at, s.c["values"])
        .where(s.c.subject_id == subject_id)
        .order_by(s.c.id.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = list(conn.execute(q))
    return [Snapshot(r[0], r[1], r[2], r[3], dict(r[4])) for r in reversed(rows)]


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"outcome": {"progress": 0.5}}` → `{"outcome.progress": 0.5}` (lists kept whole)."""
    flat: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, Mapping):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat
