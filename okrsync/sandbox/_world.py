"""Mutable state of every fake tracker and the operations that change it.

All access goes through `World.lock` (an RLock): handlers read pages under it and the
control API mutates under it, so a page is always rendered from one consistent state.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from okrsync.sandbox import _projects
from okrsync.sandbox._data import (
    GITHUB_REPOS,
    JIRA_PROJECTS,
    LABELS,
    SECTION_STATUS,
    STATUSES,
    TRACKERS,
    Generator,
    Rec,
    add_ties,
    now_ms,
)
from okrsync.sandbox._index import ScopeIndex

# Told of every change to a live record, under `World.lock`: (action, record, old values),
# action "created", "changed" (old: the fields' previous values), "deleted" or "moved" (old:
# scope, key).
Listener = Callable[[str, Rec, dict[str, Any]], None]


@dataclass(slots=True)
class AsanaEvent:
    seq: int
    project: str
    action: str
    task: str
    at_ms: int
    resource_type: str = "task"  # or "section"


@dataclass(slots=True)
class TrackerState:
    """One tracker: live index, every record by id, containers, access switches."""

    name: str
    scopes: list[str]
    recs: dict[int, Rec] = field(default_factory=dict)
    containers: list[Rec] = field(default_factory=list)
    index: ScopeIndex = field(default_factory=ScopeIndex)
    by_key: dict[str, Rec] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    revoked: bool = False
    counters: dict[str, int] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)

    def load(self, recs: list[Rec]) -> None:
        for r in recs:
            self.recs[r.id] = r
            self.by_key[r.key] = r
        self.index.bulk_load(recs)


class World:
    """Every tracker's state plus the Asana event log and sync tokens."""

    def __init__(self, seed: int, sizes: dict[str, int]) -> None:
        self.lock = threading.RLock()
        self.now = now_ms()
        self.rng = random.Random(seed)
        gen = Generator(seed, self.now)
        self.trackers: dict[str, TrackerState] = {}
        for tracker in ("jira", "jira_dc"):
            self._load_jira(gen, tracker, sizes.get(tracker, 0))
        self._load_asana(gen, sizes.get("asana", 0))
        self._load_github(gen, sizes.get("github", 0))
        github = list(self.trackers["github"].recs.values())
        self.projects = _projects.generate(seed, self.now, github, sizes)  # GitHub Projects
        self.events: list[AsanaEvent] = []
        self.sync_tokens: dict[str, tuple[str, int, int]] = {}
        self.listeners: list[Listener] = []  # the sandbox's webhooks (`_hooks.py`)
        self.listeners.append(self.projects.listen)  # deleted issues leave their boards

    def _load_jira(self, gen: Generator, tracker: str, n: int) -> None:
        recs = gen.jira(tracker, n)
        add_ties(recs, gen.rng)
        state = TrackerState(tracker, list(JIRA_PROJECTS[tracker]))
        state.counters = {p: sum(1 for r in recs if r.scope == p) for p in state.scopes}
        state.load(recs)
        self.trackers[tracker] = state

    def _load_asana(self, gen: Generator, n: int) -> None:
        tasks, sections, projects = gen.asana(n)
        add_ties(tasks, gen.rng)
        state = TrackerState("asana", list(projects))
        state.containers = sections
        state.by_key.update((s.key, s) for s in sections)
        state.load(tasks)
        self.asana_projects = projects
        self.trackers["asana"] = state

    def _load_github(self, gen: Generator, n: int) -> None:
        items, milestones = gen.github(n)
        add_ties(items, gen.rng)
        state = TrackerState("github", list(GITHUB_REPOS))
        state.containers = milestones
        state.counters = {
            repo: max([3] + [r.number for r in items if r.scope == repo]) for repo in GITHUB_REPOS
        }
        state.load(items)
        self.trackers["github"] = state

    def state(self, tracker: str) -> TrackerState:
        if tracker not in self.trackers:
            raise ValueError(f"unknown tracker {tracker!r}; known: {list(TRACKERS)}")
        return self.trackers[tracker]

    def rec(self, tracker: str, external_id: str) -> Rec:
        state = self.state(tracker)
        rec = state.recs.get(int(external_id)) if external_id.isdigit() else None
        if rec is None:
            raise KeyError(f"{tracker}: no item {external_id!r}")
        return rec

    # --- changes -------------------------------------------------------------------------

    def change(self, rec: Rec, fields: dict[str, Any], when_ms: int | None = None) -> None:
        """Apply field changes to a live record, bump `updated`, reindex, log the event."""
        state = self.state(rec.tracker)
        old = {
            name: rec.status if name == "status" else getattr(rec, name, None) for name in fields
        }
        state.index.remove(rec)
        for name, value in fields.items():
            self._set(rec, name, value)
        rec.updated_ms = when_ms if when_ms is not None else self._bump(rec)
        rec.cache.clear()
        state.index.add(rec)
        if rec.tracker == "asana":
            self.log_event(rec.scope, "changed", rec)
        self.tell("changed", rec, old)

    def _set(self, rec: Rec, name: str, value: Any) -> None:
        if name == "status":
            self._set_status(rec, str(value))
        elif name == "labels":
            rec.labels = tuple(sorted(value))
        elif name in ("title", "estimate", "assignee", "due", "milestone", "parent_key"):
            setattr(rec, name, value)
        else:
            raise ValueError(f"cannot update field {name!r}")

    def _set_status(self, rec: Rec, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if rec.tracker == "github" and status == "in_progress":
            raise ValueError("GitHub has no in_progress state")
        rec.status = status
        if rec.tracker == "asana":
            rec.completed = status == "done"
            rec.section = self._section_for(rec.scope, status)

    def _section_for(self, project: str, status: str) -> str:
        """The project's generated section of `status` (the first four, whatever their names
        are now: `_asana.rename_section` renames, added sections come after them)."""
        ours = [s for s in self.trackers["asana"].containers if s.scope == project]
        return str(ours[list(SECTION_STATUS.values()).index(status)].id)

    @staticmethod
    def _bump(rec: Rec) -> int:
        now = now_ms()
        if rec.tracker == "github":
            return max(now // 1000 * 1000, rec.updated_ms + 1000)
        return max(now, rec.updated_ms + 1)

    def mutate(self, tracker: str, n: int, rng_seed: int | None) -> list[str]:
        rng = self.rng if rng_seed is None else random.Random(rng_seed)
        state = self.state(tracker)
        live = [r for r in state.recs.values() if not r.deleted]
        picked = rng.sample(live, min(n, len(live)))
        for rec in picked:
            self.change(rec, self._random_change(rec, rng))
        return [r.ext_id for r in picked]

    @staticmethod
    def _random_change(rec: Rec, rng: random.Random) -> dict[str, Any]:
        what = rng.choice(("title", "status", "labels", "estimate"))
        if what == "title":
            return {"title": f"{rec.title.split(' (rev')[0]} (rev {rng.randint(1, 999)})"}
        if what == "status":
            choices = [
                s
                for s in STATUSES
                if s != rec.status and not (rec.tracker == "github" and s == "in_progress")
            ]
            return {"status": rng.choice(choices)}
        if what == "labels":
            return {"labels": rng.sample(LABELS, rng.randint(0, 3))}
        if rec.kind == "epic" or rec.tracker == "github":
            return {"title": f"{rec.title.split(' (rev')[0]} (rev {rng.randint(1, 999)})"}
        return {"estimate": rng.choice((None, 0.0, 1.0, 3.0, 5.0, 8.0))}

    def create(self, tracker: str, scope: str, title: str) -> Rec:
        """A new open issue (GitHub, Jira: a Task) or task (Asana) in `scope`, updated now."""
        state = self.state(tracker)
        if scope not in state.scopes:
            raise ValueError(f"{tracker}: unknown scope {scope!r}")
        now = now_ms() // 1000 * 1000 if tracker == "github" else now_ms()
        rid = max(state.recs, default=0) + 1
        rec = Rec(tracker, rid, str(rid), scope, "issue", title, "todo", now, now)
        if tracker == "asana":
            rec.kind, rec.issuetype = "task", "default_task"
            rec.section = self._section_for(scope, "todo")
        else:
            rec.number = self._next_number(state, scope)
            sep = "#" if tracker == "github" else "-"
            rec.key, rec.issuetype = f"{scope}{sep}{rec.number}", "Task"
        state.recs[rid], state.by_key[rec.key] = rec, rec
        state.index.add(rec)
        if tracker == "asana":
            self.log_event(scope, "added", rec)
        self.tell("created", rec, {})
        return rec

    @staticmethod
    def _next_number(state: TrackerState, scope: str) -> int:
        sep = "#" if state.name == "github" else "-"
        number = state.counters.get(scope, 0) + 1
        while f"{scope}{sep}{number}" in state.by_key:
            number += 1
        state.counters[scope] = number
        return number

    def delete(self, tracker: str, external_id: str) -> None:
        rec = self.rec(tracker, external_id)
        if rec.deleted:
            return
        self.state(tracker).index.remove(rec)
        rec.deleted = True
        rec.cache.clear()
        if tracker == "asana":
            self.log_event(rec.scope, "deleted", rec)
        self.tell("deleted", rec, {})

    def move(self, tracker: str, external_id: str, new_scope: str) -> None:
        rec = self.rec(tracker, external_id)
        state = self.state(tracker)
        if new_scope not in state.scopes:
            raise ValueError(f"{tracker}: unknown scope {new_scope!r}")
        if rec.deleted or rec.scope == new_scope:
            return
        old_scope, old_key = rec.scope, rec.key
        state.index.remove(rec)
        self._rescope(state, rec, new_scope)
        rec.updated_ms = self._bump(rec)
        rec.cache.clear()
        state.index.add(rec)
        if tracker in ("jira", "jira_dc"):
            self._move_children(state, rec, old_scope)
        if tracker == "asana":
            self.log_event(old_scope, "removed", rec)
            self.log_event(new_scope, "added", rec)
        self.tell("moved", rec, {"scope": old_scope, "key": old_key})

    def _rescope(self, state: TrackerState, rec: Rec, new_scope: str) -> None:
        old_key = rec.key
        rec.scope = new_scope
        if rec.tracker == "asana":
            rec.section = self._section_for(new_scope, rec.status)
            return
        state.counters[new_scope] = state.counters.get(new_scope, 0) + 1
        rec.number = state.counters[new_scope]
        rec.key = (
            f"{new_scope}#{rec.number}" if rec.tracker == "github" else f"{new_scope}-{rec.number}"
        )
        rec.prev_keys.append(old_key)
        rec.milestone = None if rec.tracker == "github" else rec.milestone
        state.moved[old_key] = rec.key
        state.by_key[rec.key] = rec

    def _move_children(self, state: TrackerState, parent: Rec, old_scope: str) -> None:
        """Jira moves sub-tasks with their parent; stories under a moved epic get the new key."""
        for child in list(state.recs.values()):
            if child.deleted or child.parent_key != parent.prev_keys[-1]:
                continue
            if child.issuetype == "Sub-task" and child.scope == old_scope:
                state.index.remove(child)
                self._rescope(state, child, parent.scope)
                child.parent_key = parent.key
                child.updated_ms = self._bump(child)
                child.cache.clear()
                state.index.add(child)
            else:
                self.change(child, {"parent_key": parent.key})

    def tell(self, action: str, rec: Rec, old: dict[str, Any]) -> None:
        """Tell every listener of a change (see `Listener`); a listener never raises."""
        for listener in self.listeners:
            listener(action, rec, old)

    def log_event(self, project: str, action: str, rec: Rec) -> None:
        seq = len(self.events) + 1
        rtype = "section" if rec.kind == "section" else "task"
        self.events.append(AsanaEvent(seq, project, action, str(rec.id), now_ms(), rtype))

    def new_sync_token(self, project: str) -> str:
        token = secrets.token_hex(16)
        self.sync_tokens[token] = (project, len(self.events), now_ms())
        return token

    def truth(self, tracker: str) -> list[Rec]:
        state = self.state(tracker)
        return [*state.recs.values(), *state.containers]
