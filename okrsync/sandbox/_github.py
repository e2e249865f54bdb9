"""Fake GitHub REST (`/github`, like GitHub Enterprise's `/api/v3` prefix).

`Authorization: Bearer <t>` or `token <t>`. Issue lists return issues and PRs; `since` keeps
updated_at >= since (second granularity). Like github.com, the `Link` header points at
`/repositories/{repo_id}/issues?...&page=N` plus an opaque `_sbx` parameter, so a client that
builds its own page URLs sends different requests than one following `Link` verbatim.
Responses carry a weak `ETag`; a matching `If-None-Match` gets 304 (not counted against the
rate limit). Single issues: 200, 404, 410 (deleted) or 301 to a transferred issue.
"""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from okrsync.sandbox._core import (
    Env,
    Request,
    Response,
    dumps,
    json_array,
    json_response,
    short_hash,
)
from okrsync.sandbox._data import GITHUB_REPOS, Rec, dt_to_ms, iso_s
from okrsync.sandbox._world import TrackerState

DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 15_000
REPO_ID_BASE = 600_000_000
_STATE_REASON = {"todo": None, "done": "completed", "dropped": "not_planned"}


def error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return json_response(
        status, {"message": message, "documentation_url": DOCS, "status": str(status)}, headers
    )


class RateCounter:
    """x-ratelimit-* bookkeeping: an hourly window, never enforced (faults do that)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.used = 0
        self.reset = int(time.time()) + 3600

    def headers(self, count: bool) -> list[tuple[str, str]]:
        with self._lock:
            now = int(time.time())
            if now >= self.reset:
                self.used, self.reset = 0, now + 3600
            self.used += 1 if count else 0
            used, reset = self.used, self.reset
        return [
            ("x-ratelimit-limit", str(RATE_LIMIT)),
            ("x-ratelimit-remaining", str(max(RATE_LIMIT - used, 0))),
            ("x-ratelimit-reset", str(reset)),
            ("x-ratelimit-used", str(used)),
            ("x-ratelimit-resource", "core"),
        ]


def repo_id(repo: str) -> int:
    return REPO_ID_BASE + GITHUB_REPOS.index(repo) + 1


def _user(login: str) -> dict[str, Any]:
    return {
        "login": login,
        "id": int(short_hash(login)[:6], 16),
        "type": "User",
        "site_admin": False,
    }


def render_milestone(m: Rec, base: str) -> dict[str, Any]:
    api = f"{base}/repos/{m.scope}/milestones/{m.number}"
    return {
        "url": api,
        "html_url": f"https://github.com/{m.scope}/milestone/{m.number}",
        "labels_url": f"{api}/labels",
        "id": m.id,
        "node_id": f"MI_kwDO{m.id}",
        "number": m.number,
        "title": m.title,
        "description": None,
        "creator": _user("octocat"),
        "state": "closed" if m.status == "done" else "open",
        "created_at": iso_s(m.created_ms),
        "updated_at": iso_s(m.updated_ms),
        "due_on": f"{m.due}T07:00:00Z" if m.due else None,
        "closed_at": iso_s(m.updated_ms) if m.status == "done" else None,
    }


def render_issue(rec: Rec, state: TrackerState, base: str) -> dict[str, Any]:
    cached: dict[str, Any] | None = rec.cache.get(base)
    if cached is None:
        cached = _build_issue(rec, state, base)
        rec.cache[base] = cached
    return cached


def issue_bytes(rec: Rec, state: TrackerState, base: str) -> tuple[bytes, bytes]:
    """The issue's JSON bytes and their digest, cached on the record per base URL."""
    key = "bytes:" + base
    cached: tuple[bytes, bytes] | None = rec.cache.get(key)
    if cached is None:
        as_dict = rec.cache.get(base) or _build_issue(rec, state, base)
        body = dumps(as_dict)
        cached = (body, hashlib.sha1(body, usedforsecurity=False).digest())
        rec.cache[key] = cached
    return cached


def _build_issue(rec: Rec, state: TrackerState, base: str) -> dict[str, Any]:
    api = f"{base}/repos/{rec.scope}/issues/{rec.number}"
    closed = rec.status != "todo"
    is_pr = rec.kind == "pull_request"
    kind = "pull" if is_pr else "issues"
    milestone = next(
        (m for m in state.containers if m.scope == rec.scope and m.number == rec.milestone), None
    )
    assignee = _user(rec.assignee.split()[0].lower()) if rec.assignee else None
    body: dict[str, Any] = {
        "url": api,
        "repository_url": f"{base}/repos/{rec.scope}",
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"https://github.com/{rec.scope}/{kind}/{rec.number}",
        "id": rec.id,
        "node_id": f"{'PR' if is_pr else 'I'}_kwDO{rec.id}",
        "number": rec.number,
        "title": rec.title,
        "user": _user("octocat"),
        "labels": [
            {
                "id": int(short_hash(n)[:8], 16),
                "name": n,
                "color": "ededed",
                "default": False,
                "description": None,
            }
            for n in rec.labels
        ],
        "state": "closed" if closed else "open",
        "locked": False,
        "assignee": assignee,
        "assignees": [assignee] if assignee else [],
        "milestone": render_milestone(milestone, base) if milestone else None,
        "comments": 0,
        "created_at": iso_s(rec.created_ms),
        "updated_at": iso_s(rec.updated_ms),
        "closed_at": iso_s(rec.updated_ms) if closed else None,
        "author_association": "MEMBER",
        "active_lock_reason": None,
        "body": None,
        "state_reason": None if is_pr else _STATE_REASON[rec.status],
    }
    if is_pr:
        body["draft"] = False
        body["pull_request"] = {
            "url": f"{base}/repos/{rec.scope}/pulls/{rec.number}",
            "html_url": body["html_url"],
            "diff_url": f"{body['html_url']}.diff",
            "patch_url": f"{body['html_url']}.patch",
            "merged_at": iso_s(rec.updated_ms) if rec.status == "done" else None,
        }
    return body


# --- lists ------------------------------------------------------------------------------


class ListParams:
    """Validated query of `GET /repos/{o}/{r}/issues`."""

    def __init__(self, query: dict[str, str]) -> None:
        self.state = query.get("state", "open")
        self.sort = query.get("sort", "created")
        self.direction = query.get("direction", "desc")
        self.per_page = min(max(int(query.get("per_page", "30")), 1), 100)
        self.page = max(int(query.get("page", "1")), 1)
        self.since_ms = 0
        since = query.get("since")
        if since:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
            self.since_ms = dt_to_ms(when if when.tzinfo else when.replace(tzinfo=UTC))
            self.since_ms = self.since_ms // 1000 * 1000
        if (
            self.state not in ("open", "closed", "all")
            or self.sort not in ("created", "updated", "comments")
            or self.direction not in ("asc", "desc")
        ):
            raise ValueError("invalid enum value")

    @property
    def fast(self) -> bool:
        return self.state == "all" and self.sort == "updated" and self.direction == "asc"

    def matches(self, rec: Rec) -> bool:
        closed = rec.status != "todo"
        return self.state == "all" or (self.state == "closed") == closed


def select(state: TrackerState, repo: str, p: ListParams) -> tuple[list[Rec], int]:
    offset = (p.page - 1) * p.per_page
    if p.fast:
        return (
            state.index.window([repo], p.since_ms, offset, p.per_page),
            state.index.count([repo], p.since_ms),
        )
    recs = [r for r in state.index.iter([repo], p.since_ms) if p.matches(r)]
    if p.sort == "created":
        recs.sort(key=lambda r: (r.created_ms, r.id))
    if p.direction == "desc":
        recs.reverse()
    return recs[offset : offset + p.per_page], len(recs)


def link_header(req: Request, repo: str, p: ListParams, total: int) -> str:
    last = max((total + p.per_page - 1) // p.per_page, 1)
    params = {k: v for k, v in req.query.items() if k not in ("page", "_sbx")}
    opaque = short_hash(f"{repo}|{sorted(params.items())}")
    url = f"{req.base}/repositories/{repo_id(repo)}/issues"

    # = urlencode(params | {"page": ..., "_sbx": opaque}), encoding the fixed part once.
    fixed = urllib.parse.urlencode(params)
    tail = "&_sbx=" + urllib.parse.quote_plus(opaque)
    prefix = f"<{url}?{fixed}&page=" if fixed else f"<{url}?page="

    def one(page: int, rel: str) -> str:
        return f'{prefix}{page}{tail}>; rel="{rel}"'

    links = []
    if p.page > 1:
        links.append(one(p.page - 1, "prev"))
    if p.page < last:
        links += [one(p.page + 1, "next"), one(last, "last")]
    if p.page > 1:
        links.append(one(1, "first"))
    return ", ".join(links)


def list_issues(req: Request, env: Env, repo: str) -> Response:
    try:
        params = ListParams(req.query)
    except ValueError:
        return error(422, "Validation Failed")
    with env.world.lock:
        state = env.world.state("github")
        recs, total = select(state, repo, params)
        key, base = "bytes:" + req.base, req.base
        rendered = [r.cache.get(key) or issue_bytes(r, state, base) for r in recs]
    resp = Response(200, json_array([body for body, _ in rendered]))
    resp.etag_basis = b"".join([digest for _, digest in rendered])
    link = link_header(req, repo, params, total)
    if link:
        resp.headers.append(("Link", link))
    return resp


def list_milestones(req: Request, env: Env, repo: str) -> Response:
    state = env.world.state("github")
    data = [render_milestone(m, req.base) for m in state.containers if m.scope == repo]
    return json_response(200, data)


def get_repo(req: Request, env: Env, repo: str) -> Response:
    owner, name = repo.split("/")
    return json_response(
        200,
        {
            "id": repo_id(repo),
            "node_id": f"R_kgDO{repo_id(repo)}",
            "name": name,
            "full_name": repo,
            "private": True,
            "owner": _user(owner) | {"type": "Organization"},
            "html_url": f"https://github.com/{repo}",
            "url": f"{req.base}/repos/{repo}",
            "issues_url": f"{req.base}/repos/{repo}/issues{{/number}}",
            "default_branch": "main",
            "has_issues": True,
            "archived": False,
            "visibility": "private",
        },
    )


def get_issue(req: Request, env: Env, repo: str, number: str) -> Response:
    with env.world.lock:
        state = env.world.state("github")
        rec = state.by_key.get(f"{repo}#{number}")
        if rec is None:
            return error(404, "Not Found")
        if rec.key != f"{repo}#{number}":
            location = f"{req.base}/repos/{rec.scope}/issues/{rec.number}"
            return json_response(
                301,
                {"message": "Moved Permanently", "url": location, "documentation_url": DOCS},
                [("Location", location)],
            )
        if rec.deleted:
            return error(410, "This issue was deleted")
        return Response(200, issue_bytes(rec, state, req.base)[0])


# --- routing ----------------------------------------------------------------------------


def resolve_repo(env: Env, path: str) -> tuple[str, str] | None:
    """(owner/repo, rest of path) for /repos/o/r/... or /repositories/<id>/..."""
    parts = path.strip("/").split("/")
    if parts[0] == "repos" and len(parts) >= 3:
        return f"{parts[1]}/{parts[2]}", "/".join(parts[3:])
    if parts[0] == "repositories" and len(parts) >= 2 and parts[1].isdigit():
        index = int(parts[1]) - REPO_ID_BASE - 1
        if 0 <= index < len(GITHUB_REPOS):
            return GITHUB_REPOS[index], "/".join(parts[2:])
    return None


def route(req: Request, env: Env) -> Response:
    found = resolve_repo(env, req.path)
    state = env.world.state("github")
    if found is None or found[0] not in state.scopes or found[0] in state.hidden:
        return error(404, "Not Found")
    repo, rest = found
    simple: dict[str, Callable[[Request, Env, str], Response]] = {
        "": get_repo,
        "issues": list_issues,
        "milestones": list_milestones,
    }
    if rest in simple:
        return simple[rest](req, env, repo)
    if rest.startswith("issues/") and rest[7:].isdigit():
        return get_issue(req, env, repo, rest[7:])
    return error(404, "Not Found")


def authorized(req: Request, env: Env) -> bool:
    token = env.credentials["github_token"]
    auth = req.headers.get("authorization", "")
    ok = auth in (f"Bearer {token}", f"token {token}")
    return ok and not env.world.state("github").revoked


def handle(req: Request, env: Env, rate: RateCounter) -> Response:
    if not authorized(req, env):
        return error(401, "Bad credentials")
    resp = route(req, env)
    basis = resp.body if resp.etag_basis is None else resp.etag_basis
    etag = 'W/"' + hashlib.sha256(basis).hexdigest()[:40] + '"'
    if resp.status == 200 and req.headers.get("if-none-match") == etag:
        return Response(304, b"", [("ETag", etag), *rate.headers(count=False)])
    if resp.status == 200:
        resp.headers.append(("ETag", etag))
    resp.headers += rate.headers(count=True)
    return resp


def rate_limited(params: dict[str, Any], rate: RateCounter) -> Response:
    """Primary limit (403/429 + remaining 0 + reset) or, with secondary=True, Retry-After."""
    wait = int(params.get("retry_after", 1))
    status = int(params.get("status", 429))
    headers = [
        ("x-ratelimit-limit", str(RATE_LIMIT)),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", str(int(time.time()) + wait)),
        ("x-ratelimit-used", str(RATE_LIMIT)),
        ("x-ratelimit-resource", "core"),
    ]
    if params.get("secondary"):
        headers = [("retry-after", str(wait))]
        return error(
            status,
            "You have exceeded a secondary rate limit. Please wait a few "
            "minutes before you try again.",
            headers,
        )
    return error(status, "API rate limit exceeded for user ID 1.", headers)
