"""The sandbox's world: mutable records per tracker, the truth view and the seeded generator.

A `Rec` is one tracker object (issue, task, PR, milestone, section) in a vendor-neutral
shape; the vendor modules render it to JSON (cached on the record until it changes).
Timestamps are kept as epoch milliseconds (UTC); GitHub's are whole seconds.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TRACKERS = ("jira", "jira_dc", "asana", "github")
STATUSES = ("todo", "in_progress", "done", "dropped")
LABELS = ("backend", "frontend", "infra", "growth", "bug", "tech-debt", "okr", "customer")
USERS = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov")
USERS_OR_NONE = (*USERS, None)
ESTIMATES: tuple[float | None, ...] = (None, None, 0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0)
JIRA_PROJECTS = {"jira": ("ALPHA", "BETA", "GAMMA"), "jira_dc": ("OPS", "INFRA")}
JIRA_ID_BASE = {"jira": 10000, "jira_dc": 50000}
GITHUB_REPOS = ("acme/web", "acme/api", "acme/infra")
ASANA_WORKSPACE = "1200000000000001"
ASANA_SECTIONS = ("To do", "In Progress", "Done", "Cancelled")
SECTION_STATUS = {
    "To do": "todo",
    "In Progress": "in_progress",
    "Done": "done",
    "Cancelled": "dropped",
}
DAY_MS = 86_400_000
SPAN_DAYS = 120
GITHUB_STATUSES = ("todo",) * 9 + ("done",) * 8 + ("dropped",) * 3


@dataclass(frozen=True, slots=True)
class TruthItem:
    """What a correct connector must produce for one tracker object (see package docs)."""

    external_id: str
    key: str
    tracker: str
    scope: str
    kind: str
    title: str
    status: str
    updated: datetime
    deleted: bool
    parent_key: str | None
    labels: tuple[str, ...]
    estimate: float | None


@dataclass(slots=True, eq=False)
class Rec:
    """One mutable tracker object; `cache` holds rendered JSON until the next change."""

    tracker: str
    id: int
    key: str
    scope: str
    kind: str
    title: str
    status: str
    created_ms: int
    updated_ms: int
    number: int = 0
    issuetype: str = ""
    parent_key: str | None = None
    labels: tuple[str, ...] = ()
    estimate: float | None = None
    assignee: str | None = None
    due: str | None = None
    milestone: int | None = None
    section: str | None = None
    completed: bool = False
    deleted: bool = False
    prev_keys: list[str] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def ext_id(self) -> str:
        """The external id a connector stores (containers get a prefixed id)."""
        if self.kind == "milestone":
            return f"milestone:{self.scope}#{self.number}"
        if self.kind == "section":
            return f"section:{self.id}"
        return str(self.id)

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.updated_ms, self.id)

    def truth(self) -> TruthItem:
        """The normalised item a correct connector stores (see the package docstring)."""
        return TruthItem(
            external_id=self.ext_id,
            key=self.ext_id if self.kind == "section" else self.key,
            tracker=self.tracker,
            scope=self.scope,
            kind=self._truth_kind(),
            title=self.title,
            status=self._truth_status(),
            updated=ms_to_dt(self.updated_ms),
            deleted=self.deleted,
            parent_key=self.parent_key,
            labels=self.labels,
            estimate=self.estimate,
        )

    def _truth_kind(self) -> str:
        # An Asana milestone is a container, like GitHub milestones.
        if self.tracker == "asana" and self.issuetype == "milestone":
            return "milestone"
        return self.kind

    def _truth_status(self) -> str:
        # GitHub has no in-progress state: an open pull request, or an open issue labelled
        # "in progress"/"wip", is work in progress.
        if (
            self.tracker == "github"
            and self.status == "todo"
            and (
                self.kind == "pull_request" or {x.lower() for x in self.labels} & IN_PROGRESS_LABELS
            )
        ):
            return "in_progress"
        return self.status


IN_PROGRESS_LABELS = frozenset({"in progress", "in-progress", "wip"})


class Shared:
    """Pre-encoded sub-objects (users, labels, projects...) that many items embed.

    A renderer puts `shared.ref(encoded)` where the sub-object goes and `encode_parts` turns
    the item into JSON pieces in which those sub-objects are the very same bytes objects, so
    100k cached items hold one copy of each user object instead of 100k.
    """

    __slots__ = ("frags",)

    def __init__(self) -> None:
        self.frags: list[bytes] = []

    def ref(self, encoded: bytes) -> str:
        self.frags.append(encoded)
        return f"{_SHARED}{len(self.frags) - 1}\x00"


_SHARED = "\x00sbx:shared:"
_SHARED_RE = re.compile(rb'"\\u0000sbx:shared:(\d+)\\u0000"')


def encode_json(obj: Any) -> bytes:
    """Compact JSON bytes (the same as `_core.dumps`)."""
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_parts(obj: Any, shared: Shared) -> tuple[bytes, ...]:
    """`obj` as compact JSON pieces: joined, they are `encode_json(obj)` with refs filled in."""
    pieces = _SHARED_RE.split(encode_json(obj))
    return tuple(
        shared.frags[int(piece)] if i % 2 else piece
        for i, piece in enumerate(pieces)
        if piece or i % 2
    )


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def dt_to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def now_ms() -> int:
    return dt_to_ms(datetime.now(UTC))


def iso_z(ms: int) -> str:
    """`2026-11-25T10:00:00.000Z` (Asana style)."""
    return ms_to_dt(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def iso_s(ms: int) -> str:
    """`2026-11-25T10:00:00Z` (GitHub style)."""
    return ms_to_dt(ms).strftime("%Y-%m-%dT%H:%M:%SZ")


def day(ms: int) -> str:
    return ms_to_dt(ms).strftime("%Y-%m-%d")


class Generator:
    """Builds the seeded data set of one tracker; `now` is fixed at construction."""

    def __init__(self, seed: int, now: int) -> None:
        self.rng = random.Random(seed)
        self.now = now
        rng = self.rng
        self.label_sets = [tuple(sorted(rng.sample(LABELS, rng.randint(0, 3)))) for _ in range(64)]
        self.statuses = [
            s for s, w in zip(STATUSES, (35, 25, 30, 10), strict=True) for _ in range(w)
        ]
        verbs = ("Improve", "Fix", "Add", "Remove", "Refactor", "Measure", "Ship", "Test")
        nouns = (
            "checkout",
            "onboarding",
            "billing",
            "search",
            "signup",
            "cache",
            "export",
            "dashboard",
            "alerts",
            "pricing page",
        )
        self.titles = [f"{v} {n}" for v in verbs for n in nouns]
        self.dues = [None] * 60 + [day(now + d * DAY_MS) for d in range(-30, 10)]

    def times(self, tracker: str) -> tuple[int, int]:
        start = self.now - SPAN_DAYS * DAY_MS
        rand = self.rng.random
        created = start + int(rand() * (self.now - 60_000 - start))
        updated = created + int(rand() * (self.now - 1000 - created))
        if tracker == "github":
            created, updated = created // 1000 * 1000, updated // 1000 * 1000
        return created, updated

    def status(self) -> str:
        return self.rng.choice(self.statuses)

    def common(self) -> dict[str, Any]:
        choice = self.rng.choice
        return {
            "labels": choice(self.label_sets),
            "estimate": choice(ESTIMATES),
            "assignee": choice(USERS_OR_NONE),
            "due": choice(self.dues),
        }

    def jira(self, tracker: str, n: int) -> list[Rec]:
        projects = JIRA_PROJECTS[tracker]
        counters = dict.fromkeys(projects, 0)
        pools: dict[str, tuple[list[Rec], list[Rec]]] = {p: ([], []) for p in projects}
        recs: list[Rec] = []
        for i in range(n):
            project = projects[self.rng.randrange(len(projects))]
            counters[project] += 1
            rec = self._jira_one(
                tracker, JIRA_ID_BASE[tracker] + i + 1, project, counters[project], pools[project]
            )
            recs.append(rec)
            epics, stories = pools[project]
            if rec.kind == "epic":
                epics.append(rec)
            elif rec.issuetype != "Sub-task":
                stories.append(rec)
        return recs

    def _jira_one(
        self, tracker: str, rid: int, project: str, num: int, pools: tuple[list[Rec], list[Rec]]
    ) -> Rec:
        created, updated = self.times(tracker)
        epics, stories = pools[0][-20:], pools[1][-100:]
        roll = self.rng.random()
        issuetype, parent = self.rng.choice(("Story", "Task", "Bug")), None
        if roll < 0.08 or not epics:
            issuetype = "Epic"
        elif roll < 0.2 and stories:
            issuetype, parent = "Sub-task", self.rng.choice(stories).key
        elif roll < 0.7:
            parent = self.rng.choice(epics).key
        extra = self.common()
        if issuetype == "Epic":
            extra["estimate"] = None
        return Rec(
            tracker=tracker,
            id=rid,
            key=f"{project}-{num}",
            scope=project,
            kind="epic" if issuetype == "Epic" else "issue",
            title=f"{issuetype} {project}-{num}: {self._title()}",
            status=self.status(),
            created_ms=created,
            updated_ms=updated,
            number=num,
            issuetype=issuetype,
            parent_key=parent,
            **extra,
        )

    def _title(self) -> str:
        return self.rng.choice(self.titles)

    def asana(self, n: int) -> tuple[list[Rec], list[Rec], dict[str, str]]:
        """Tasks, sections, and the project gid → name map."""
        projects = {
            f"12010000000000{i:02d}": name
            for i, name in enumerate(("Growth", "Platform", "Mobile"), start=1)
        }
        sections: list[Rec] = []
        start = self.now - SPAN_DAYS * DAY_MS - DAY_MS
        sid = 1202000000000000
        for gid in projects:
            for name in ASANA_SECTIONS:
                sid += 1
                sections.append(
                    Rec(
                        tracker="asana",
                        id=sid,
                        key=str(sid),
                        scope=gid,
                        kind="section",
                        title=name,
                        status="todo",
                        created_ms=start,
                        updated_ms=start,
                    )
                )
        by_status = {(s.scope, SECTION_STATUS[s.title]): str(s.id) for s in sections}
        roots: dict[str, list[str]] = {p: [] for p in projects}
        tasks: list[Rec] = []
        for i in range(n):
            task = self._asana_one(1203000000000001 + i, list(projects), by_status, roots)
            tasks.append(task)
            if task.parent_key is None:
                roots[task.scope].append(str(task.id))
        return tasks, sections, projects

    def _asana_one(
        self,
        gid: int,
        projects: list[str],
        by_status: dict[tuple[str, str], str],
        roots: dict[str, list[str]],
    ) -> Rec:
        created, updated = self.times("asana")
        project = self.rng.choice(projects)
        status = self.status()
        parents = roots[project][-50:]
        parent = self.rng.choice(parents) if parents and self.rng.random() < 0.1 else None
        completed = status == "done" or (status == "dropped" and self.rng.random() < 0.5)
        return Rec(
            tracker="asana",
            id=gid,
            key=str(gid),
            scope=project,
            kind="task",
            title=self._title(),
            status=status,
            created_ms=created,
            updated_ms=updated,
            parent_key=parent,
            section=by_status[(project, status)],
            completed=completed,
            issuetype="milestone" if self.rng.random() < 0.05 else "default_task",
            **self.common(),
        )

    def github(self, n: int) -> tuple[list[Rec], list[Rec]]:
        """Issues + PRs, and milestones (3 per repo)."""
        milestones: list[Rec] = []
        for r, repo in enumerate(GITHUB_REPOS):
            for num in (1, 2, 3):
                created, updated = self.times("github")
                milestones.append(
                    Rec(
                        tracker="github",
                        id=7000 + r * 10 + num,
                        key=f"{repo}#m{num}",
                        scope=repo,
                        kind="milestone",
                        title=f"{repo.split('/')[1]} v{num}.0",
                        status="done" if num == 1 else "todo",
                        created_ms=created,
                        updated_ms=updated,
                        number=num,
                        due=day(self.now + (num - 2) * 20 * DAY_MS),
                    )
                )
        counters = dict.fromkeys(GITHUB_REPOS, 3)
        items = []
        for i in range(n):
            repo = self.rng.choice(GITHUB_REPOS)
            counters[repo] += 1
            items.append(self._github_one(900_000_001 + i, repo, counters[repo]))
        self._cover_milestones(items, milestones)
        return items, milestones

    def _github_one(self, rid: int, repo: str, num: int) -> Rec:
        created, updated = self.times("github")
        is_pr = self.rng.random() < 0.3
        status = self.rng.choice(GITHUB_STATUSES)
        extra = self.common()
        extra["estimate"] = None
        milestone = self.rng.choice((None, 1, 2, 3)) if not is_pr else None
        return Rec(
            tracker="github",
            id=rid,
            key=f"{repo}#{num}",
            scope=repo,
            kind="pull_request" if is_pr else "issue",
            title=self._title(),
            status=status,
            created_ms=created,
            updated_ms=updated,
            number=num,
            milestone=milestone,
            **extra,
        )

    @staticmethod
    def _cover_milestones(items: list[Rec], milestones: list[Rec]) -> None:
        used = {(r.scope, r.milestone) for r in items}
        for m in milestones:
            if (m.scope, m.number) in used:
                continue
            issue = next(
                (
                    r
                    for r in items
                    if r.scope == m.scope and r.kind == "issue" and r.milestone is None
                ),
                None,
            )
            if issue is not None:
                issue.milestone = m.number


def add_ties(recs: list[Rec], rng: random.Random) -> None:
    """Force equal `updated` values around page boundaries (25/50/100...) and at random spots."""
    by_scope: dict[str, list[Rec]] = {}
    for r in recs:
        by_scope.setdefault(r.scope, []).append(r)
    for group in by_scope.values():
        group.sort(key=lambda r: r.sort_key)
        spots = {b for b in range(25, len(group), 25)}
        spots |= {rng.randrange(2, len(group)) for _ in range(len(group) // 40)} if group else set()
        for b in sorted(spots):
            _tie(group[max(0, b - 2) : b + 2])


def _tie(run: list[Rec]) -> None:
    if not run:
        return
    value = run[0].updated_ms
    for r in run:
        r.updated_ms = value
        r.created_ms = min(r.created_ms, value)
