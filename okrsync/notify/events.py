"""What changed → events: pure functions of consecutive signal snapshots, sync runs and
check-in dates (no store, no I/O).

An event's `key` is derived from the rows it was read from (the snapshot id, the run id, the
last check-in's id and the number of reminder periods), so every replica examining the same
rows derives the same keys, and the outbox (UNIQUE(event_key, channel)) keeps one of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from okrsync.signal_types import KeyResultInfo, Snapshot, Structure

NumberedSnapshot = tuple[int, Snapshot]


@dataclass(frozen=True)
class Event:
    """One thing a channel may be told: what changed, from what to what, and the figures."""

    key: str
    kind: str  # okrsync.config_notify.EVENTS
    subject_type: str  # "key_result" | "tactic" | "objective" | "connector"
    subject_id: str
    title: str
    objective_id: str | None
    before: str | None
    after: str | None
    at: str  # ISO 8601: when the change was computed or the run ended
    figures: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Event:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class RunFact:
    """A finished sync run, with its connector's earlier ok/failed statuses (newest first)."""

    id: int
    connector: str
    status: str
    error: str | None
    ended_at: datetime | None
    previous: tuple[str, ...]


def snapshot_events(
    pairs: Iterable[tuple[NumberedSnapshot | None, NumberedSnapshot]], structure: Structure
) -> list[Event]:
    """Status, flag and forecast events between each snapshot and the one before it of the
    same subject (a subject's first snapshot, or one outside the active tree, says nothing)."""
    events: list[Event] = []
    for prev, (sid, cur) in pairs:
        if prev is None or not _active(cur, structure):
            continue
        events.extend(_changes(sid, prev[1], cur, structure))
    return events


def _active(snap: Snapshot, structure: Structure) -> bool:
    if snap.subject_type == "tactic":
        return snap.subject_id in structure.tactics
    if snap.subject_type == "key_result":
        return snap.subject_id in structure.key_results
    return snap.subject_type == "objective" and snap.subject_id in structure.objectives


def _changes(sid: int, prev: Snapshot, cur: Snapshot, structure: Structure) -> Iterator[Event]:
    if cur.subject_type == "tactic":
        yield from _tactic(sid, prev, cur, structure)
    elif cur.subject_type == "key_result":
        yield from _key_result(sid, prev, cur, structure)
    if cur.subject_type in ("key_result", "objective"):
        yield from _flags(sid, prev, cur, structure)


def _event(
    kind: str, sid: int, cur: Snapshot, structure: Structure, before: Any, after: Any, **f: Any
) -> Event:
    title, objective = describe(cur.subject_type, cur.subject_id, structure)
    suffix = f":{f.pop('_part')}" if "_part" in f else ""
    return Event(
        key=f"{kind}:{cur.subject_type}:{cur.subject_id}:{sid}{suffix}",
        kind=kind,
        subject_type=cur.subject_type,
        subject_id=cur.subject_id,
        title=title,
        objective_id=objective,
        before=before,
        after=after,
        at=cur.computed_at.isoformat(),
        figures=f,
    )


def describe(kind: str, subject_id: str, structure: Structure) -> tuple[str, str | None]:
    """A subject's title and the objective it belongs to (None when it is not in the tree)."""
    if kind == "tactic" and subject_id in structure.tactics:
        t = structure.tactics[subject_id]
        return t.title, structure.key_results[t.key_result_id].objective_id
    if kind == "key_result" and subject_id in structure.key_results:
        kr = structure.key_results[subject_id]
        return kr.title, kr.objective_id
    if kind == "objective" and subject_id in structure.objectives:
        return structure.objectives[subject_id].title, subject_id
    return subject_id, None


def _tactic(sid: int, prev: Snapshot, cur: Snapshot, structure: Structure) -> Iterator[Event]:
    old, new = prev.values, cur.values
    period = structure.period_of_tactic(cur.subject_id)
    figures = {
        "completion": new.get("completion"),
        "items_done": new.get("items_done"),
        "items_total": new.get("items_total"),
        "throughput_per_week": new.get("throughput_per_week"),
        "forecast_finish": new.get("forecast_finish"),
        "period_end": period.end.isoformat(),
    }
    if old.get("execution_status") != new.get("execution_status"):
        before, after = old.get("execution_status"), new.get("execution_status")
        yield _event("status", sid, cur, structure, before, after, **figures)
    was, now = _past(old, period.end), _past(new, period.end)
    if was != now:
        before, after = ("past_end", "by_end") if was else ("by_end", "past_end")
        yield _event("forecast", sid, cur, structure, before, after, **figures)


def _past(values: Mapping[str, Any], end: date) -> bool:
    """Whether a tactic's forecast finish falls after its period end."""
    forecast = values.get("forecast_finish")
    return isinstance(forecast, str) and date.fromisoformat(forecast[:10]) > end


def _key_result(sid: int, prev: Snapshot, cur: Snapshot, structure: Structure) -> Iterator[Event]:
    old, new = prev.values.get("outcome", {}), cur.values.get("outcome", {})
    if old.get("status") == new.get("status"):
        return
    yield _event("status", sid, cur, structure, old.get("status"), new.get("status"), **_kr(cur))


def _kr(snap: Snapshot) -> dict[str, Any]:
    """The figures behind a key result's outcome and execution."""
    outcome = snap.values.get("outcome", {})
    keep = ("progress", "expected", "current", "start", "target", "checked_in_at")
    figures = {k: outcome.get(k) for k in keep}
    figures["completion"] = snap.values.get("execution", {}).get("completion")
    return figures


def _flags(sid: int, prev: Snapshot, cur: Snapshot, structure: Structure) -> Iterator[Event]:
    old, new = set(prev.values.get("flags", [])), set(cur.values.get("flags", []))
    outcome, execution = cur.values.get("outcome", {}), cur.values.get("execution", {})
    figures = {"progress": outcome.get("progress"), "completion": execution.get("completion")}
    for flag in sorted(new - old):
        yield _event("flag", sid, cur, structure, None, flag, _part=flag, **figures)
    for flag in sorted(old - new):
        yield _event("flag", sid, cur, structure, flag, None, _part=flag, **figures)


def run_events(runs: Iterable[RunFact], failures: int) -> list[Event]:
    """`connector_failing` when a run is the `failures`-th failure in a row;
    `connector_recovered` when an ok run ends a streak of at least that many."""
    events: list[Event] = []
    for run in runs:
        streak = _streak(run.previous)
        if run.status == "failed" and streak + 1 == failures:
            events.append(_run_event("connector_failing", run, "ok", "failing", failures))
        elif run.status == "ok" and streak >= failures:
            events.append(_run_event("connector_recovered", run, "failing", "ok", streak))
    return events


def _streak(statuses: Sequence[str]) -> int:
    """How many of the newest statuses are failures in a row."""
    n = 0
    for status in statuses:
        if status != "failed":
            break
        n += 1
    return n


def _run_event(kind: str, run: RunFact, before: str, after: str, failures: int) -> Event:
    return Event(
        key=f"{kind}:{run.connector}:{run.id}",
        kind=kind,
        subject_type="connector",
        subject_id=run.connector,
        title=run.connector,
        objective_id=None,
        before=before,
        after=after,
        at=run.ended_at.isoformat() if run.ended_at else "",
        figures={"failures": failures, "run_id": run.id, "error": run.error},
    )


@dataclass(frozen=True)
class Silence:
    """A key result's newest check-in (None: none yet) and its objective's period."""

    key_result_id: str
    checkin_id: int | None
    checked_in_at: datetime | None
    start: date
    end: date


def reminder_events(
    silences: Iterable[Silence], structure: Structure, today: date, every_days: int
) -> list[Event]:
    """A reminder for each key result whose period is running and that has had no check-in
    for `every_days` days (since its period start if never): one per `every_days` days of
    silence, keyed by the newest check-in and the count of those periods."""
    if every_days <= 0:
        return []
    events: list[Event] = []
    for s in silences:
        if not s.start <= today <= s.end or s.key_result_id not in structure.key_results:
            continue
        since = s.checked_in_at.date() if s.checked_in_at else s.start
        days = (today - since).days
        if days >= every_days:
            events.append(_reminder(s, structure, today, days, days // every_days))
    return events


def owner_of(kr: KeyResultInfo, structure: Structure) -> str | None:
    """Who a key result's reminder is for: its own owner, else its objective's."""
    return kr.owner or structure.objectives[kr.objective_id].owner


def _reminder(s: Silence, structure: Structure, today: date, days: int, nth: int) -> Event:
    kr = structure.key_results[s.key_result_id]
    owner = owner_of(kr, structure)
    return Event(
        key=f"checkin_reminder:{kr.id}:{s.checkin_id or 0}:{nth}",
        kind="checkin_reminder",
        subject_type="key_result",
        subject_id=kr.id,
        title=kr.title,
        objective_id=kr.objective_id,
        before=s.checked_in_at.isoformat() if s.checked_in_at else None,
        after=None,
        at=today.isoformat(),
        figures={"days_without_checkin": days, "owner": owner, "period_end": s.end.isoformat()},
    )
