"""GitHub Projects (v2) through GraphQL: the queries, and board items as `WorkItem`s.

Vendor facts relied on (GitHub GraphQL API, `ProjectV2`):

- A project is found by its owner's login and its number, on `organization(login:)` or
  `user(login:)`; the wrong owner type answers a `NOT_FOUND` error. The owner type found is
  kept in the cursor, so later runs ask once.
- `ProjectV2.updatedAt` moves when the board changes (an item added, removed, archived, a field
  value set). `ProjectV2.items` has no `since` filter and no order by update: a changed board
  is listed whole (`first: 100`, `after` cursors) and only the items whose item or content
  `updatedAt` is at or after the watermark are yielded.
- An item is a `ProjectV2Item` with `isArchived`, `updatedAt`, `fieldValues` (a union: single
  select `name`, iteration `title` + `startDate` + `duration` days, `number`, `text`, `date`)
  and `content`: an `Issue`, a `PullRequest` or a `DraftIssue` (which has no number and no
  repository; the item's `databaseId` names it).
- `Issue.projectItems` / `PullRequest.projectItems` list the boards an issue is on, with the
  same field values: `nodes(ids:)` reads them for a REST page's issues in one request.

Issues and PRs become exactly the `WorkItem` the REST pass makes of them (`rest_shape` turns the
GraphQL content into the REST JSON and `Normaliser.issue` does the rest), plus the board data
(`BoardReader.apply`). Draft issues are work items (kind task, item type `draft_issue`) whose
container is the project scope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from okrsync.models import ItemKind, StatusCategory, WorkItem
from okrsync.statuses import fold

from .graphql import RATE_LIMIT_SELECTION
from .normalise import (
    CLOSED,
    Normaliser,
    Skipped,
    _login,
    _user_ids,
    milestone,
    milestone_id,
    parse_time,
)

Json = dict[str, Any]
PAGE = 100
BOARDS_PER_ISSUE = 20  # the boards of one issue read (its `projectItems`)
FIELDS_PER_ITEM = 50  # the field values of one item read
LABELS_PER_ISSUE = 100

_NAMED = "name"
_FIELD_NAME = (
    "field { ... on ProjectV2Field { name } ... on ProjectV2IterationField { name } "
    "... on ProjectV2SingleSelectField { name } }"
)
_VALUES = (
    f"fieldValues(first: {FIELDS_PER_ITEM}) {{ nodes {{ "
    f"... on ProjectV2ItemFieldSingleSelectValue {{ name {_FIELD_NAME} }} "
    f"... on ProjectV2ItemFieldIterationValue {{ title startDate duration {_FIELD_NAME} }} "
    f"... on ProjectV2ItemFieldNumberValue {{ number {_FIELD_NAME} }} "
    f"... on ProjectV2ItemFieldTextValue {{ text {_FIELD_NAME} }} "
    f"... on ProjectV2ItemFieldDateValue {{ date {_FIELD_NAME} }} }} }}"
)
_BOARD_ITEM = f"id databaseId isArchived updatedAt project {{ id }} {_VALUES}"
_PROJECT_ITEMS = f"projectItems(first: {BOARDS_PER_ISSUE}) {{ nodes {{ {_BOARD_ITEM} }} }}"
_MILESTONE = "milestone { number title state dueOn createdAt updatedAt closedAt url }"
_COMMON = (
    "id databaseId number title createdAt updatedAt closedAt url "
    "repository { nameWithOwner } author { login } "
    "assignees(first: 1) { nodes { login databaseId } } "
    f"labels(first: {LABELS_PER_ISSUE}) {{ nodes {{ name }} }} {_MILESTONE}"
)


def project_query(owner_type: str) -> str:
    """A project's id, title and `updatedAt`: the one request of an unchanged board."""
    return (
        f"query($login: String!, $number: Int!) {{ {owner_type}(login: $login) {{ "
        f"projectV2(number: $number) {{ id title updatedAt }} }} {RATE_LIMIT_SELECTION} }}"
    )


def items_query(all_boards: bool) -> str:
    """One page of a project's items; `all_boards`: each issue's other boards too (a
    connector with several project scopes makes every item complete in one pass)."""
    extra = _PROJECT_ITEMS if all_boards else ""
    content = (
        "content { ... on DraftIssue { id title createdAt updatedAt "
        "assignees(first: 1) { nodes { login databaseId } } } "
        f"... on Issue {{ {_COMMON} state stateReason {extra} }} "
        f"... on PullRequest {{ {_COMMON} prState: state merged mergedAt {extra} }} }}"
    )
    return (
        "query($id: ID!, $after: String) { node(id: $id) { ... on ProjectV2 { "
        f"items(first: {PAGE}, after: $after) {{ pageInfo {{ hasNextPage endCursor }} "
        f"nodes {{ {_BOARD_ITEM} {content} }} }} }} }} {RATE_LIMIT_SELECTION} }}"
    )


NODES_QUERY = (
    "query($ids: [ID!]!) { nodes(ids: $ids) { "
    f"... on Issue {{ id {_PROJECT_ITEMS} }} ... on PullRequest {{ id {_PROJECT_ITEMS} }} }} "
    f"{RATE_LIMIT_SELECTION} }}"
)


# --- the pure part --------------------------------------------------------------------


@dataclass(frozen=True)
class Board:
    """A configured project scope as found: `project:acme/12`, its node id and title."""

    scope: str
    id: str
    title: str
    updated: str


@dataclass
class Listed:
    """What one page of board items gave: the items to yield, every live id by container."""

    items: list[WorkItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ids: dict[str, list[str]] = field(default_factory=dict)
    milestones: set[str] = field(default_factory=set)  # yielded once a page, as REST does

    def seen(self, container: str, external_id: str) -> None:
        self.ids.setdefault(container, []).append(external_id)


@dataclass(frozen=True)
class BoardReader:
    """Turns board items (and the REST pass's issues' boards) into complete work items."""

    connector: str
    norm: Normaliser
    boards: Mapping[str, Board]  # by project node id, in scope order
    repos: Mapping[str, str]  # folded `owner/repo` → the scope as configured
    status_field: str
    estimate_field: str | None

    @classmethod
    def build(
        cls,
        connector: str,
        norm: Normaliser,
        boards: Iterable[Board],
        repos: Iterable[str],
        status_field: str,
        estimate_field: str | None,
    ) -> BoardReader:
        est = fold(estimate_field) if estimate_field else None
        by_id = {b.id: b for b in boards}
        return cls(connector, norm, by_id, {fold(r): r for r in repos}, fold(status_field), est)

    def page(self, board: Board, nodes: list[Json], since: datetime | None) -> Listed:
        """A page of `board`'s items: the live ones changed since `since`, all live ids."""
        out = Listed()
        for node in nodes:
            try:
                self._one(board, node, since, out)
            except (KeyError, TypeError, ValueError) as exc:
                ident = node.get("databaseId") if isinstance(node, dict) else None
                out.skipped.append(Skipped(ident, f"{type(exc).__name__}: {exc}"))
        return out

    def _one(self, board: Board, node: Json, since: datetime | None, out: Listed) -> None:
        if node.get("isArchived"):
            return  # archived: no longer work of the board (its census drops it)
        content = node.get("content")
        if not isinstance(content, dict) or not content:
            return  # content the token cannot see (a private repository's issue)
        if "number" not in content:
            item = self.draft(board, node, content)
            out.seen(board.scope, item.external_id)
            if since is None or item.updated >= since:
                out.items.append(item)
            return
        repo = self.repo_scope(content["repository"]["nameWithOwner"])
        out.seen(repo, str(content["databaseId"]))
        if isinstance(content.get("milestone"), dict):  # present, changed or not (census)
            out.seen(repo, milestone_id(repo, content["milestone"]))
        if since is not None and max(_stamp(node), _stamp(content)) < since:
            return
        entries = self.entries(content) if "projectItems" in content else [(board, node)]
        raw = rest_shape(content)
        ms = raw.get("milestone")
        if (
            isinstance(ms, dict)
            and ms.get("created_at")
            and ms.get("updated_at")
            and milestone_id(repo, ms) not in out.milestones
        ):
            m = milestone(self.connector, ms, repo)
            out.milestones.add(m.external_id)
            out.items.append(m)
        out.items.append(self.apply(self.norm.issue(raw, repo), entries))

    def repo_scope(self, name_with_owner: str) -> str:
        """A listed repo as its scope is spelt (one container for both passes)."""
        return self.repos.get(fold(name_with_owner), name_with_owner)

    def entries(self, content: Json) -> list[tuple[Board, Json]]:
        """The connector's boards among an issue's `projectItems`, in scope order."""
        conn = content.get("projectItems")
        nodes = conn.get("nodes") if isinstance(conn, dict) else None
        found: dict[str, Json] = {}
        for n in nodes or []:
            pid = (n.get("project") or {}).get("id") if isinstance(n, dict) else None
            if isinstance(pid, str) and pid in self.boards and not n.get("isArchived"):
                found[pid] = n
        return [(b, found[pid]) for pid, b in self.boards.items() if pid in found]

    def draft(self, board: Board, node: Json, content: Json) -> WorkItem:
        """A draft issue of the board: a task whose container is the project."""
        key = f"{board.scope}#draft-{node['databaseId']}"
        assignee = _rest_assignee(content)
        item = WorkItem(
            connector=self.connector,
            external_id=key,
            key=key,
            kind=ItemKind.TASK,
            title=str(content.get("title") or ""),
            status=StatusCategory.TODO,
            status_raw="draft",
            created=parse_time(content["createdAt"]),
            updated=parse_time(content["updatedAt"]),
            item_type="draft_issue",
            container=board.scope,
            container_name=board.title,
            assignee=_login(assignee),
            assignee_ids=_user_ids(assignee),
            status_basis=StatusCategory.TODO,
        )
        return self.apply(item, [(board, node)])

    def apply(self, item: WorkItem, entries: list[tuple[Board, Json]]) -> WorkItem:
        """`item` with its boards' data: boards, titles, field values (`custom`), iteration,
        estimate, the board status among its status names, `updated` the newest change."""
        if not entries:
            return item
        statuses: list[str] = []
        custom: dict[str, str] = {}
        for _board, node in entries:
            item.updated = max(item.updated, _stamp(node))
            for name, value in _values(node):
                self._field(item, name, value, custom, statuses)
        item.boards = tuple(b.scope for b, _ in entries)
        item.board_names = tuple(b.title for b, _ in entries)
        item.custom = {**custom, **item.custom}
        if statuses:
            self._status(item, statuses)
        return item

    def _field(
        self, item: WorkItem, name: str, value: Json, custom: dict[str, str], statuses: list[str]
    ) -> None:
        text = _text(value)
        if text is None or fold(name) == "title":
            return
        custom.setdefault(name, text)
        if "startDate" in value and item.iteration is None:
            start = date.fromisoformat(value["startDate"])
            item.iteration, item.iteration_start = text, start
            item.iteration_end = start + timedelta(days=int(value.get("duration") or 0))
        elif "name" in value and fold(name) == self.status_field:
            statuses.append(text)
        elif "number" in value and fold(name) == self.estimate_field:
            item.estimate = float(value["number"])

    def _status(self, item: WorkItem, statuses: list[str]) -> None:
        item.status_names = (*item.status_names, *statuses)
        basis = item.status_basis or item.status
        item.status = self.norm.names.categorise(basis, item.status_names)
        if item.status in CLOSED and item.completed_at is None:
            item.completed_at = item.updated  # closed on the board: as of its last change
        elif item.status not in CLOSED:
            item.completed_at = None


def rest_shape(content: Json) -> Json:
    """An `Issue` / `PullRequest` of GraphQL as the REST issues listing gives it."""
    is_pr = "merged" in content
    state = str(content.get("prState") or content.get("state") or "OPEN").lower()
    reason = content.get("stateReason")
    labels = (content.get("labels") or {}).get("nodes") or []
    raw: Json = {
        "id": content["databaseId"],
        "number": content["number"],
        "title": content.get("title"),
        "state": "closed" if state == "merged" else state,
        "state_reason": reason.lower() if isinstance(reason, str) else None,
        "created_at": content["createdAt"],
        "updated_at": content["updatedAt"],
        "closed_at": content.get("closedAt"),
        "html_url": content.get("url"),
        "labels": [{"name": lab["name"]} for lab in labels if isinstance(lab, dict)],
        "assignee": _rest_assignee(content),
        "user": content.get("author"),
        "milestone": _rest_milestone(content.get("milestone")),
    }
    if is_pr:
        raw["pull_request"] = {"merged_at": content.get("mergedAt")}
    return raw


def _rest_assignee(content: Json) -> Json | None:
    """The first assignee of GitHub's GraphQL as REST's `assignee` (`databaseId` is `id`)."""
    people = (content.get("assignees") or {}).get("nodes") or []
    first = people[0] if people and isinstance(people[0], dict) else None
    return {"login": first.get("login"), "id": first.get("databaseId")} if first else None


def _rest_milestone(ms: Any) -> Json | None:
    if not isinstance(ms, dict):
        return None
    return {
        "number": ms["number"],
        "title": ms.get("title"),
        "state": str(ms.get("state") or "OPEN").lower(),
        "due_on": ms.get("dueOn"),
        "created_at": ms["createdAt"],
        "updated_at": ms["updatedAt"],
        "closed_at": ms.get("closedAt"),
        "html_url": ms.get("url"),
    }


def _values(node: Json) -> Iterable[tuple[str, Json]]:
    """(field name, value object) of an item's field values (unnamed ones skipped)."""
    conn = node.get("fieldValues")
    for value in (conn.get("nodes") if isinstance(conn, dict) else None) or []:
        named = value.get("field") if isinstance(value, dict) else None
        name = named.get(_NAMED) if isinstance(named, dict) else None
        if isinstance(name, str) and name:
            yield name, value


def _text(value: Json) -> str | None:
    """A field value as text: option name, iteration title, number (no ".0"), text, date."""
    for key in ("name", "title", "text", "date"):
        if isinstance(value.get(key), str):
            return str(value[key])
    num = value.get("number")
    if isinstance(num, int | float) and not isinstance(num, bool):
        return str(int(num)) if float(num).is_integer() else repr(float(num))
    return None


def _stamp(node: Json) -> datetime:
    return parse_time(node["updatedAt"])
