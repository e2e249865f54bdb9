"""What signals are computed from, as plain values: the active OKR tree (`Structure`), one
tactic's aggregated item counts (`ItemCounts`), an objective's `Period`, and a stored
`Snapshot` of a subject's signals.

A base module: the store builds these from its rows and `okrsync.signals` computes from
them, so neither has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

# (subject_type, subject_id, JSON values, digest of the values): what a snapshot stores
Subject = tuple[str, str, dict[str, Any], str]


def midnight(day: date) -> datetime:
    """The aware UTC instant a calendar day starts."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


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
    owner: str | None = None  # 0009: its own owner (None: the objective's owner answers)


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


@dataclass(frozen=True)
class Snapshot:
    """One stored snapshot of a subject's signal values."""

    subject_type: str
    subject_id: str
    as_of: date
    computed_at: datetime
    values: dict[str, Any]


@dataclass(frozen=True)
class SourceRuns:
    """A key result's source runs, as the store keeps them (`sync_run` rows
    `source:<key result>`): when it was first run, when it last read a value, and its newest
    failure with the reason."""

    first_at: datetime
    last_ok_at: datetime | None = None
    last_failed_at: datetime | None = None
    last_failure: str | None = None
