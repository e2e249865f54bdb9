"""The Jira connector's cursor: discovery results plus one incremental state per project.

Shape (JSON, all scopes in one dict)::

    {"v": 1,
     "flavor": "cloud" | "server",                 # detected once (flavor = "auto")
     "fields": {"for": <estimate_field config>, "estimate": "customfield_10016" | null,
                "epic_link": "customfield_10014" | null},
     "scopes": {"KEY": {
         "since": <epoch ms> | null,   # next run's JQL lower bound; null → full listing
         "hwm": <epoch ms> | null,     # highest `updated` stored
         "seen": {"<issue id>": <updated ms>},  # stored items near the boundary (dedupe)
         "runs": 3,                    # completed runs (drives the periodic census)
         "census_pending": false,
         "run": null | {"window": ms | null, "started": ms | null,
                        "token": str | null, "start_at": 0, "hold": false}}}}

`run` exists only while a scope is being paged: a killed run resumes from its page token /
offset and replays at most one page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from okrsync.models import Cursor

VERSION = 1
MINUTE_MS = 60_000
SEEN_CAP = 5_000


def window_start(hwm_ms: int, lookback_minutes: int) -> int:
    """JQL compares at minute granularity: floor to the minute, then step back the lookback."""
    return hwm_ms - hwm_ms % MINUTE_MS - lookback_minutes * MINUTE_MS


@dataclass
class RunState:
    """Where an unfinished pass over one project stands."""

    window: int | None
    started: int | None = None
    token: str | None = None
    start_at: int = 0
    hold: bool = False

    def rewind(self) -> None:
        """Back to the first page of the same window (expired page token)."""
        self.token, self.start_at = None, 0


@dataclass
class ScopeState:
    """Incremental state of one Jira project."""

    since: int | None = None
    hwm: int | None = None
    seen: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    census_pending: bool = False
    run: RunState | None = None

    @classmethod
    def load(cls, raw: dict[str, Any]) -> ScopeState:
        run = raw.get("run")
        return cls(
            since=raw.get("since"),
            hwm=raw.get("hwm"),
            seen={str(k): int(v) for k, v in (raw.get("seen") or {}).items()},
            runs=int(raw.get("runs") or 0),
            census_pending=bool(raw.get("census_pending")),
            run=RunState(**run) if isinstance(run, dict) else None,
        )

    def stored_already(self, issue_id: str, updated_ms: int) -> bool:
        """True when this exact (id, updated) was stored before: the boundary de-duplication."""
        return self.seen.get(issue_id) == updated_ms

    def record(self, issue_id: str, updated_ms: int) -> None:
        self.seen[issue_id] = updated_ms
        self.hwm = updated_ms if self.hwm is None else max(self.hwm, updated_ms)

    def prune(self, lookback_minutes: int) -> None:
        """Keep only ids the next window can return again (bounded; overflow only duplicates).

        That window starts at the boundary below the high-water mark, or earlier when the
        run's own window is held (items changed while paging).
        """
        if self.hwm is None:
            return
        floor = window_start(self.hwm, lookback_minutes)
        held = self.run.window if self.run is not None else self.since
        if held is not None:
            floor = min(floor, held)
        kept = sorted(((ms, i) for i, ms in self.seen.items() if ms >= floor), reverse=True)
        self.seen = {i: ms for ms, i in kept[:SEEN_CAP]}

    def finish(self, lookback_minutes: int) -> None:
        """Close the run: advance the window unless items changed while paging (then hold)."""
        run = self.run
        if run is not None and (run.hold or self.hwm is None):
            self.since = run.window
        elif self.hwm is not None:
            self.since = window_start(self.hwm, lookback_minutes)
        self.runs += 1
        self.run = None
        self.prune(lookback_minutes)


@dataclass
class JiraCursor:
    """The whole connector cursor."""

    flavor: str | None = None
    fields: dict[str, Any] | None = None
    scopes: dict[str, ScopeState] = field(default_factory=dict)

    @classmethod
    def load(cls, cursor: Cursor | None) -> JiraCursor:
        raw = cursor or {}
        if raw.get("v") != VERSION:
            raw = {}
        scopes = {k: ScopeState.load(v) for k, v in (raw.get("scopes") or {}).items()}
        return cls(flavor=raw.get("flavor"), fields=raw.get("fields"), scopes=scopes)

    def scope(self, key: str) -> ScopeState:
        return self.scopes.setdefault(key, ScopeState())

    def dump(self) -> Cursor:
        """A fresh JSON-serialisable dict (pages must not share mutable state)."""
        return {
            "v": VERSION,
            "flavor": self.flavor,
            "fields": dict(self.fields) if self.fields is not None else None,
            "scopes": {k: asdict(v) for k, v in self.scopes.items()},
        }
