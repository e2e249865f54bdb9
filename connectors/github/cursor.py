"""The GitHub connector's cursor, typed; stored as JSON in the same shape as ever:

    {"v": 1, "scopes": {"owner/repo": {"since": str | None, "etag": str | None, "runs": int,
                                       "pass": {...}?}},
     "projects": {"project:acme/12": {"owner": "organization" | "user" | None, "seen": str |
                  None, "pass": {...}?}}?, "project_runs": int?,
     "board_repos": [str]?}

`since` is the raw `updated_at` string of the newest item seen (kept in GitHub's exact form so
the next URL, and so its ETag, match); `runs` counts runs since the last census; `pass` exists
only while a listing is under way (`next` URL, the pass's `window`, newest `high` seen so far,
run `start`, `hold`), so a killed run resumes with at most one page replayed. A cursor of
another version starts over (a full listing).

Per project (GitHub Projects): the owner type found, `seen` (the board's `updatedAt` when its
last listing started: the same value next run means nothing changed, one request; the next
listing yields the items changed at or after it) and, while a listing is under way, its `pass`
(`after` cursor, the `start` board `updatedAt`, the `window`, whether it is a `census`
listing), so a killed run resumes at the page it stopped. `project_runs` counts runs since the
last census of the boards (every project listed whole, deletions of items gone from them);
`board_repos` the repositories outside the repo scopes whose issues were seen on the boards
(each gets a census, so its last item leaving the boards is deleted too).
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
        return _dump(self)


@dataclass
class ProjectPass:
    """Progress of one listing of a project's items (`after`: the next page's cursor)."""

    start: str
    window: str | None
    census: bool = False
    after: str | None = None


@dataclass
class ProjectState:
    """One project's resume point."""

    owner: str | None = None
    seen: str | None = None
    pending: ProjectPass | None = None  # "pass" in the JSON

    @classmethod
    def load(cls, raw: dict[str, Any]) -> ProjectState:
        pending = raw.get("pass")
        return cls(
            owner=raw.get("owner"),
            seen=raw.get("seen"),
            pending=ProjectPass(**pending) if isinstance(pending, dict) else None,
        )

    def dump(self) -> dict[str, Any]:
        return _dump(self)


@dataclass
class GitHubCursor:
    """Every configured repository's `ScopeState` and project's `ProjectState` (those never
    run yet are absent)."""

    scopes: dict[str, ScopeState] = field(default_factory=dict)
    projects: dict[str, ProjectState] = field(default_factory=dict)
    project_runs: int = 0
    board_repos: list[str] = field(default_factory=list)  # unlisted repos seen on boards

    @classmethod
    def load(cls, cursor: Cursor | None) -> GitHubCursor:
        raw = cursor or {}
        scopes = raw.get("scopes")
        if raw.get("v") != VERSION or not isinstance(scopes, dict):
            return cls()
        projects = raw.get("projects")
        return cls(
            {k: ScopeState.load(v) for k, v in scopes.items() if isinstance(v, dict)},
            {
                k: ProjectState.load(v)
                for k, v in (projects if isinstance(projects, dict) else {}).items()
                if isinstance(v, dict)
            },
            int(raw.get("project_runs", 0)),
            [r for r in raw.get("board_repos") or [] if isinstance(r, str)],
        )

    def scope(self, name: str) -> ScopeState:
        return self.scopes.setdefault(name, ScopeState())

    def project(self, name: str) -> ProjectState:
        return self.projects.setdefault(name, ProjectState())

    def dump(self) -> Cursor:
        """A fresh JSON copy (pages hold it after the connector moves on)."""
        out: Cursor = {"v": VERSION, "scopes": {k: v.dump() for k, v in self.scopes.items()}}
        if self.projects:
            out["projects"] = {k: v.dump() for k, v in self.projects.items()}
            out["project_runs"] = self.project_runs
            out["board_repos"] = list(self.board_repos)
        return out


def _dump(state: ScopeState | ProjectState) -> dict[str, Any]:
    """A repo's or project's state as JSON: its fields, the pass under way as "pass"."""
    out = asdict(state)
    if (pending := out.pop("pending")) is not None:
        out["pass"] = pending
    return out
