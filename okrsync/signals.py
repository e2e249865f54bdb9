"""Derived signals. Outcome progress comes from check-ins only; execution from work items.

The two are computed by separate functions over separate inputs and never combined into one
number: a key result's progress is its metric, task completion stands beside it, and the
divergence flags compare the two.

    tactic        counts from one set-based SQL aggregate per objective period start, run
                  by the store (`Store.signal_inputs`) and passed in as plain values:
                  DISTINCT (tactic, item) links ⋈ work_item, GROUP BY tactic, CASE sums
    key result    outcome (latest check-in on or before the as-of date) and execution
                  (tactic completion averaged by weight, worst tactic status), flags
    objective     key results' outcome and execution averaged by weight, flags

Definitions: docs/signals.md. An item's *closing date* is
its `completed_at`, else its last `updated` (trackers do not all stamp dropped items): done
or dropped items closed before the period start are history and leave every count; done
items closed inside the throughput window count as completed there. All dates are UTC
calendar days; every comparison binds a UTC midnight (`midnight`), so the SQL is the same on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from okrsync.config import SignalsConfig
from okrsync.signal_types import (
    ItemCounts,
    KeyResultInfo,
    Period,
    SourceRuns,
    Structure,
    Subject,
)

EPS = 1e-9
CHUNK = 1000
STALE_INTERVALS = 3  # a source with no good reading for this many schedule intervals is stale
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


# -- the shapes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TacticSignals:
    """Exactly the per-tactic signals of docs/signals.md, in its order."""

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
    return execution_decision(counts, forecast, period, at_risk_share)[0]


def execution_decision(
    counts: ItemCounts, forecast: date | None, period: Period, at_risk_share: float
) -> tuple[str, str]:
    """The execution status and the clause of docs/signals.md that decided it."""
    if counts.total == 0:
        return "no_data", "no items"
    if counts.remaining <= 0:
        return "done", "nothing remaining"
    if forecast is None:
        return "off_track", "nothing done in the window"
    if forecast <= period.end:
        return "on_track", "forecast on or before the period end"
    if (forecast - period.end).days <= at_risk_share * period.length + EPS:
        return "at_risk", "forecast after the period end, within at_risk_share × L"
    return "off_track", "forecast after the period end by more than at_risk_share × L"


@dataclass(frozen=True)
class StatusFigures:
    """The figures a tactic's execution status was decided from, as `tactic_signals`
    computes them (`okrsync explain --tactic` prints these)."""

    counts: ItemCounts
    period: Period
    as_of: date
    window_days: int  # [signals] throughput_window_days
    at_risk_share: float  # [signals] at_risk_share
    throughput_per_week: float
    forecast: date | None
    status: str
    clause: str

    @property
    def at_risk_days(self) -> float:
        """How far past the period end a forecast may fall and still be at_risk."""
        return self.at_risk_share * self.period.length


def status_figures(
    counts: ItemCounts, period: Period, as_of: date, cfg: SignalsConfig
) -> StatusFigures:
    """A tactic's execution status with the figures and thresholds behind it: the very
    functions and inputs `tactic_signals` uses."""
    forecast = forecast_finish(counts, as_of, cfg.throughput_window_days)
    status, clause = execution_decision(counts, forecast, period, cfg.at_risk_share)
    throughput = counts.done_in_window * 7 / cfg.throughput_window_days
    return StatusFigures(
        counts, period, as_of, cfg.throughput_window_days, cfg.at_risk_share,
        throughput, forecast, status, clause,
    )  # fmt: skip


def tactic_signals(
    counts: ItemCounts, period: Period, as_of: date, cfg: SignalsConfig
) -> TacticSignals:
    """A tactic's signals from its aggregated item counts."""
    figures = status_figures(counts, period, as_of, cfg)
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
        throughput_per_week=figures.throughput_per_week,
        scope_added=counts.scope_added,
        overdue=counts.overdue,
        stale=counts.stale,
        last_activity=counts.last_activity,
        forecast_finish=figures.forecast,
        execution_status=figures.status,
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


def stale_source(every_s: int, runs: SourceRuns | None, now: datetime) -> bool:
    """`stale_source`: more than STALE_INTERVALS × every_s since the source's last good
    reading, or, never read, since its first run; a source never run is not judged."""
    if runs is None:
        return False
    since = runs.last_ok_at or runs.first_at
    return (now - since).total_seconds() > STALE_INTERVALS * every_s


def newer_failure(runs: SourceRuns | None) -> tuple[datetime, str | None] | None:
    """The source's newest failure (time, reason) when no good reading came after it."""
    if runs is None or runs.last_failed_at is None:
        return None
    if runs.last_ok_at is not None and runs.last_ok_at >= runs.last_failed_at:
        return None
    return runs.last_failed_at, runs.last_failure


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


def compute(
    structure: Structure,
    counts: Mapping[str, ItemCounts],
    checkins: Mapping[str, tuple[float, datetime]],
    as_of: date,
    cfg: SignalsConfig,
) -> SignalSet:
    """Signals of the given tree: tactic signals from their counts, then key results (with
    their newest check-in's value and time), then objectives. Pure: the caller reads the
    inputs (`Store.signal_inputs`) and stores the snapshots (`snapshot_subjects`)."""
    empty = ItemCounts()
    tactics = {
        tid: tactic_signals(counts.get(tid, empty), structure.period_of_tactic(tid), as_of, cfg)
        for tid in structure.tactics
    }
    return roll_up(structure, tactics, checkins, as_of, cfg)


def roll_up(
    structure: Structure,
    tactics: Mapping[str, TacticSignals],
    checkins: Mapping[str, tuple[float, datetime]],
    as_of: date,
    cfg: SignalsConfig,
) -> SignalSet:
    """Key-result and objective signals over given tactic signals (computed from counts, or
    a dashboard's newest snapshots), with the newest check-ins."""
    out = SignalSet(as_of, structure)
    periods = {oid: Period(o.start, o.end) for oid, o in structure.objectives.items()}
    tactics_of: dict[str, list[tuple[TacticSignals, float]]] = defaultdict(list)
    for tid, t in structure.tactics.items():
        out.tactics[tid] = ts = tactics[tid]
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


# -- snapshots ---------------------------------------------------------------------------------


# What json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=False) builds on
# every call, built once.
_DIGEST_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest(values: Mapping[str, Any]) -> str:
    """A stable hash of a subject's values (sorted keys, compact JSON)."""
    return hashlib.sha256(_DIGEST_JSON.encode(values).encode()).hexdigest()


def snapshot_subjects(signals: SignalSet) -> list[Subject]:
    """Every subject with its values and their digest: what the store compares with each
    subject's newest snapshot and inserts where they differ."""
    return [(kind, sid, values, digest(values)) for kind, sid, values in signals.subjects()]


def reads_every_digest(signals: SignalSet) -> bool:
    """True when the set is large enough that reading every subject's newest digest in one
    statement beats reading them by id."""
    return len(signals.structure.tactics) > 5 * CHUNK


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"outcome": {"progress": 0.5}}` → `{"outcome.progress": 0.5}` (lists kept whole)."""
    flat: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, Mapping):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat
