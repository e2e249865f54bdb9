"""Domain types shared by every layer: the normalised work item, a page of them, a run's result.

Vendor JSON never leaves `connectors/`; everything after a connector sees only these types.
"""

from __future__ import annotations

import enum
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

Cursor = dict[str, Any]
"""A connector's resumable position, JSON-serialisable, opaque to the core."""


class ItemKind(enum.StrEnum):
    """What a work item is; the last five are containers that never count as work."""

    TASK = "task"
    ISSUE = "issue"
    PULL_REQUEST = "pull_request"
    EPIC = "epic"
    PROJECT = "project"
    MILESTONE = "milestone"
    SECTION = "section"

    @property
    def is_container(self) -> bool:
        return self in CONTAINER_KINDS


CONTAINER_KINDS = frozenset({ItemKind.EPIC, ItemKind.PROJECT, ItemKind.MILESTONE, ItemKind.SECTION})


class StatusCategory(enum.StrEnum):
    """The four states every tracker status is folded into."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    DROPPED = "dropped"


DEFAULT_DROPPED_NAMES = (
    "won't do",
    "wont do",
    "cancelled",
    "canceled",
    "declined",
    "rejected",
    "duplicate",
)


@dataclass(slots=True)
class WorkItem:
    """One task, issue, pull request or container, in one shape for every tracker.

    `external_id` is the tracker's stable id (Jira issue id, Asana gid, GitHub issue id);
    `key` is the human key (PROJ-12, owner/repo#12, the Asana gid); `item_type` is the
    tracker's own type name (Bug, Story, default_task, ...). `previous_keys` is kept by the
    store when an item's key changes (a move), connectors need not fill it.

    `status` is `statuses.categorise(status_basis, names of status_names)`: `status_basis` is
    what the tracker's own facts say (Jira's status category, Asana's `completed`, GitHub's
    state), `status_names` the team's names the category also depends on (Jira status and
    resolution, Asana section, GitHub labels and state reason). Stored with the item, they let
    `okrsync remap` apply a changed `status_map` without a re-pull; a connector that leaves
    `status_basis` None opts out of that (its status is kept as sent).

    `container_name` is the container's human name where the tracker has one besides its id
    (an Asana project's name, a Jira project's name); a `container` rule matches either.
    `assignee` is the display name (GitHub: the login) and `assignee_ids` the assignee's other
    identities the tracker gives (e-mail, username or login, account id); an `assignee` rule
    matches any of them.
    """

    connector: str
    external_id: str
    key: str
    kind: ItemKind
    title: str
    status: StatusCategory
    status_raw: str
    created: datetime
    updated: datetime
    item_type: str | None = None
    url: str | None = None
    container: str | None = None
    parent_key: str | None = None
    labels: tuple[str, ...] = ()
    milestone: str | None = None
    section: str | None = None
    assignee: str | None = None
    estimate: float | None = None
    due: date | None = None
    completed_at: datetime | None = None
    custom: dict[str, str] = field(default_factory=dict)
    previous_keys: tuple[str, ...] = ()
    status_basis: StatusCategory | None = None
    status_names: tuple[str, ...] = ()
    container_name: str | None = None
    assignee_ids: tuple[str, ...] = ()
    # GitHub Projects (issue 19): the boards the item is on ("project:acme/12") and their
    # titles, and its iteration on them (title; first day; the day after the last).
    boards: tuple[str, ...] = ()
    board_names: tuple[str, ...] = ()
    iteration: str | None = None
    iteration_start: date | None = None
    iteration_end: date | None = None


@dataclass(frozen=True, slots=True)
class StoredItem:
    """The matchable fields of a stored work item, as the store reads them for a remap."""

    connector: str
    external_id: str
    key: str
    kind: str
    item_type: str | None
    title: str
    container: str | None
    parent_key: str | None
    labels: tuple[str, ...]
    milestone: str | None
    section: str | None
    assignee: str | None
    custom: Mapping[str, str]
    previous_keys: tuple[str, ...]
    deleted: bool = False
    container_name: str | None = None
    assignee_ids: tuple[str, ...] = ()
    boards: tuple[str, ...] = ()
    board_names: tuple[str, ...] = ()
    iteration: str | None = None
    iteration_start: date | None = None
    iteration_end: date | None = None

    @property
    def ident(self) -> tuple[str, str]:
        return (self.connector, self.external_id)

    @property
    def is_work(self) -> bool:
        """A live work item: counted, unlike containers and deleted items."""
        return not self.deleted and self.kind not in CONTAINER_KINDS


@dataclass(frozen=True, slots=True)
class KeyNode:
    """An item as its descendants' ancestry sees it: its key, parent and earlier keys."""

    key: str
    parent_key: str | None
    previous_keys: tuple[str, ...] = ()


@dataclass(slots=True)
class Lineage:
    """What the store knows that a page's links depend on (`Store.lineage`).

    `stored`: the stored key and earlier keys of the page's items that are already stored,
    by (connector, external_id). `ancestors`: the stored items up the page's parent chains,
    by connector, in the order they were found (nearest first); a key looked up but not
    stored appears as a root, `KeyNode(key, None)`.
    """

    stored: dict[tuple[str, str], KeyNode] = field(default_factory=dict)
    ancestors: list[tuple[str, KeyNode]] = field(default_factory=list)


class IdList:
    """External ids gathered by a full listing, for a census: compact and unordered.

    A census holds every id of a container until its last page; as a list of strings that is
    ~70 bytes per id (7 MB for 100k items) kept alive through the whole listing. Ids written
    as plain decimal numbers (GitHub's, Jira's and Asana's) are kept as 8-byte integers
    instead, any other id (Asana's `section:<gid>`) as its string. Duplicate numbers are kept
    (a census reads them as one); the order is not.
    """

    __slots__ = ("_nums", "_strs")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._nums = array("q")
        self._strs: dict[str, None] = {}  # few, and listed again on many pages (milestones)
        self.extend(ids)

    def extend(self, ids: Iterable[str]) -> None:
        nums, strs = self._nums, self._strs
        for i in ids:
            # canonical decimals only (no sign, no leading zero), so str(int(i)) == i
            if i.isascii() and i.isdigit() and len(i) < 19 and (i[0] != "0" or i == "0"):
                nums.append(int(i))
            else:
                strs[i] = None

    def clear(self) -> None:
        del self._nums[:]
        self._strs.clear()

    def __len__(self) -> int:
        return len(self._nums) + len(self._strs)

    def __iter__(self) -> Iterator[str]:
        yield from map(str, self._nums)
        yield from self._strs

    def __eq__(self, other: object) -> bool:
        """The same ids as another `IdList` or list of ids, in any order."""
        if isinstance(other, IdList | list | tuple):
            return sorted(self) == sorted(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"IdList({len(self)} ids)"

    def json(self, chunk: int = 10_000) -> str:
        """A JSON array of the ids as strings, built a slice at a time (never a list of
        every id as a Python string at once)."""
        parts: list[str] = []
        nums = self._nums
        for start in range(0, len(nums), chunk):
            parts.append(",".join([f'"{n}"' for n in nums[start : start + chunk]]))
        if self._strs:
            import orjson

            parts.append(orjson.dumps(list(self._strs)).decode()[1:-1])
        return "[" + ",".join(p for p in parts if p) + "]"


@dataclass(slots=True)
class Page:
    """A page of normalised items plus the cursor as it stands once this page is stored.

    `deleted` lists external ids that the tracker reports gone (deleted, or moved out of
    reach); `scope` names the project/repo the page belongs to, for logs and metrics.
    `census` maps a container to the complete list of external ids that exist in it (an
    `IdList` or any list of strings), sent on the page that completes a periodic full
    listing: stored items of that container missing from the list are flagged deleted.
    `lost_scopes` names configured scopes that became invisible (403/404 on the scope itself):
    reported, never treated as deletions.
    """

    items: list[WorkItem]
    cursor: Cursor
    scope: str = ""
    deleted: list[str] = field(default_factory=list)
    lost_scopes: list[str] = field(default_factory=list)
    census: Mapping[str, IdList | list[str]] = field(default_factory=dict)


@dataclass
class RunResult:
    """What one run of one connector did: its status, counts, costs and the tactics it touched."""

    connector: str
    run_id: int
    status: str = "ok"
    pages: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    requests: int = 0
    retries: int = 0
    rate_limit_wait_s: float = 0.0
    duration_s: float = 0.0
    lost_scopes: list[str] = field(default_factory=list)
    touched_tactics: set[str] = field(default_factory=set)
    error: str | None = None
