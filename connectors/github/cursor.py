"""The GitHub connector's cursor, typed; stored as JSON in the same shape as ever:

    {"v": 1, "scopes": {"owner/repo": {"since": str | None, "etag": str | None, "runs": int,
                                       "pass": {...}?}}}

`since` is the raw `updated_at` string of the newest item seen (kept in GitHub's exact form so
the next URL, and so its ETag, match); `runs` counts runs since the last census; `pass` exists
only while a listing is under way (`next` URL, the pass's `window`, newest `high` seen so far,
run `start`, `hold`), so a killed run resumes with at most one page replayed. A cursor of
another version starts over (a full listing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from okrsync.models import Cursor

from .normalise import parse_time

VERSION = 1


@dataclass
class Pass:
    """Progress of one incremental listing of a scope, stored in the cursor between pages."""

    window: str | None
    start: str
    next: str | None = None
    high: str | None = None
    hold: bool = False

    def observe(self, issues: Iterable[dict[str, Any]]) -> None:
        """Move `high` to the newest `updated_at`; hold the window on items changed mid-run."""
        start = parse_time(self.start)
        high = parse_time(self.high) if self.high is not None else None
        for raw in issues:
            stamp = raw.get("updated_at")
            try:
                updated = parse_time(stamp) if isinstance(stamp, str) else None
            except ValueError:
                updated = None
            if updated is None:
                continue  # the item itself is logged and skipped by normalisation
            if high is None or updated > high:
                self.high, high = stamp, updated
            if updated >= start:
                self.hold = True

    def final_since(self) -> str | None:
        """The next run's `since`: the window if held (or nothing newer), else the newest seen."""
        if self.hold or self.high is None:
            return self.window
        if self.window is not None and parse_time(self.window) >= parse_time(self.high):
            return self.window
        return self.high


@dataclass
class ScopeState:
    """One repository's resume point."""

    since: str | None = None
    etag: str | None = None
    runs: int = 0
    pending: Pass | None = None  # "pass" in the JSON

    @classmethod
    def load(cls, raw: dict[str, Any]) -> ScopeState:
        pending = raw.get("pass")
        return cls(
            since=raw.get("since"),
            etag=raw.get("etag"),
            runs=int(raw.get("runs", 0)),
            pending=Pass(**pending) if isinstance(pending, dict) else None,
        )

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"since": self.since, "etag": self.etag, "runs": self.runs}
        if self.pending is not None:
            out["pass"] = asdict(self.pending)
        return out


@dataclass
class GitHubCursor:
    """Every configured repository's `ScopeState` (those never run yet are absent)."""

    scopes: dict[str, ScopeState] = field(default_factory=dict)

    @classmethod
    def load(cls, cursor: Cursor | None) -> GitHubCursor:
        raw = cursor or {}
        scopes = raw.get("scopes")
        if raw.get("v") != VERSION or not isinstance(scopes, dict):
            return cls()
        return cls({k: ScopeState.load(v) for k, v in scopes.items() if isinstance(v, dict)})

    def scope(self, name: str) -> ScopeState:
        return self.scopes.setdefault(name, ScopeState())

    def dump(self) -> Cursor:
        """A fresh JSON copy (pages hold it after the connector moves on)."""
        return {"v": VERSION, "scopes": {k: v.dump() for k, v in self.scopes.items()}}
