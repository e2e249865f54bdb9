"""GitHub Projects (v2) in the sandbox's world: boards, their fields and their items.

Three boards, generated from the seed over the GitHub tracker's issues and PRs:

* `acme/12` "Payments roadmap" (organisation): fields Title, Assignees, Status (single select
  Todo / In Progress / Done), Labels, Linked pull requests, Milestone, Repository, Reviewers,
  Iteration (2 weeks: Sprint 10-13 completed, Sprint 14 the current one holding today,
  Sprint 15 and 16 next), Points (number), Team (text), Target (date). Its size is
  `sizes["github_project"]` (default 60): issues and PRs from every repository (a connector
  usually lists fewer), one in ten a draft issue; drafts fill up when the repositories hold
  too few issues.
* `acme/13` "Platform board" (organisation): Status Backlog / Doing / Shipped, 12 items.
* `octocat/1` "Personal tasks" (user `octocat`): Status only, 6 items.

Item positions only grow (an added item goes last), so a cursor (the position) survives
removals. Values are keyed by field name; a single select holds the option's id, an iteration
the iteration's id. A board change (a field value set, an item added, removed or archived)
bumps the item's and the project's `updatedAt`, and not the issue's `updated_at`: GitHub keeps
project events out of the issue's own timestamp, so the sandbox keeps them separate too.
A change to the issue itself (title, state) bumps neither. An item whose issue is deleted
leaves the board (`Projects.listen`; GitHub removes it); one in a hidden repository is served
`REDACTED`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from okrsync.sandbox._data import DAY_MS, Rec, now_ms

DEFAULT_PROJECT_ITEMS = 60
BUILTIN_FIELDS = (
    ("Title", "TITLE"),
    ("Assignees", "ASSIGNEES"),
    ("Status", "SINGLE_SELECT"),
    ("Labels", "LABELS"),
    ("Linked pull requests", "LINKED_PULL_REQUESTS"),
    ("Milestone", "MILESTONE"),
    ("Repository", "REPOSITORY"),
    ("Reviewers", "REVIEWERS"),
)
CUSTOM_FIELDS = (
    ("Iteration", "ITERATION"),
    ("Points", "NUMBER"),
    ("Team", "TEXT"),
    ("Target", "DATE"),
)
TEAMS = ("Payments", "Platform", "Growth")
POINTS = (1.0, 2.0, 3.0, 5.0, 8.0)
COLORS = ("GRAY", "YELLOW", "GREEN", "BLUE", "ORANGE", "PURPLE", "RED", "PINK")
VALUE_TYPES = {
    "SINGLE_SELECT": "ProjectV2ItemFieldSingleSelectValue",
    "ITERATION": "ProjectV2ItemFieldIterationValue",
    "NUMBER": "ProjectV2ItemFieldNumberValue",
    "TEXT": "ProjectV2ItemFieldTextValue",
    "TITLE": "ProjectV2ItemFieldTextValue",
    "DATE": "ProjectV2ItemFieldDateValue",
}
SETTABLE = frozenset({"SINGLE_SELECT", "ITERATION", "NUMBER", "TEXT", "DATE"})


@dataclass(slots=True)
class Option:
    id: str
    name: str
    color: str
    description: str


@dataclass(slots=True)
class Iteration:
    id: str
    title: str
    start: date
    duration: int

    def holds(self, day: date) -> bool:
        return self.start <= day < self.start + timedelta(days=self.duration)


@dataclass(slots=True)
class Field:
    """A project field; `options` for single selects, `iterations` (current and next) and
    `completed` for an iteration field."""

    database_id: int
    name: str
    data_type: str
    created_ms: int
    options: list[Option] = field(default_factory=list)
    iterations: list[Iteration] = field(default_factory=list)
    completed: list[Iteration] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        prefix = {"SINGLE_SELECT": "PVTSSF", "ITERATION": "PVTIF"}.get(self.data_type, "PVTF")
        return f"{prefix}_lADOBx{self.database_id}"

    def option(self, name_or_id: str) -> Option:
        for o in self.options:
            if name_or_id in (o.name, o.id):
                return o
        raise ValueError(f"field {self.name!r} has no option {name_or_id!r}")

    def iteration(self, title_or_id: str) -> Iteration:
        for it in (*self.completed, *self.iterations):
            if title_or_id in (it.title, it.id):
                return it
        raise ValueError(f"field {self.name!r} has no iteration {title_or_id!r}")


@dataclass(slots=True, eq=False)
class Item:
    """A board item: an issue or PR (`rec`) or a draft (`draft_title`)."""

    database_id: int
    position: int
    rec: Rec | None
    draft_title: str
    created_ms: int
    updated_ms: int
    values: dict[str, Any] = field(default_factory=dict)
    archived: bool = False
    cache: dict[Any, Any] = field(default_factory=dict)  # rendered per query (`_graphql`)

    @property
    def node_id(self) -> str:
        return f"PVTI_lADOBx{self.database_id}"

    @property
    def type(self) -> str:
        if self.rec is None:
            return "DRAFT_ISSUE"
        return "PULL_REQUEST" if self.rec.kind == "pull_request" else "ISSUE"

    @property
    def title(self) -> str:
        return self.draft_title if self.rec is None else self.rec.title


@dataclass(slots=True, eq=False)
class Project:
    owner: str
    owner_type: str  # "Organization" or "User"
    number: int
    title: str
    database_id: int
    created_ms: int
    updated_ms: int
    fields: list[Field] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)  # by position
    closed: bool = False
    _keys: list[int] | None = None  # the items' positions, kept until the items change

    def keys(self) -> list[int]:
        """The items' positions (ascending): what cursors hold."""
        if self._keys is None or len(self._keys) != len(self.items):
            self._keys = [it.position for it in self.items]
        return self._keys

    @property
    def key(self) -> str:
        return f"{self.owner}/{self.number}"

    @property
    def node_id(self) -> str:
        return f"PVT_kwDOBx{self.database_id}"

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise ValueError(f"project {self.key}: no field {name!r}")

    def item(self, database_id: int) -> Item:
        for it in self.items:
            if it.database_id == database_id:
                return it
        raise KeyError(f"project {self.key}: no item {database_id}")


class Projects:
    """Every board of the world, and the changes the admin API makes to them (under the
    world's lock)."""

    def __init__(self, projects: list[Project]) -> None:
        self.projects = {p.key: p for p in projects}
        self.by_rec: dict[int, list[tuple[Project, Item]]] = {}
        self._next_id = 1 + max((i.database_id for p in projects for i in p.items), default=0)
        for p in projects:
            for it in p.items:
                if it.rec is not None:
                    self.by_rec.setdefault(it.rec.id, []).append((p, it))

    def get(self, key: str) -> Project:
        if key.startswith("project:"):
            key = key[len("project:") :]
        if key not in self.projects:
            raise KeyError(f"no project {key!r}; known: {sorted(self.projects)}")
        return self.projects[key]

    def owner(self, login: str, owner_type: str) -> bool:
        return any(
            p.owner.lower() == login.lower() and p.owner_type == owner_type
            for p in self.projects.values()
        )

    def find(self, login: str, number: int) -> Project | None:
        for p in self.projects.values():
            if p.owner.lower() == login.lower() and p.number == number:
                return p
        return None

    # --- changes ---------------------------------------------------------------------------

    def set_value(self, key: str, item_id: int, name: str, value: Any) -> Item:
        """Set (None: clear) a field's value: an option's name or id, an iteration's title or
        id, a number, a text or an ISO date."""
        project = self.get(key)
        item, f = project.item(item_id), project.field(name)
        if f.data_type not in SETTABLE:
            raise ValueError(f"field {name!r} ({f.data_type}) is not settable here")
        if value is None:
            item.values.pop(name, None)
        else:
            item.values[name] = _stored(f, value)
        self._touch(project, item)
        return item

    def add(self, key: str, rec: Rec | None, draft_title: str = "") -> Item:
        """A new item at the end of the board: `rec`'s issue or PR, or a draft."""
        project = self.get(key)
        if rec is not None and any(it.rec is rec for it in project.items):
            raise ValueError(f"{rec.key} is already on project {project.key}")
        now = _now_s()
        position = 1 + max((it.position for it in project.items), default=0)
        item = Item(self._next_id, position, rec, draft_title, now, now)
        item.values["Title"] = item.title
        self._next_id += 1
        project.items.append(item)
        if rec is not None:
            self.by_rec.setdefault(rec.id, []).append((project, item))
        self._touch(project, item)
        return item

    def remove(self, key: str, item_id: int) -> None:
        project = self.get(key)
        item = project.item(item_id)
        project.items.remove(item)
        project._keys = None
        if item.rec is not None:
            self.by_rec[item.rec.id] = [
                (p, i) for p, i in self.by_rec.get(item.rec.id, []) if i is not item
            ]
        project.updated_ms = max(_now_s(), project.updated_ms + 1000)

    def listen(self, action: str, rec: Rec, old: dict[str, Any]) -> None:
        """A `World` listener: a deleted issue or PR leaves every board it was on, as on
        GitHub (the board's `updatedAt` moves)."""
        if action != "deleted":
            return
        for project, item in self.by_rec.pop(rec.id, []):
            if item in project.items:
                project.items.remove(item)
                project._keys = None
                project.updated_ms = max(_now_s(), project.updated_ms + 1000)

    def archive(self, key: str, item_id: int, archived: bool = True) -> None:
        project = self.get(key)
        item = project.item(item_id)
        item.archived = archived
        self._touch(project, item)

    @staticmethod
    def _touch(project: Project, item: Item) -> None:
        item.updated_ms = max(_now_s(), item.updated_ms + 1000)
        project.updated_ms = max(item.updated_ms, project.updated_ms + 1000)

    def truth(self, key: str) -> list[dict[str, Any]]:
        """The board as a correct connector sees it: one dict per item, values by name
        (options and iterations by name, drafts without `external_id`)."""
        project = self.get(key)
        return [_item_truth(project, it) for it in project.items]


def current_iteration(f: Field, today: date) -> Iteration | None:
    return next((it for it in f.iterations if it.holds(today)), None)


def _stored(f: Field, value: Any) -> Any:
    if f.data_type == "SINGLE_SELECT":
        return f.option(str(value)).id
    if f.data_type == "ITERATION":
        return f.iteration(str(value)).id
    if f.data_type == "NUMBER":
        return float(value)
    if f.data_type == "DATE":
        return date.fromisoformat(str(value)).isoformat()
    return str(value)


def display(f: Field, stored: Any) -> Any:
    """A stored value as people name it (options and iterations by name)."""
    if f.data_type == "SINGLE_SELECT":
        return next(o.name for o in f.options if o.id == stored)
    if f.data_type == "ITERATION":
        return f.iteration(str(stored)).title
    return stored


def _item_truth(project: Project, item: Item) -> dict[str, Any]:
    values = {
        name: display(project.field(name), v) for name, v in item.values.items() if name != "Title"
    }
    return {
        "id": item.database_id,
        "node_id": item.node_id,
        "type": item.type,
        "external_id": None if item.rec is None else item.rec.ext_id,
        "key": None if item.rec is None else item.rec.key,
        "title": item.title,
        "archived": item.archived,
        "values": values,
        "updated": datetime.fromtimestamp(item.updated_ms / 1000, UTC).isoformat(),
    }


def _short_id(rng: random.Random) -> str:
    """An option's or iteration's id, 8 hex digits like GitHub's."""
    return f"{rng.getrandbits(32):08x}"


def _now_s() -> int:
    return now_ms() // 1000 * 1000


# --- generation ------------------------------------------------------------------------------


def generate(seed: int, now: int, recs: list[Rec], sizes: dict[str, int]) -> Projects:
    """The three boards over `recs` (the GitHub tracker's issues and PRs), from `seed`."""
    rng = random.Random(seed * 31 + 19)
    live_recs = sorted((r for r in recs if not r.deleted), key=lambda r: r.id)
    today = datetime.fromtimestamp(now / 1000, UTC).date()
    gen = _Gen(rng, now, today)
    payments = gen.project("acme", "Organization", 12, "Payments roadmap", 9_100)
    payments.fields = gen.fields(("Todo", "In Progress", "Done"), with_custom=True)
    gen.fill(payments, live_recs, sizes.get("github_project", DEFAULT_PROJECT_ITEMS))
    platform = gen.project("acme", "Organization", 13, "Platform board", 9_200)
    platform.fields = gen.fields(("Backlog", "Doing", "Shipped"), with_custom=False)
    gen.fill(platform, live_recs, 12)
    personal = gen.project("octocat", "User", 1, "Personal tasks", 9_300)
    personal.fields = gen.fields(("Todo", "In Progress", "Done"), with_custom=False)
    gen.fill(personal, live_recs, 6)
    return Projects([payments, platform, personal])


class _Gen:
    def __init__(self, rng: random.Random, now: int, today: date) -> None:
        self.rng, self.now, self.today = rng, now, today
        self.next_field = 1
        self.next_item = 10_000_001

    def project(self, owner: str, kind: str, number: int, title: str, db_id: int) -> Project:
        created = (self.now - 200 * DAY_MS) // 1000 * 1000
        return Project(owner, kind, number, title, db_id, created, created)

    def fields(self, statuses: tuple[str, ...], with_custom: bool) -> list[Field]:
        out = []
        for name, kind in BUILTIN_FIELDS + (CUSTOM_FIELDS if with_custom else ()):
            out.append(self._field(name, kind))
        status = next(f for f in out if f.name == "Status")
        status.options = [
            Option(_short_id(self.rng), n, COLORS[i], f"{n} work") for i, n in enumerate(statuses)
        ]
        for f in out:
            if f.data_type == "ITERATION":
                self._iterations(f)
        return out

    def _field(self, name: str, kind: str) -> Field:
        f = Field(50_000_000 + self.next_field, name, kind, self.now - 200 * DAY_MS)
        self.next_field += 1
        return f

    def _iterations(self, f: Field) -> None:
        """2-week sprints: Sprint 14 holds today, 10-13 are completed, 15-16 come next."""
        start = self.today - timedelta(days=5)
        for n in range(10, 17):
            it = Iteration(
                _short_id(self.rng), f"Sprint {n}", start + timedelta(days=14 * (n - 14)), 14
            )
            (f.completed if n < 14 else f.iterations).append(it)
        f.completed.reverse()  # GitHub lists completed iterations newest first

    def fill(self, project: Project, recs: list[Rec], size: int) -> None:
        picked = self.rng.sample(recs, min(len(recs), size - size // 10))
        picked.sort(key=lambda r: r.created_ms)
        drafts = size - len(picked)
        entries: list[Rec | None] = [*picked, *([None] * drafts)]
        self.rng.shuffle(entries)
        for position, rec in enumerate(entries, 1):
            project.items.append(self._item(project, position, rec))
        project.updated_ms = max([project.updated_ms, *(i.updated_ms for i in project.items)])

    def _item(self, project: Project, position: int, rec: Rec | None) -> Item:
        created = rec.created_ms if rec else self.now - self.rng.randint(2, 90) * DAY_MS
        created = created // 1000 * 1000
        updated = created + self.rng.randint(0, max(self.now - created - 1000, 0) // 1000) * 1000
        title = (
            "" if rec else f"Draft: {self.rng.choice(('spike', 'idea', 'follow-up'))} {position}"
        )
        item = Item(self.next_item, position, rec, title, created, updated)
        self.next_item += 1
        item.values["Title"] = item.title
        for f in project.fields:
            value = self._value(f, rec)
            if value is not None:
                item.values[f.name] = value
        return item

    def _value(self, f: Field, rec: Rec | None) -> Any:
        rng = self.rng
        if f.name == "Status":
            return self._status(f, rec)
        if f.data_type == "ITERATION" and rng.random() < 0.7:
            return rng.choice([*f.completed, *f.iterations[:2]]).id
        if f.data_type == "NUMBER" and rng.random() < 0.6:
            return rng.choice(POINTS)
        if f.data_type == "TEXT" and f.name != "Title" and rng.random() < 0.5:
            return rng.choice(TEAMS)
        if f.data_type == "DATE" and rng.random() < 0.3:
            return (self.today + timedelta(days=rng.randint(-30, 60))).isoformat()
        return None

    def _status(self, f: Field, rec: Rec | None) -> str | None:
        """Mostly consistent with the issue's state: open → first two options, closed →
        the last; one in ten has no status."""
        if self.rng.random() < 0.1:
            return None
        first, second, last = f.options[0], f.options[1], f.options[-1]
        if rec is not None and rec.status != "todo":
            return last.id
        return self.rng.choice((first, first, second)).id
