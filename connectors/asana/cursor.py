"""The Asana connector's cursor, typed; stored as JSON in the same shape as ever:

    {"v": 1, "scopes": {project_gid: {"window", "sync", "runs", "census_due", "sections_due",
                                      "pending": {"since", "offset", "high", "keep"} | null}}}

`window` is ISO UTC (null: a full listing next), `sync` the events token, `runs` the runs since
the last census; `pending` is a poll to run or resume. Only configured projects are kept; a
cursor of another version starts over (a full listing and a census).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from okrsync.models import Cursor

VERSION = 1


@dataclass
class Poll:
    """A `modified_since` poll to run or resume: from `since`, at `offset` (None: first page);
    `high` is the newest `modified_at` seen, `keep` that something changed while paging."""

    since: str | None
    offset: str | None = None
    high: str | None = None
    keep: bool = False

    @classmethod
    def load(cls, raw: dict[str, Any]) -> Poll:
        return cls(raw.get("since"), raw.get("offset"), raw.get("high"), bool(raw.get("keep")))


@dataclass
class ScopeState:
    """One project's resume point."""

    window: str | None = None
    sync: str | None = None
    runs: int = 0
    census_due: bool = True
    sections_due: bool = False
    pending: Poll | None = None

    @classmethod
    def load(cls, raw: Any) -> ScopeState:
        if not isinstance(raw, dict):
            return cls()
        pending = raw.get("pending")
        return cls(
            window=raw.get("window"),
            sync=raw.get("sync"),
            runs=int(raw.get("runs", 0)),
            census_due=bool(raw.get("census_due", True)),
            sections_due=bool(raw.get("sections_due", False)),
            pending=Poll.load(pending) if isinstance(pending, dict) else None,
        )

    def mark_changed(self) -> None:
        """Something changed: poll from the window; a pending poll restarts at its first page."""
        if self.pending is None:
            self.pending = Poll(self.window)
        else:
            self.pending.offset = None

    def census_done(self) -> None:
        self.census_due = False
        self.runs = 0


@dataclass
class AsanaCursor:
    """The `ScopeState` of every configured project."""

    scopes: dict[str, ScopeState] = field(default_factory=dict)

    @classmethod
    def load(cls, cursor: Cursor | None, scopes: list[str]) -> AsanaCursor:
        old = cursor.get("scopes", {}) if cursor and cursor.get("v") == VERSION else {}
        old = old if isinstance(old, dict) else {}
        return cls({gid: ScopeState.load(old.get(gid)) for gid in scopes})

    def dump(self) -> Cursor:
        """A fresh JSON copy (pages hold it after the connector moves on)."""
        return {"v": VERSION, "scopes": {gid: asdict(st) for gid, st in self.scopes.items()}}
