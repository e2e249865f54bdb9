"""GitHub issues, pull requests and milestones as `WorkItem`s: pure functions of the JSON.

Status (`okrsync.statuses`): the basis is what GitHub states: `state_reason: "not_planned"`
or a PR closed with `pull_request.merged_at: null` (work abandoned) is dropped; closed is done
(a closed PR without `merged_at`, as older GHES send, counts as done: unknown merge, not proven
abandoned); an open PR is in progress; else to do. The names are the labels and the state
reason: one mapped to dropped (`dropped_statuses`, `status_map`) wins; an open item with a
label mapped to a category (`STATUS_VOCABULARY`: "in progress", "wip", "review", "qa",
"blocked", ...; then `status_map`) takes it. A dropped item keeps its `closed_at`. Milestones
arrive embedded in each issue and become container items.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from okrsync.models import ItemKind, StatusCategory, WorkItem
from okrsync.statuses import COMMON_IN_PROGRESS, StatusNames, in_progress

# Labels that mean work has started (the names teams commonly use).
STATUS_VOCABULARY: dict[str, StatusCategory] = in_progress(COMMON_IN_PROGRESS)
CLOSED = (StatusCategory.DONE, StatusCategory.DROPPED)
Json = dict[str, Any]


@dataclass(frozen=True)
class Skipped:
    """An issue whose shape could not be read: logged and skipped by the connector."""

    id: Any
    error: str


@dataclass(frozen=True)
class Normaliser:
    """Turns one response page of a repository's issues into work items."""

    connector: str
    names: StatusNames
    estimate: re.Pattern[str]

    @classmethod
    def build(
        cls,
        connector: str,
        dropped_statuses: Iterable[str],
        estimate_field: str | None,
        status_map: Mapping[str, StatusCategory] | None = None,
    ) -> Normaliser:
        """`estimate_field` is a label prefix: "points" reads `points:3` or `points=3`;
        `dropped_statuses`: names meaning dropped; `status_map` (wins): name → category."""
        prefix = re.escape(estimate_field or "points")
        pattern = re.compile(rf"^\s*{prefix}\s*[:=]\s*(\d+(?:\.\d+)?)\s*$", re.IGNORECASE)
        names = StatusNames.build(STATUS_VOCABULARY, dropped_statuses, status_map or {})
        return cls(connector, names, pattern)

    def page(self, issues: list[Json], scope: str) -> tuple[list[WorkItem], list[Skipped]]:
        """Milestones first (containers), then the issues and PRs; and what was skipped."""
        milestones: dict[str, WorkItem] = {}
        items: list[WorkItem] = []
        skipped: list[Skipped] = []
        for raw in issues:
            try:
                ms = raw.get("milestone")
                if isinstance(ms, dict) and milestone_id(scope, ms) not in milestones:
                    m = milestone(self.connector, ms, scope)
                    milestones[m.external_id] = m
                items.append(self.issue(raw, scope))
            except (KeyError, TypeError, ValueError) as exc:
                ident = raw.get("id") if isinstance(raw, dict) else None
                skipped.append(Skipped(ident, f"{type(exc).__name__}: {exc}"))
        return [*milestones.values(), *items], skipped

    def issue(self, raw: Json, scope: str) -> WorkItem:
        is_pr = isinstance(raw.get("pull_request"), dict)
        labels = tuple(_label_names(raw.get("labels") or []))
        basis, status_raw, names = self.status_facts(raw, is_pr, labels)
        status = self.names.categorise(basis, names)
        closed = raw.get("closed_at")
        ms = raw.get("milestone")
        return WorkItem(
            connector=self.connector,
            external_id=str(raw["id"]),
            key=f"{scope}#{raw['number']}",
            kind=ItemKind.PULL_REQUEST if is_pr else ItemKind.ISSUE,
            title=str(raw.get("title") or ""),
            status=status,
            status_raw=status_raw,
            created=parse_time(raw["created_at"]),
            updated=parse_time(raw["updated_at"]),
            item_type="pull_request" if is_pr else "issue",
            url=raw.get("html_url"),
            container=scope,
            labels=labels,
            milestone=ms.get("title") if isinstance(ms, dict) else None,
            assignee=_login(raw.get("assignee")),
            assignee_ids=_user_ids(raw.get("assignee")),
            estimate=self.estimate_of(labels),
            completed_at=parse_time(closed) if status in CLOSED and closed else None,
            custom=_custom(scope, raw),
            status_basis=basis,
            status_names=names,
        )

    def status_facts(
        self, raw: Json, is_pr: bool, labels: tuple[str, ...]
    ) -> tuple[StatusCategory, str, tuple[str, ...]]:
        """What GitHub states (not_planned / unmerged PR → dropped; closed → done; open PR →
        in progress; else to do), the raw status, and the names (state reason, labels)."""
        state = str(raw.get("state") or "open")
        reason = raw.get("state_reason")
        pr = raw.get("pull_request") if is_pr else None
        unmerged = isinstance(pr, dict) and "merged_at" in pr and pr["merged_at"] is None
        status_raw = state
        if state == "closed" and isinstance(pr, dict) and "merged_at" in pr:
            status_raw = "closed:unmerged" if unmerged else "closed:merged"
        elif reason:
            status_raw = f"{state}:{reason}"
        names = (str(reason), *labels) if reason else labels
        if reason == "not_planned" or (state == "closed" and unmerged):
            return StatusCategory.DROPPED, status_raw, names
        if state == "closed":
            return StatusCategory.DONE, status_raw, names
        return (StatusCategory.IN_PROGRESS if is_pr else StatusCategory.TODO), status_raw, names

    def estimate_of(self, labels: tuple[str, ...]) -> float | None:
        for label in labels:
            m = self.estimate.match(label)
            if m:
                return float(m.group(1))
        return None


def milestone_id(scope: str, ms: Json) -> str:
    return f"milestone:{scope}#{ms['number']}"


def milestone(connector: str, ms: Json, scope: str) -> WorkItem:
    """A milestone embedded in an issue, as a container of its repo."""
    closed = ms.get("state") == "closed"
    due = ms.get("due_on")
    return WorkItem(
        connector=connector,
        external_id=milestone_id(scope, ms),
        key=f"{scope}#m{ms['number']}",
        kind=ItemKind.MILESTONE,
        title=str(ms.get("title") or ""),
        status=StatusCategory.DONE if closed else StatusCategory.TODO,
        status_raw=str(ms.get("state") or "open"),
        created=parse_time(ms["created_at"]),
        updated=parse_time(ms["updated_at"]),
        item_type="milestone",
        url=ms.get("html_url"),
        container=scope,
        due=_day(due) if due else None,
        completed_at=parse_time(ms["closed_at"]) if closed and ms.get("closed_at") else None,
    )


def _label_names(labels: list[Any]) -> list[str]:
    """Label names; the API allows a label to be a plain string or an object."""
    names = [lab.get("name") if isinstance(lab, dict) else lab for lab in labels]
    return [n for n in names if isinstance(n, str)]


def _login(user: Any) -> str | None:
    return user.get("login") if isinstance(user, dict) else None


def _user_ids(user: Any) -> tuple[str, ...]:
    """The assignee's numeric user id (the login is `assignee`; e-mail is not in the issue)."""
    uid = user.get("id") if isinstance(user, dict) else None
    return (str(uid),) if isinstance(uid, int) and not isinstance(uid, bool) else ()


def _custom(scope: str, raw: Json) -> dict[str, str]:
    author = _login(raw.get("user"))
    return {"repo": scope, **({"author": author} if author else {})}


def parse_time(value: str) -> datetime:
    """GitHub timestamps (`2011-04-22T13:33:48Z`, or with an offset) as aware UTC."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is UTC:  # GitHub's own form (`...Z`)
        return parsed
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _day(value: str) -> date:
    return parse_time(value).date()
