"""Jira issue JSON → `WorkItem`: pure functions, no I/O.

Vendor facts relied on (Jira Cloud REST v3 and Server/DC REST v2 share the issue shape):

- `id` is stable across moves; `key` changes when an issue moves to another project.
- Times look like `2026-11-25T10:00:00.000-0800` (offset without a colon, in the *viewing
  user's* timezone); they are converted to aware UTC datetimes here.
- `fields.status.statusCategory.key` is `new` / `indeterminate` / `done`; the resolution and
  status names decide "dropped" (Won't Do, Duplicate, ...).
- `fields.issuetype` carries `name` and (Cloud) `hierarchyLevel` (1 = epic level).
- `fields.parent` is the sub-task parent (DC) or the parent of any issue (Cloud, epics too); on
  DC an issue's epic is the value of the "Epic Link" custom field (an issue key).
- `self` URLs are never followed; the browse URL is built from the configured base URL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from okrsync.models import ItemKind, StatusCategory, WorkItem
from okrsync.statuses import StatusNames

BASE_FIELDS = (
    "summary",
    "status",
    "resolution",
    "resolutiondate",
    "issuetype",
    "project",
    "parent",
    "labels",
    "assignee",
    "duedate",
    "created",
    "updated",
    "fixVersions",
)
_CATEGORIES = {
    "new": StatusCategory.TODO,
    "indeterminate": StatusCategory.IN_PROGRESS,
    "done": StatusCategory.DONE,
}


# Jira states a category for every status (statusCategory), so the plug-in adds no names of
# its own: `dropped_statuses` (status or resolution) and `status_map` refine it.
STATUS_VOCABULARY: dict[str, StatusCategory] = {}
CLOSED = (StatusCategory.DONE, StatusCategory.DROPPED)


class IssueShapeError(ValueError):
    """An issue lacks something every issue must have (id, key, created, updated)."""


@dataclass(frozen=True, slots=True)
class Normaliser:
    """What turning an issue into a `WorkItem` needs to know about this connector."""

    connector: str
    base_url: str
    names: StatusNames
    estimate_field: str | None = None
    epic_link_field: str | None = None

    @classmethod
    def build(
        cls,
        connector: str,
        base_url: str,
        dropped: Iterable[str],
        estimate_field: str | None = None,
        epic_link_field: str | None = None,
        *,
        status_map: Mapping[str, StatusCategory] | None = None,
    ) -> Normaliser:
        """`dropped`: names meaning dropped; `status_map` (wins): name → category."""
        names = StatusNames.build(STATUS_VOCABULARY, dropped, status_map or {})
        return cls(connector, base_url, names, estimate_field, epic_link_field)

    def fields(self) -> list[str]:
        """The `fields` request parameter: only what `item` reads."""
        extra = [f for f in (self.estimate_field, self.epic_link_field) if f]
        return [*BASE_FIELDS, *extra]

    def item(self, issue: Mapping[str, Any]) -> WorkItem:
        """Normalise one issue; raises IssueShapeError when a required value is missing."""
        f: Mapping[str, Any] = issue.get("fields") or {}
        issue_id, key = str(issue.get("id") or ""), str(issue.get("key") or "")
        if not issue_id or not key:
            raise IssueShapeError("issue without id or key")
        issuetype = _obj(f, "issuetype")
        type_name = str(issuetype.get("name") or "")
        status_obj = _obj(f, "status")
        status_raw = str(status_obj.get("name") or "")
        resolution = str(_obj(f, "resolution").get("name") or "")
        category = str(_obj(status_obj, "statusCategory").get("key") or "")
        basis = _CATEGORIES.get(category, StatusCategory.TODO)
        names = (status_raw, resolution) if resolution else (status_raw,) if status_raw else ()
        status = self.names.categorise(basis, names)
        project_obj = _obj(f, "project")
        project = str(project_obj.get("key") or "")
        assignee = f.get("assignee")
        return WorkItem(
            connector=self.connector,
            external_id=issue_id,
            key=key,
            kind=ItemKind.EPIC if _is_epic(issuetype) else ItemKind.ISSUE,
            title=str(f.get("summary") or ""),
            status=status,
            status_raw=status_raw,
            created=_required_time(f, "created"),
            updated=_required_time(f, "updated"),
            item_type=type_name or None,
            url=f"{self.base_url}/browse/{key}",
            container=project or None,
            container_name=_other(project_obj.get("name"), project),
            parent_key=self.parent_key(f),
            labels=tuple(str(x) for x in f.get("labels") or ()),
            milestone=_first_name(f.get("fixVersions")),
            assignee=_person(assignee),
            assignee_ids=_identities(assignee),
            estimate=_number(f.get(self.estimate_field)) if self.estimate_field else None,
            due=_date(f.get("duedate")),
            completed_at=parse_time(f.get("resolutiondate")) if status in CLOSED else None,
            custom={
                "issuetype": type_name,
                "project": project,
                "resolution": resolution,
            },
            status_basis=basis,
            status_names=names,
        )

    def parent_key(self, f: Mapping[str, Any]) -> str | None:
        """`parent.key` (sub-task parent; on Cloud also the epic), else DC's Epic Link value."""
        parent = _obj(f, "parent").get("key")
        if parent:
            return str(parent)
        epic = f.get(self.epic_link_field) if self.epic_link_field else None
        return str(epic) if isinstance(epic, str) and epic else None


def parse_time(value: Any) -> datetime | None:
    """Jira time (`2026-11-25T10:00:00.000-0800`, or epoch ms) → aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if parsed.tzinfo is UTC:  # `+0000`: nothing to convert
        return parsed
    if parsed.tzinfo is None:  # Jira always sends an offset; never guess a local zone
        return None
    return parsed.astimezone(UTC)


def epoch_ms(moment: datetime) -> int:
    """Aware datetime → epoch milliseconds (the timezone-safe JQL literal)."""
    return int(moment.timestamp() * 1000)


def _required_time(f: Mapping[str, Any], name: str) -> datetime:
    moment = parse_time(f.get(name))
    if moment is None:
        raise IssueShapeError(f"issue without a valid {name!r}")
    return moment


def _obj(mapping: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = mapping.get(name)
    # JSON objects arrive as dicts; the exact type check skips the ABC machinery (hot path).
    return value if isinstance(value, dict) else {}


def _is_epic(issuetype: Mapping[str, Any]) -> bool:
    name = str(issuetype.get("name") or "").casefold()
    return name == "epic" or issuetype.get("hierarchyLevel") == 1


def _first_name(values: Any) -> str | None:
    for value in values or ():
        if isinstance(value, dict) and value.get("name"):
            return str(value["name"])
    return None


def _person(user: Any) -> str | None:
    if not isinstance(user, dict):
        return None
    for name in ("displayName", "accountId", "name"):
        if user.get(name):
            return str(user[name])
    return None


def _identities(user: Any) -> tuple[str, ...]:
    """The assignee's ids besides the display name: e-mail (when the user's privacy settings
    show it), Cloud account id, Server/DC username and user key."""
    if not isinstance(user, dict):
        return ()
    out: list[str] = []
    for k in ("emailAddress", "accountId", "name", "key"):
        v = user.get(k)
        if v and isinstance(v, str) and v not in out:
            out.append(v)
    return tuple(out)


def _other(name: Any, key: str) -> str | None:
    """`name` when it says something `key` does not."""
    return str(name) if isinstance(name, str) and name and name != key else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None
