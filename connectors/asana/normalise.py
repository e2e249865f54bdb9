"""Asana tasks, milestones and sections as `WorkItem`s: pure functions of the JSON.

Status: `completed` is the basis (done, else to do) and the section the name
(`okrsync.statuses`): a section mapped to dropped (`dropped_statuses`, `status_map`) wins;
else completed is done; an open task in a section mapped to a category (`STATUS_VOCABULARY`:
"In Progress", "Doing", "Review", "QA", "Blocked", ...; then `status_map`) takes it; else to
do. Names are compared loosely (trimmed, typographic apostrophes straightened, case-folded).
A dropped task keeps its `completed_at` when Asana gives one.
The estimate is the number custom field named `estimate_field` (default "Estimate").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from okrsync.models import ItemKind, StatusCategory, WorkItem
from okrsync.statuses import COMMON_IN_PROGRESS, StatusNames, in_progress

DEFAULT_ESTIMATE_FIELD = "Estimate"
# Section names that mean work has started (the names boards commonly use).
STATUS_VOCABULARY: dict[str, StatusCategory] = in_progress(COMMON_IN_PROGRESS)
JSON = dict[str, Any]


@dataclass(frozen=True)
class Normaliser:
    """Turns Asana task and section records of one project into work items."""

    connector: str
    names: StatusNames
    estimate: str

    @classmethod
    def build(
        cls,
        connector: str,
        dropped_statuses: Iterable[str],
        estimate_field: str | None,
        status_map: Mapping[str, StatusCategory] | None = None,
    ) -> Normaliser:
        """`dropped_statuses`: sections meaning dropped; `status_map` (wins): name → category."""
        names = StatusNames.build(STATUS_VOCABULARY, dropped_statuses, status_map or {})
        return cls(connector, names, _fold(estimate_field or DEFAULT_ESTIMATE_FIELD))

    def task(self, raw: JSON, gid: str) -> WorkItem:
        project, section = _membership(raw, gid)
        completed = bool(raw.get("completed"))
        subtype = raw.get("resource_subtype") or "default_task"
        created = parse_time(raw["created_at"])
        completed_at = raw.get("completed_at")
        return WorkItem(
            connector=self.connector,
            external_id=str(raw["gid"]),
            key=str(raw["gid"]),
            kind=ItemKind.MILESTONE if subtype == "milestone" else ItemKind.TASK,
            title=str(raw.get("name") or ""),
            status=self.status(completed, section),
            status_raw=_status_raw(completed, section),
            created=created,
            updated=parse_time(raw.get("modified_at") or raw["created_at"]),
            item_type=subtype,
            url=raw.get("permalink_url"),
            container=gid,
            container_name=project,
            parent_key=json_obj(raw, "parent").get("gid"),
            labels=tuple(str(t["name"]) for t in json_list(raw, "tags") if t.get("name")),
            section=section,
            assignee=json_obj(raw, "assignee").get("name"),
            assignee_ids=_identities(json_obj(raw, "assignee")),
            estimate=self.estimate_of(raw),
            due=date.fromisoformat(raw["due_on"]) if raw.get("due_on") else None,
            completed_at=parse_time(completed_at) if completed and completed_at else None,
            custom={k: v for k, v in (("project", project), ("section", section)) if v},
            status_basis=_basis(completed),
            status_names=(section,) if section else (),
        )

    def section(self, raw: JSON, gid: str, seen: datetime) -> WorkItem:
        """A section of project `gid` (`seen`: the run's start, for one without a date)."""
        created = raw.get("created_at")
        return WorkItem(
            connector=self.connector,
            external_id=f"section:{raw['gid']}",
            key=f"section:{raw['gid']}",
            kind=ItemKind.SECTION,
            title=str(raw.get("name") or ""),
            status=StatusCategory.TODO,
            status_raw="section",
            created=parse_time(created) if created else seen,
            # Sections carry no modification time; their creation time keeps a re-listing from
            # counting every section as changed (a rename still shows: the store compares titles).
            updated=parse_time(created) if created else seen,
            item_type="section",
            container=gid,
        )

    def status(self, completed: bool, section: str | None) -> StatusCategory:
        return self.names.categorise(_basis(completed), (section,))

    def estimate_of(self, raw: JSON) -> float | None:
        for cf in json_list(raw, "custom_fields"):
            if _fold(str(cf.get("name") or "")) != self.estimate:
                continue
            value = cf.get("number_value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        return None


def _membership(raw: JSON, gid: str) -> tuple[str | None, str | None]:
    """(project name, section name) of the task's membership in project `gid`."""
    for m in json_list(raw, "memberships"):
        project = json_obj(m, "project")
        if project.get("gid") == gid:
            return project.get("name"), json_obj(m, "section").get("name")
    return None, None


def _identities(user: JSON) -> tuple[str, ...]:
    """The assignee's e-mail and user gid (the display name is `assignee`)."""
    return tuple(str(user[k]) for k in ("email", "gid") if isinstance(user.get(k), str) and user[k])


def _basis(completed: bool) -> StatusCategory:
    return StatusCategory.DONE if completed else StatusCategory.TODO


def _status_raw(completed: bool, section: str | None) -> str:
    state = "completed" if completed else "open"
    return f"{state} / {section}" if section else state


@functools.lru_cache(maxsize=4096)
def _fold(name: str) -> str:
    """Section and field names, compared loosely (a few distinct names, seen on every task)."""
    return name.strip().replace("\u2019", "'").casefold()


def json_obj(raw: JSON, key: str) -> JSON:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def json_list(raw: JSON, key: str) -> list[JSON]:
    value = raw.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def parse_time(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is UTC:  # Asana's own form (`...Z`)
        return dt
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
