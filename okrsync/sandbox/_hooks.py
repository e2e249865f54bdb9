"""Webhooks from the fake trackers: subscriptions made through each vendor's own API, and
signed deliveries sent when the sandbox's world changes.

Registration endpoints (under each tracker's prefix, with its usual credentials):

* GitHub: `POST|GET /repos/{o}/{r}/hooks` (`name` "web", `active`, `events`, `config.url`,
  `config.content_type` json|form, `config.secret`), `GET|DELETE .../hooks/{id}`,
  `POST .../hooks/{id}/pings`. A new hook is pinged (event `ping`). The same URL twice on one
  repo is refused (422 "Hook already exists on this repository"), as github.com does.
* Jira Cloud and DC: `POST|GET /rest/webhooks/1.0/webhook` (`name`, `url`, `events`,
  `secret`, `filters["issue-related-events-section"]`: JQL, the sandbox's subset),
  `GET|DELETE .../webhook/{id}`.
* Asana: `POST /webhooks` `{"data": {"resource", "target", "filters"}}` performs the
  handshake before it answers: it POSTs to `target` with `X-Hook-Secret: <random>` and creates
  the webhook only if the target answers 200 or 204 echoing that header (else 400);
  `GET /webhooks?workspace=&resource=`, `GET|DELETE /webhooks/{gid}`.

Targets must be loopback addresses (127.0.0.0/8, ::1, localhost): the sandbox never sends
anywhere else (422/400 at registration).

Deliveries: every change `World` reports (`World.listeners`: changed, deleted, moved) is
rendered under the world's lock into each matching subscription's payload, the vendor's
shape (GitHub `issues` / `pull_request` with `action`, `issue`/`pull_request`, `repository`,
`sender`; Jira `webhookEvent` `jira:issue_updated|deleted` with `issue`, `user`, `changelog`,
`matchedWebhookIds`; Asana `{"events": [...]}`), signed as the vendor signs it (GitHub
`X-Hub-Signature-256: sha256=<hex>` and the SHA-1 `X-Hub-Signature`; Jira `X-Hub-Signature:
sha256=<hex>`; Asana `X-Hook-Signature: <hex>`, HMAC-SHA256 of the raw body) and given a
delivery id (`X-GitHub-Delivery`, `X-Atlassian-Webhook-Identifier`). A worker thread sends
them in order, `timeout_s` each, so a change never waits for a receiver; every attempt is
recorded in `Hooks.deliveries` (status 0: no answer, with the error) and failures are logged
(logger `okrsync.sandbox.hooks`).

Faults (`Hooks.inject(tracker, kind, count)`), taken by the next deliveries of that tracker:
`forged_signature` (signed with a wrong key), `replay` (the same delivery, same id, sent
twice), `oversize` (a valid, signed body padded to `size` bytes, default 2 MiB).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import queue
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from okrsync.sandbox import _asana, _github, _jira
from okrsync.sandbox._core import Env, Request, Response, dumps, json_response
from okrsync.sandbox._data import ASANA_WORKSPACE, Rec, iso_s, iso_z, now_ms
from okrsync.sandbox._jql import JqlError, parse_jql
from okrsync.sandbox._world import World

log = logging.getLogger("okrsync.sandbox.hooks")

TRACKERS = ("github", "jira", "jira_dc", "asana")
FAULTS = frozenset({"forged_signature", "replay", "oversize"})
OVERSIZE = 2 * 2**20
GITHUB_HOOK_BASE = 480_000_000
JIRA_EVENTS = ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted")
ZEN = "Keep it logically awesome."


@dataclass(slots=True)
class Subscription:
    """One registered webhook. `scope`: the GitHub repo or Asana project it watches (Jira:
    None, its JQL `jql` filters); `secret`: what deliveries are signed with."""

    tracker: str
    id: str
    url: str
    events: tuple[str, ...]
    secret: str = ""
    scope: str | None = None
    jql: str = ""
    name: str = "web"
    content_type: str = "json"
    filters: list[dict[str, Any]] = field(default_factory=list)
    created_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST sent to a subscriber: what, its id, the answer (0: none; `error` says why),
    the fault applied, and wall-clock times of the world change and of the answer."""

    tracker: str
    hook_id: str
    url: str
    event: str
    action: str
    delivery_id: str
    status: int
    error: str
    fault: str | None
    changed_at: float
    answered_at: float


@dataclass(slots=True)
class _Outgoing:
    sub: Subscription
    event: str
    action: str
    delivery_id: str
    body: bytes
    headers: dict[str, str]
    changed_at: float
    fault: str | None = None


@dataclass(slots=True)
class _Fault:
    kind: str
    count: int
    params: dict[str, Any]


def is_loopback(url: str) -> bool:
    """An http(s) URL whose host is a loopback address or `localhost`."""
    try:
        split = urllib.parse.urlsplit(url)
        host = split.hostname or ""
        if split.scheme not in ("http", "https") or not host:
            return False
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def hmac_hex(secret: str, body: bytes, digest: str = "sha256") -> str:
    return hmac.new(secret.encode(), body, digest).hexdigest()


class Hooks:
    """The sandbox's webhook subscriptions, their fault queue and the sending thread."""

    def __init__(self, world: World, timeout_s: float = 2.0) -> None:
        self.world = world
        self.timeout_s = timeout_s
        self.origin = ""  # the sandbox's `http://host:port`, set when it starts
        self.forbidden: set[str] = set()  # trackers whose token may not manage webhooks
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._deliveries: list[Delivery] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._ids = 0
        self._queue: queue.Queue[_Outgoing | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        world.listeners.append(self.changed)

    # --- subscriptions -------------------------------------------------------------------

    def add(self, sub: Subscription) -> Subscription:
        with self._lock:
            self._subs.append(sub)
        return sub

    def next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def subscriptions(self, tracker: str | None = None) -> list[Subscription]:
        with self._lock:
            return [s for s in self._subs if tracker in (None, s.tracker)]

    def find(self, tracker: str, hook_id: str) -> Subscription | None:
        return next((s for s in self.subscriptions(tracker) if s.id == hook_id), None)

    def remove(self, tracker: str, hook_id: str) -> bool:
        with self._lock:
            kept = [s for s in self._subs if not (s.tracker == tracker and s.id == hook_id)]
            removed, self._subs = len(kept) != len(self._subs), kept
        return removed

    # --- faults and what was sent --------------------------------------------------------

    def inject(self, tracker: str, kind: str, count: int = 1, **params: Any) -> None:
        """The next `count` deliveries of `tracker` carry fault `kind` (see module doc)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown webhook fault {kind!r}; known: {sorted(FAULTS)}")
        if tracker not in TRACKERS:
            raise ValueError(f"unknown tracker {tracker!r}; known: {list(TRACKERS)}")
        with self._lock:
            self._faults.setdefault(tracker, []).append(_Fault(kind, count, params))

    def _take_fault(self, tracker: str) -> _Fault | None:
        with self._lock:
            queued = self._faults.get(tracker, [])
            if not queued:
                return None
            fault = queued[0]
            fault.count -= 1
            if fault.count <= 0:
                queued.pop(0)
            return fault

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery was sent (True) or `timeout` passed (False)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    # --- the world changed ---------------------------------------------------------------

    def changed(self, action: str, rec: Rec, old: dict[str, Any]) -> None:
        """`World` listener (under its lock): queue a delivery per matching subscription."""
        at = time.time()
        for sub in self.subscriptions(rec.tracker):
            for event, what, payload in _payloads(self, sub, action, rec, old):
                self.send(sub, event, what, payload, at)

    def send(self, sub: Subscription, event: str, action: str, payload: Any, at: float) -> None:
        """Sign and queue one delivery of `payload` to `sub` (the worker sends it)."""
        delivery_id = _delivery_id(sub.tracker)
        fault = self._take_fault(sub.tracker)
        if fault is not None and fault.kind == "oversize":
            size = int(fault.params.get("size", OVERSIZE))
            payload = {**payload, "sandbox_padding": "x" * size}
        body, content_type = _encode(sub, payload)
        key = "forged-" + secrets.token_hex(8) if fault and fault.kind == "forged_signature" else ""
        headers = _headers(sub, event, delivery_id, body, key or sub.secret)
        headers["Content-Type"] = content_type
        kind = fault.kind if fault else None
        out = _Outgoing(sub, event, action, delivery_id, body, headers, at, kind)
        self._start()
        self._queue.put(out)
        if fault is not None and fault.kind == "replay":
            self._queue.put(out)

    # --- sending -------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="okrsync-sandbox-hooks", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=self.timeout_s + 5)

    def _work(self) -> None:
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            while True:
                out = self._queue.get()
                try:
                    if out is None:
                        return
                    self._deliver(client, out)
                finally:
                    self._queue.task_done()

    def _deliver(self, client: httpx.Client, out: _Outgoing) -> None:
        status, error = 0, ""
        if not is_loopback(out.sub.url):
            error = "target is not a loopback address; the sandbox sends nowhere else"
        else:
            try:
                status = client.post(out.sub.url, content=out.body, headers=out.headers).status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        if status == 0 or status >= 300:
            log.warning(
                "webhook delivery to %s (%s %s, id %s) failed: %s",
                out.sub.url,
                out.sub.tracker,
                out.event,
                out.delivery_id,
                error or f"HTTP {status}",
            )
        record = Delivery(
            out.sub.tracker,
            out.sub.id,
            out.sub.url,
            out.event,
            out.action,
            out.delivery_id,
            status,
            error,
            out.fault,
            out.changed_at,
            time.time(),
        )
        with self._lock:
            self._deliveries.append(record)

    def api_base(self, tracker: str) -> str:
        prefix = {"github": "/github", "jira": "/jira", "jira_dc": "/jira-dc", "asana": "/asana"}
        return (self.origin or "http://127.0.0.1:9") + prefix[tracker]


def _delivery_id(tracker: str) -> str:
    if tracker == "github":
        return str(uuid.uuid4())
    if tracker == "asana":
        return ""  # Asana's deliveries carry no id
    return f"{secrets.randbelow(10**6)}-{uuid.uuid4()}"


def _encode(sub: Subscription, payload: Any) -> tuple[bytes, str]:
    if sub.tracker == "github" and sub.content_type == "form":
        form = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return form, "application/x-www-form-urlencoded"
    return dumps(payload), "application/json"


def _headers(
    sub: Subscription, event: str, delivery_id: str, body: bytes, key: str
) -> dict[str, str]:
    if sub.tracker == "github":
        headers = {
            "User-Agent": "GitHub-Hookshot/sandbox",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id,
            "X-GitHub-Hook-ID": sub.id,
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": str(_github.repo_id(sub.scope or "")),
        }
        if key:
            headers["X-Hub-Signature"] = "sha1=" + hmac_hex(key, body, "sha1")
            headers["X-Hub-Signature-256"] = "sha256=" + hmac_hex(key, body)
        return headers
    if sub.tracker == "asana":
        return {"X-Hook-Signature": hmac_hex(key, body)} if key else {}
    headers = {
        "User-Agent": "Atlassian Webhook HTTP Client",
        "X-Atlassian-Webhook-Identifier": delivery_id,
    }
    if key:
        headers["X-Hub-Signature"] = "sha256=" + hmac_hex(key, body)
    return headers


# --- payloads --------------------------------------------------------------------------------

Payload = tuple[str, str, dict[str, Any]]  # (event, action, body)


def _payloads(
    hooks: Hooks, sub: Subscription, action: str, rec: Rec, old: dict[str, Any]
) -> list[Payload]:
    builders: dict[str, Callable[[Hooks, Subscription, str, Rec, dict[str, Any]], list[Payload]]]
    builders = {"github": _github_payloads, "asana": _asana_payloads}
    return builders.get(sub.tracker, _jira_payloads)(hooks, sub, action, rec, old)


def _github_payloads(
    hooks: Hooks, sub: Subscription, action: str, rec: Rec, old: dict[str, Any]
) -> list[Payload]:
    if rec.kind not in ("issue", "pull_request"):
        return []
    scope = old.get("scope", rec.scope) if action == "moved" else rec.scope
    pr = rec.kind == "pull_request"
    event = "pull_request" if pr else "issues"
    if sub.scope != scope or not (event in sub.events or "*" in sub.events):
        return []
    if pr and action not in ("changed", "created"):
        return []  # a pull request is never deleted or transferred on GitHub
    base = hooks.api_base("github")
    state = hooks.world.state("github")
    issue = json.loads(_github.issue_bytes(rec, state, base)[0])
    body: dict[str, Any] = {"action": _github_action(action, rec, old)}
    if action == "moved":
        new_repo = _repository(rec.scope, base)
        body["changes"] = {"new_issue": issue, "new_repository": new_repo}
        issue = _as_old_issue(issue, str(old["key"]), base)
    elif body["action"] == "edited" and "title" in old:
        body["changes"] = {"title": {"from": old["title"]}}
    if pr:
        body |= {"number": rec.number, "pull_request": _pull_request(issue, rec, base)}
    else:
        body["issue"] = issue
    body |= {"repository": _repository(scope, base), "sender": _github._user("octocat", base)}
    return [(event, body["action"], body)]


def _github_action(action: str, rec: Rec, old: dict[str, Any]) -> str:
    if action in ("created", "deleted"):
        return "opened" if action == "created" else "deleted"
    if action == "moved":
        return "transferred"
    was = old.get("status", rec.status)
    if was != rec.status and "todo" in (was, rec.status):
        return "closed" if was == "todo" else "reopened"
    if "labels" in old and set(old["labels"]) != set(rec.labels):
        return "labeled" if set(rec.labels) - set(old["labels"]) else "unlabeled"
    if "milestone" in old and old["milestone"] != rec.milestone:
        return "milestoned" if rec.milestone else "demilestoned"
    if "assignee" in old and old["assignee"] != rec.assignee:
        return "assigned" if rec.assignee else "unassigned"
    return "edited"


def _as_old_issue(issue: dict[str, Any], old_key: str, base: str) -> dict[str, Any]:
    """The transferred issue as it was in its old repository (same id)."""
    repo, _, number = old_key.partition("#")
    api = f"{base}/repos/{repo}/issues/{number}"
    return issue | {
        "number": int(number),
        "url": api,
        "repository_url": f"{base}/repos/{repo}",
        "html_url": f"https://github.com/{repo}/issues/{number}",
    }


def _repository(repo: str, base: str) -> dict[str, Any]:
    owner, name = repo.split("/")
    return {
        "id": _github.repo_id(repo),
        "node_id": f"R_kgDO{_github.repo_id(repo)}",
        "name": name,
        "full_name": repo,
        "private": True,
        "owner": _github._user(owner, base) | {"type": "Organization"},
        "html_url": f"https://github.com/{repo}",
        "url": f"{base}/repos/{repo}",
        "issues_url": f"{base}/repos/{repo}/issues{{/number}}",
        "pulls_url": f"{base}/repos/{repo}/pulls{{/number}}",
        "default_branch": "main",
        "has_issues": True,
        "archived": False,
        "visibility": "private",
    }


def _pull_request(issue: dict[str, Any], rec: Rec, base: str) -> dict[str, Any]:
    """A `pull-request` object (the webhook's) built from the PR's issue view."""
    pr = {k: v for k, v in issue.items() if k not in ("pull_request", "state_reason", "reactions")}
    links = issue.get("pull_request") or {}
    api = f"{base}/repos/{rec.scope}/pulls/{rec.number}"
    branch = {"label": f"{rec.scope.split('/')[0]}:main", "ref": "main", "sha": "0" * 40}
    return pr | {
        "url": api,
        "issue_url": issue["url"],
        "diff_url": links.get("diff_url"),
        "patch_url": links.get("patch_url"),
        "merged": rec.status == "done",
        "merged_at": links.get("merged_at"),
        "draft": False,
        "head": branch | {"ref": f"topic-{rec.number}"},
        "base": branch,
    }


def _jira_payloads(
    hooks: Hooks, sub: Subscription, action: str, rec: Rec, old: dict[str, Any]
) -> list[Payload]:
    kind = {"deleted": "issue_deleted", "created": "issue_created"}.get(action, "issue_updated")
    event = f"jira:{kind}"
    if event not in sub.events or not _jql_matches(sub.jql, rec):
        return []
    state = hooks.world.state(rec.tracker)
    cloud = rec.tracker == "jira"
    body: dict[str, Any] = {
        "timestamp": now_ms(),
        "webhookEvent": event,
        "issue_event_type_name": kind if kind != "issue_updated" else "issue_generic",
        "user": _jira._user_obj("Sandbox Admin", cloud),
        "issue": _jira.render_issue(rec, state, "UTC", None),
    }
    if action == "changed" and old:
        body["changelog"] = {"id": str(now_ms()), "items": _jira_changes(rec, old)}
    if cloud:
        body["matchedWebhookIds"] = [int(sub.id)]
    return [(event, event.split("_")[-1], body)]


def _jira_changes(rec: Rec, old: dict[str, Any]) -> list[dict[str, Any]]:
    items = []
    for name, was in old.items():
        now = rec.status if name == "status" else getattr(rec, name, None)
        items.append(
            {
                "field": name,
                "fieldtype": "jira",
                "from": None,
                "fromString": None if was is None else str(was),
                "to": None,
                "toString": None if now is None else str(now),
            }
        )
    return items


def _jql_matches(jql: str, rec: Rec) -> bool:
    if not jql:
        return True
    try:
        projects = parse_jql(jql, "UTC").projects
    except JqlError:
        return False
    return projects is None or rec.scope in projects


def _asana_payloads(
    hooks: Hooks, sub: Subscription, action: str, rec: Rec, old: dict[str, Any]
) -> list[Payload]:
    if rec.kind == "section":
        return []
    wanted: list[tuple[str, str | None]]
    if action == "moved":
        wanted = [("removed", old.get("scope")), ("added", rec.scope)]
    elif action == "created":
        wanted = [("added", rec.scope)]
    else:
        wanted = [(action, rec.scope)]
    out = []
    for what, project in wanted:
        event = _asana_event(rec, what, project, old)
        if project == sub.scope and _asana_filtered(sub.filters, event):
            out.append(("events", what, {"events": [event]}))
    return out


def _asana_event(rec: Rec, action: str, project: str | None, old: dict[str, Any]) -> Any:
    subtype = "milestone" if rec.issuetype == "milestone" else "default_task"
    event: dict[str, Any] = {
        "user": {"gid": "1200000000000042", "resource_type": "user"},
        "created_at": iso_z(now_ms()),
        "action": action,
        "resource": {"gid": str(rec.id), "resource_type": "task", "resource_subtype": subtype},
        "parent": None,
    }
    if action in ("added", "removed"):
        event["parent"] = {"gid": project, "resource_type": "project"}
    if action == "changed":
        field_name = next(iter(old), "name")
        asana_field = {"status": "completed", "title": "name", "labels": "tags"}.get(
            field_name, field_name
        )
        event["change"] = {"field": asana_field, "action": "changed"}
    return event


def _asana_filtered(filters: list[dict[str, Any]], event: dict[str, Any]) -> bool:
    if not filters:
        return True
    for f in filters:
        rtype, action = f.get("resource_type"), f.get("action")
        if rtype not in (None, event["resource"]["resource_type"]):
            continue
        if action in (None, event["action"]):
            return True
    return False


# --- registration endpoints -------------------------------------------------------------------


def _hooks_of(env: Env) -> Hooks:
    if env.hooks is None:
        raise RuntimeError("this sandbox has no webhooks")
    return env.hooks


def github_hooks(req: Request, env: Env, repo: str, rest: str) -> Response:
    """`/repos/{repo}/hooks[/{id}[/pings]]`."""
    hooks = _hooks_of(env)
    if "github" in hooks.forbidden:
        return _github.error(
            403,
            "Resource not accessible by personal access token",
            [("X-Accepted-GitHub-Permissions", "repository_hooks=write")],
        )
    parts = rest.split("/")
    if len(parts) == 1:
        if req.method == "POST":
            return _github_create(req, hooks, repo)
        return json_response(
            200, [_github_hook_json(s, req.base) for s in _repo_hooks(hooks, repo)]
        )
    sub = hooks.find("github", parts[1])
    if sub is None or sub.scope != repo:
        return _github.error(404, "Not Found")
    if len(parts) == 3 and parts[2] == "pings" and req.method == "POST":
        _github_ping(hooks, sub, req.base)
        return Response(204)
    if req.method == "DELETE":
        hooks.remove("github", sub.id)
        return Response(204)
    return json_response(200, _github_hook_json(sub, req.base))


def _repo_hooks(hooks: Hooks, repo: str) -> list[Subscription]:
    return [s for s in hooks.subscriptions("github") if s.scope == repo]


def _github_create(req: Request, hooks: Hooks, repo: str) -> Response:
    body = req.json_body()
    config = body.get("config") if isinstance(body, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("url"), str):
        return _github_invalid("Config must have a url")
    if not is_loopback(config["url"]):
        return _github_invalid("url is not supported because it isn't reachable over the sandbox")
    if any(s.url == config["url"] for s in _repo_hooks(hooks, repo)):
        return _github_invalid("Hook already exists on this repository")
    events = body.get("events") or ["push"]
    sub = Subscription(
        "github",
        str(GITHUB_HOOK_BASE + hooks.next_id()),
        config["url"],
        tuple(str(e) for e in events),
        secret=str(config.get("secret") or ""),
        scope=repo,
        name=str(body.get("name", "web")),
        content_type="form" if config.get("content_type") == "form" else "json",
    )
    hooks.add(sub)
    _github_ping(hooks, sub, req.base)
    return json_response(201, _github_hook_json(sub, req.base))


def _github_invalid(message: str) -> Response:
    errors = [{"resource": "Hook", "code": "custom", "message": message}]
    return json_response(
        422,
        {"message": "Validation Failed", "errors": errors, "documentation_url": _github.DOCS},
    )


def _github_ping(hooks: Hooks, sub: Subscription, base: str) -> None:
    body = {
        "zen": ZEN,
        "hook_id": int(sub.id),
        "hook": _github_hook_json(sub, base),
        "repository": _repository(sub.scope or "", base),
        "sender": _github._user("octocat", base),
    }
    hooks.send(sub, "ping", "ping", body, time.time())


def _github_hook_json(sub: Subscription, base: str) -> dict[str, Any]:
    api = f"{base}/repos/{sub.scope}/hooks/{sub.id}"
    config = {"content_type": sub.content_type, "insecure_ssl": "0", "url": sub.url}
    if sub.secret:
        config["secret"] = "********"  # noqa: S105 (GitHub masks it so)
    return {
        "type": "Repository",
        "id": int(sub.id),
        "name": sub.name,
        "active": True,
        "events": list(sub.events),
        "config": config,
        "updated_at": iso_s(sub.created_ms),
        "created_at": iso_s(sub.created_ms),
        "url": api,
        "test_url": f"{api}/test",
        "ping_url": f"{api}/pings",
        "deliveries_url": f"{api}/deliveries",
        "last_response": {"code": None, "status": "unused", "message": None},
    }


def jira_hooks(req: Request, env: Env) -> Response:
    """`/rest/webhooks/1.0/webhook[/{id}]` (Jira Cloud and DC)."""
    hooks = _hooks_of(env)
    if req.tracker in hooks.forbidden:
        return _jira.error(403, "You do not have permission to manage webhooks (Jira admin).")
    rest = req.path.rstrip("/").removeprefix("/rest/webhooks/1.0/webhook").strip("/")
    if not rest:
        if req.method == "POST":
            return _jira_create(req, hooks)
        mine = hooks.subscriptions(req.tracker)
        return json_response(200, [_jira_hook_json(s, req.base) for s in mine])
    sub = hooks.find(req.tracker, rest)
    if sub is None:
        return _jira.error(404, f"Webhook with id {rest} does not exist.")
    if req.method == "DELETE":
        hooks.remove(req.tracker, sub.id)
        return Response(204)
    return json_response(200, _jira_hook_json(sub, req.base))


def _jira_create(req: Request, hooks: Hooks) -> Response:
    body = req.json_body()
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        return _jira.error(400, "The webhook url is required.")
    if not is_loopback(body["url"]):
        return _jira.error(400, "The sandbox sends webhooks only to loopback addresses.")
    events = [str(e) for e in body.get("events") or []]
    unknown = [e for e in events if e not in JIRA_EVENTS]
    if unknown or not events:
        return _jira.error(400, f"Invalid webhook events: {unknown or 'none given'}")
    filters = body.get("filters") or {}
    jql = str(filters.get("issue-related-events-section") or "")
    try:
        parse_jql(jql, "UTC")
    except JqlError as exc:
        return _jira.error(400, str(exc))
    sub = Subscription(
        req.tracker,
        str(hooks.next_id()),
        body["url"],
        tuple(events),
        secret=str(body.get("secret") or ""),
        jql=jql,
        name=str(body.get("name") or "webhook"),
    )
    hooks.add(sub)
    return json_response(201, _jira_hook_json(sub, req.base))


def _jira_hook_json(sub: Subscription, base: str) -> dict[str, Any]:
    return {
        "name": sub.name,
        "url": sub.url,
        "excludeBody": False,
        "filters": {"issue-related-events-section": sub.jql},
        "events": list(sub.events),
        "enabled": True,
        "self": f"{base}/rest/webhooks/1.0/webhook/{sub.id}",
        "lastUpdatedUser": "admin",
        "lastUpdatedDisplayName": "Sandbox Admin",
        "lastUpdated": sub.created_ms,
    }


def asana_hooks(req: Request, env: Env, path: str) -> Response:
    """`/webhooks[/{gid}]`."""
    hooks = _hooks_of(env)
    if "asana" in hooks.forbidden:
        return _asana.error(403, "You do not have access to create webhooks on this resource.")
    rest = path.removeprefix("/webhooks").strip("/")
    if not rest:
        if req.method == "POST":
            return _asana_create(req, env, hooks)
        return _asana_list(req, env, hooks)
    sub = hooks.find("asana", rest)
    if sub is None:
        return _asana.error(404, "webhook: Unknown object: " + rest)
    if req.method == "DELETE":
        hooks.remove("asana", sub.id)
        return json_response(200, {"data": {}})
    return json_response(200, {"data": _asana_hook_json(sub, env)})


def _asana_list(req: Request, env: Env, hooks: Hooks) -> Response:
    if req.query.get("workspace") != ASANA_WORKSPACE:
        return _asana.error(400, "workspace: Missing input")
    resource = req.query.get("resource")
    subs = [s for s in hooks.subscriptions("asana") if resource in (None, s.scope)]
    data = [_asana_hook_json(s, env) for s in subs]
    return json_response(200, {"data": data, "next_page": None})


def _asana_create(req: Request, env: Env, hooks: Hooks) -> Response:
    body = req.json_body()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return _asana.error(400, "data: Missing input")
    resource, target = str(data.get("resource") or ""), str(data.get("target") or "")
    state = env.world.state("asana")
    if resource not in state.scopes or resource in state.hidden:
        return _asana.error(400, "resource: Not a recognized ID: " + resource)
    if not is_loopback(target):
        return _asana.error(400, "target: The sandbox sends webhooks only to loopback addresses.")
    secret = _handshake(target, hooks.timeout_s)
    if secret is None:
        return _asana.error(400, "Could not complete the handshake with the target.")
    filters = [f for f in data.get("filters") or [] if isinstance(f, dict)]
    sub = Subscription(
        "asana",
        str(1_209_000_000_000_000 + hooks.next_id()),
        target,
        ("events",),
        secret=secret,
        scope=resource,
        filters=filters,
    )
    hooks.add(sub)
    return json_response(201, {"data": _asana_hook_json(sub, env)})


def _handshake(target: str, timeout_s: float) -> str | None:
    """POST `X-Hook-Secret` to `target`; the secret if it answered 200/204 echoing it."""
    secret = secrets.token_hex(16)
    try:
        resp = httpx.post(
            target, headers={"X-Hook-Secret": secret}, content=b"", timeout=timeout_s + 3
        )
    except httpx.HTTPError as exc:
        log.warning("asana handshake with %s failed: %s", target, exc)
        return None
    if resp.status_code in (200, 204) and resp.headers.get("x-hook-secret") == secret:
        return secret
    log.warning("asana handshake with %s refused: HTTP %s", target, resp.status_code)
    return None


def _asana_hook_json(sub: Subscription, env: Env) -> dict[str, Any]:
    names = env.world.asana_projects
    return {
        "gid": sub.id,
        "resource_type": "webhook",
        "active": True,
        "resource": {
            "gid": sub.scope,
            "resource_type": "project",
            "name": names.get(sub.scope or "", ""),
        },
        "target": sub.url,
        "created_at": iso_z(sub.created_ms),
        "last_failure_at": None,
        "last_failure_content": "",
        "last_success_at": None,
        "delivery_retry_count": 0,
        "next_attempt_after": None,
        "failure_deletion_timestamp": None,
        "filters": sub.filters,
        "is_workspace_webhook": False,
    }
