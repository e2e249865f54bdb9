"""Pure: a verified delivery's headers and body → what it means for okrsync (`Delivery`).

    github  X-GitHub-Event: issues, pull_request, milestone → sync; ping → pong; others ignored.
            issues deleted / transferred delete `issue.id`; milestone deleted deletes
            `milestone:<owner/repo>#<number>` (connectors/github/normalise.py's ids).
            Scope: `repository.full_name`. Delivery id: X-GitHub-Delivery.
    jira    webhookEvent jira:issue_created / _updated → sync; jira:issue_deleted also deletes
            `issue.id`; others ignored. Scope: the issue's project key. Delivery id:
            X-Atlassian-Webhook-Identifier.
    asana   {"events": [...]}: task or section events → sync; `deleted` ones delete the task's
            gid (a section's `section:<gid>`); none (a heartbeat) → ignored. No scope.

A delivery without an id of its own gets the SHA-256 of its body. A body that is not the JSON
the tracker sends raises `BadPayload`; nothing here trusts a field's type.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["sync", "ping", "ignore"]
GITHUB_SYNC = frozenset({"issues", "pull_request", "milestone"})
JIRA_SYNC = frozenset({"jira:issue_created", "jira:issue_updated", "jira:issue_deleted"})
ASANA_TYPES = frozenset({"task", "section"})


class BadPayload(ValueError):
    """A verified body that is not what the tracker sends (not JSON, wrong shape)."""


@dataclass(frozen=True)
class Delivery:
    """What one delivery asks: `action`, the scope it is about (None: it names none), the
    external ids of items it says were deleted, its event name and its delivery id."""

    action: Action
    event: str
    delivery_id: str
    scope: str | None = None
    deleted: tuple[str, ...] = ()


def parse(kind: str, headers: Mapping[str, str], body: bytes) -> Delivery:
    """The meaning of a delivery of tracker `kind` (headers keyed in lower case)."""
    data = _json_object(body)
    if kind == "github":
        return github(headers, data, body)
    if kind == "jira":
        return jira(headers, data, body)
    return asana(data, body)


def body_id(body: bytes) -> str:
    """A delivery id for trackers that send none: the body's SHA-256."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def github(headers: Mapping[str, str], data: dict[str, Any], body: bytes) -> Delivery:
    event = headers.get("x-github-event", "").strip()
    ident = headers.get("x-github-delivery", "").strip() or body_id(body)
    action = str(data.get("action") or "")
    name = f"{event}.{action}" if action else event
    if event == "ping":
        return Delivery("ping", name, ident)
    if event not in GITHUB_SYNC:
        return Delivery("ignore", name, ident)
    scope = _str(_obj(data, "repository").get("full_name"))
    if scope is None:
        raise BadPayload("a GitHub delivery without repository.full_name")
    return Delivery("sync", name, ident, scope, _github_deleted(event, action, data, scope))


def _github_deleted(event: str, action: str, data: dict[str, Any], scope: str) -> tuple[str, ...]:
    if event == "issues" and action in ("deleted", "transferred"):
        return _ids(_obj(data, "issue").get("id"))
    if event == "milestone" and action == "deleted":
        number = _obj(data, "milestone").get("number")
        return (f"milestone:{scope}#{number}",) if isinstance(number, int) else ()
    return ()


def jira(headers: Mapping[str, str], data: dict[str, Any], body: bytes) -> Delivery:
    event = str(data.get("webhookEvent") or "")
    ident = headers.get("x-atlassian-webhook-identifier", "").strip() or body_id(body)
    if event not in JIRA_SYNC:
        return Delivery("ignore", event, ident)
    issue = _obj(data, "issue")
    ids = _ids(issue.get("id"))
    if not ids:
        raise BadPayload(f"a Jira {event} delivery without issue.id")
    deleted = ids if event == "jira:issue_deleted" else ()
    return Delivery("sync", event, ident, _jira_project(issue), deleted)


def _jira_project(issue: dict[str, Any]) -> str | None:
    key = _str(_obj(_obj(issue, "fields"), "project").get("key"))
    if key:
        return key
    issue_key = _str(issue.get("key")) or ""
    return issue_key.rpartition("-")[0] or None


def asana(data: dict[str, Any], body: bytes) -> Delivery:
    events = data.get("events")
    if not isinstance(events, list):
        raise BadPayload("an Asana delivery without an events list")
    about = [e for e in events if isinstance(e, dict) and _resource_type(e) in ASANA_TYPES]
    if not about:
        return Delivery("ignore", "asana:heartbeat" if not events else "asana:other", body_id(body))
    deleted = tuple(
        dict.fromkeys(i for e in about if e.get("action") == "deleted" for i in _gid(e))
    )
    actions = sorted({f"{_resource_type(e)}.{e.get('action')}" for e in about})
    return Delivery("sync", "asana:" + ",".join(actions), body_id(body), None, deleted)


def _resource_type(event: dict[str, Any]) -> str | None:
    return _str(_obj(event, "resource").get("resource_type"))


def _gid(event: dict[str, Any]) -> tuple[str, ...]:
    gid = _str(_obj(event, "resource").get("gid"))
    if gid is None:
        return ()
    return (f"section:{gid}",) if _resource_type(event) == "section" else (gid,)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadPayload("the body is not a JSON object")
    return data


def _obj(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _ids(value: object) -> tuple[str, ...]:
    """An id as the connectors store it (`str(raw["id"])`); none for anything else."""
    if isinstance(value, bool):
        return ()
    return (str(value),) if isinstance(value, int | str) and str(value) else ()
