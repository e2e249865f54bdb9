"""Fake GitHub REST (`/github`, like GitHub Enterprise's `/api/v3` prefix).

`Authorization: Bearer <t>` or `token <t>`. Issue lists return issues and PRs; `since` keeps
updated_at >= since (second granularity). Like github.com, the `Link` header points at
`/repositories/{repo_id}/issues?...&page=N` plus an opaque `_sbx` parameter, so a client that
builds its own page URLs sends different requests than one following `Link` verbatim.
Responses carry a weak `ETag`; a matching `If-None-Match` gets 304 (not counted against the
rate limit). Single issues: 200, 404, 410 (deleted) or 301 to a transferred issue.

A renamed repository (`Options.renamed`, old name → repo) answers every `/repos/{old}/...`
request with `301 Moved Permanently` and `Location: .../repositories/{id}/...` (same query),
as github.com does for old names. `Options.refused` makes a repo answer 403 (access blocked,
e.g. by SAML enforcement) or 410 (issues disabled) instead of serving it. The
`expire_page_token` fault answers a followed page (one carrying `page` > 1 or `after`) with
422, GitHub's refusal of deep page numbers on large data sets.

Cursor paging, as github.com does on large data sets: an `after` cursor (taken from a `Link`)
continues a listing after the cursor's item; with `Options.cursor_over` set, a listing of
more than that many items gets `Link: <...&after=CURSOR>; rel="next"` instead of page numbers
(default None: page numbers only). `GET /rate_limit` is free, like github.com's;
`POST /graphql` (`_graphql.py`) serves Projects (v2), `repository(owner:, name:)` and
`rateLimit` against GitHub's schema.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
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
from okrsync.sandbox._data import GITHUB_REPOS, Rec, Shared, dt_to_ms, encode_parts, iso_s, now_ms
from okrsync.sandbox._faults import (
    HUGE_PAGE_ITEMS,
    ITEM_FAULTS,
    Fault,
    elsewhere,
    hostile_label,
    hostile_person,
    hostile_title,
    targets,
)
from okrsync.sandbox._world import TrackerState

DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 15_000
GRAPHQL_RATE_LIMIT = 5_000
REPO_ID_BASE = 600_000_000
_STATE_REASON = {"todo": None, "done": "completed", "dropped": "not_planned"}


def error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return json_response(
        status, {"message": message, "documentation_url": DOCS, "status": str(status)}, headers
    )


class RateCounter:
    """x-ratelimit-* bookkeeping: an hourly window, never enforced (faults do that)."""

    def __init__(self, limit: int = RATE_LIMIT, resource: str = "core") -> None:
        self._lock = threading.Lock()
        self.limit = limit
        self.resource = resource
        self.used = 0
        self.reset = int(time.time()) + 3600

    def take(self, points: int) -> tuple[int, int]:
        """Count `points` (0: just look) and return (used, reset) of the current window."""
        with self._lock:
            now = int(time.time())
            if now >= self.reset:
                self.used, self.reset = 0, now + 3600
            self.used += points
            return self.used, self.reset

    def headers(self, count: bool) -> list[tuple[str, str]]:
        used, reset = self.take(1 if count else 0)
        return [
            ("x-ratelimit-limit", str(self.limit)),
            ("x-ratelimit-remaining", str(max(self.limit - used, 0))),
            ("x-ratelimit-reset", str(reset)),
            ("x-ratelimit-used", str(used)),
            ("x-ratelimit-resource", self.resource),
        ]

    def overview(self) -> dict[str, int]:
        """This window as `GET /rate_limit` shows a resource (counts nothing)."""
        used, reset = self.take(0)
        return {
            "limit": self.limit,
            "used": used,
            "remaining": max(self.limit - used, 0),
            "reset": reset,
        }


@dataclass(slots=True)
class Options:
    """Per-server GitHub state beside the core `RateCounter`: a paging knob, GraphQL's budget.

    `cursor_over`: list issues pages by `after` cursor in its `Link` headers when more than this
    many items match (0: always); None (the default) keeps page numbers. Requests that carry
    `after` are answered with cursor links whatever this says. `renamed`: old repo name → the
    repo it now is (301 to `/repositories/{id}`); `refused`: repo → 403 or 410.
    """

    cursor_over: int | None = None
    renamed: dict[str, str] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    graphql: RateCounter = field(default_factory=lambda: RateCounter(GRAPHQL_RATE_LIMIT, "graphql"))


def repo_id(repo: str) -> int:
    return REPO_ID_BASE + GITHUB_REPOS.index(repo) + 1


AUTHORS = ("octocat", "ada", "grace", "alan", "edsger", "barbara")
BODIES = (
    "I'm having a problem with this.",
    "Steps to reproduce:\n\n1. Open the page\n2. Click the button\n\nExpected: it works."
    " Actual: it does not.",
    "Follow-up from the planning meeting; details in the linked doc.",
    None,
)
PR_BODIES = (
    "## Summary\n\nMoves the handler behind the feature flag and adds the missing tests.\n\n"
    "## Changes\n\n- split the view into smaller components\n- add unit tests for the edge "
    "cases\n- update the changelog\n\n## Test plan\n\n- [x] unit tests pass locally\n"
    "- [x] checked the page by hand in staging\n\nCloses the linked issue.",
    "Bumps the dependency to the latest patch release.\n\nRelease notes and the full "
    "changelog are linked in the description of the upstream release; no breaking changes "
    "are listed. CI covers the affected code paths.",
)
LABEL_COLORS = ("d73a4a", "0075ca", "a2eeef", "7057ff", "008672", "e4e669", "d876e3", "cfd3d7")


def user_id(login: str) -> int:
    """A user's numeric id (REST `id`, GraphQL `databaseId`)."""
    return int(short_hash(login)[:6], 16)


def _user(login: str, base: str = "https://api.github.com") -> dict[str, Any]:
    """A `simple-user` object with every URL field, as GitHub embeds it."""
    uid = user_id(login)
    api = f"{base}/users/{login}"
    return {
        "login": login,
        "id": uid,
        "node_id": "MDQ6VXNlcj" + base64.b64encode(str(uid).encode()).decode(),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": "User",
        "user_view_type": "public",
        "site_admin": False,
    }


@functools.lru_cache(maxsize=512)
def _user_bytes(login: str, base: str) -> bytes:
    return dumps(_user(login, base))


@functools.lru_cache(maxsize=1024)
def _label_bytes(name: str, repo: str, base: str) -> bytes:
    lid = int(short_hash(f"{repo}:{name}")[:8], 16)
    return dumps(
        {
            "id": lid,
            "node_id": "LA_kwDO" + short_hash(f"{repo}:{name}:node")[:10],
            "url": f"{base}/repos/{repo}/labels/{urllib.parse.quote(name)}",
            "name": name,
            "description": f"Work on {name}",
            "color": LABEL_COLORS[lid % len(LABEL_COLORS)],
            "default": name == "bug",
        }
    )


def render_milestone(m: Rec, base: str, counts: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    api = f"{base}/repos/{m.scope}/milestones/{m.number}"
    return {
        "url": api,
        "html_url": f"https://github.com/{m.scope}/milestone/{m.number}",
        "labels_url": f"{api}/labels",
        "id": m.id,
        "node_id": f"MI_kwDO{m.id}",
        "number": m.number,
        "state": "closed" if m.status == "done" else "open",
        "title": m.title,
        "description": f"Tracking milestone for {m.title}",
        "creator": _user("octocat", base),
        "open_issues": counts[0],
        "closed_issues": counts[1],
        "created_at": iso_s(m.created_ms),
        "updated_at": iso_s(m.updated_ms),
        "closed_at": iso_s(m.updated_ms) if m.status == "done" else None,
        "due_on": f"{m.due}T07:00:00Z" if m.due else None,
    }


def milestone_counts(m: Rec, state: TrackerState) -> tuple[int, int]:
    """(open, closed) issues of the milestone, as GitHub counts them."""
    opened = closed = 0
    for r in state.recs.values():
        if r.milestone == m.number and r.scope == m.scope and not r.deleted:
            opened, closed = (opened + 1, closed) if r.status == "todo" else (opened, closed + 1)
    return opened, closed


def _milestone_bytes(m: Rec, state: TrackerState, base: str) -> bytes:
    """The milestone as issues embed it, encoded once per base URL (counts as of then)."""
    key = "gh-embed:" + base
    cached: bytes | None = m.cache.get(key)
    if cached is None:
        cached = dumps(render_milestone(m, base, milestone_counts(m, state)))
        m.cache[key] = cached
    return cached


def issue_bytes(rec: Rec, state: TrackerState, base: str) -> tuple[bytes, bytes]:
    """The issue's JSON bytes and their digest; the pieces are cached on the record per base."""
    key = "parts:" + base
    cached: tuple[tuple[bytes, ...], bytes] | None = rec.cache.get(key)
    if cached is None:
        parts = _build_issue(rec, state, base)
        digest = hashlib.sha1(b"".join(parts), usedforsecurity=False).digest()
        cached = (parts, digest)
        rec.cache[key] = cached
    return b"".join(cached[0]), cached[1]


def _build_issue(rec: Rec, state: TrackerState, base: str) -> tuple[bytes, ...]:
    """The issue as in GitHub's documented list example (`issue-items`), in JSON pieces."""
    api = f"{base}/repos/{rec.scope}/issues/{rec.number}"
    closed = rec.status != "todo"
    is_pr = rec.kind == "pull_request"
    html = f"https://github.com/{rec.scope}/{'pull' if is_pr else 'issues'}/{rec.number}"
    shared = Shared()
    milestone = next(
        (m for m in state.containers if m.scope == rec.scope and m.number == rec.milestone), None
    )
    author = AUTHORS[rec.id % len(AUTHORS)]
    assignee = (
        shared.ref(_user_bytes(rec.assignee.split()[0].lower(), base)) if rec.assignee else None
    )
    body: dict[str, Any] = {
        "id": rec.id,
        "node_id": f"{'PR' if is_pr else 'I'}_kwDO{rec.id}",
        "url": api,
        "repository_url": f"{base}/repos/{rec.scope}",
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": html,
        "number": rec.number,
        "state": "closed" if closed else "open",
        "title": rec.title,
        "body": PR_BODIES[rec.id % 2] if is_pr else BODIES[rec.id % len(BODIES)],
        "user": shared.ref(_user_bytes(author, base)),
        "labels": [shared.ref(_label_bytes(n, rec.scope, base)) for n in rec.labels],
        "assignee": assignee,
        "assignees": [assignee] if assignee else [],
        "milestone": shared.ref(_milestone_bytes(milestone, state, base)) if milestone else None,
        "locked": False,
        "active_lock_reason": None,
        "comments": rec.id % 7,
        "closed_at": iso_s(rec.updated_ms) if closed else None,
        "created_at": iso_s(rec.created_ms),
        "updated_at": iso_s(rec.updated_ms),
        "closed_by": shared.ref(_user_bytes(author, base)) if closed else None,
        "author_association": "MEMBER",
        "type": None,  # the issue type (organisation-defined); none set here
        "state_reason": None if is_pr else _STATE_REASON[rec.status],
        "pinned_comment": None,
        "reactions": _reactions(rec, api),
        "timeline_url": f"{api}/timeline",
        "performed_via_github_app": None,
    }
    if is_pr:
        body["draft"] = False
        body["pull_request"] = {
            "url": f"{base}/repos/{rec.scope}/pulls/{rec.number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": iso_s(rec.updated_ms) if rec.status == "done" else None,
        }
    return encode_parts(body, shared)


def _reactions(rec: Rec, api: str) -> dict[str, Any]:
    up, heart = rec.id % 3, rec.id % 2
    return {
        "url": f"{api}/reactions",
        "total_count": up + heart,
        "+1": up,
        "-1": 0,
        "laugh": 0,
        "hooray": 0,
        "confused": 0,
        "heart": heart,
        "rocket": 0,
        "eyes": 0,
    }


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
    recs = ordered(state, repo, p)
    return recs[offset : offset + p.per_page], len(recs)


def ordered(state: TrackerState, repo: str, p: ListParams) -> list[Rec]:
    """Every matching record of `repo` in the listing's order (see `order_key`)."""
    recs = [r for r in state.index.iter([repo], p.since_ms) if p.matches(r)]
    if p.sort == "created":
        recs.sort(key=lambda r: (r.created_ms, r.id))
    if p.direction == "desc":
        recs.reverse()
    return recs


def order_key(rec: Rec, sort: str) -> tuple[int, int]:
    """The key a listing is ordered by (ascending; `desc` reverses): what a cursor holds."""
    return (rec.created_ms, rec.id) if sort == "created" else rec.sort_key


# --- cursor paging ----------------------------------------------------------------------

_CURSOR_PREFIX = b"cursor:v2:"


def encode_cursor(key: tuple[int, int]) -> str:
    raw = _CURSOR_PREFIX + json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, int]:
    """The (order key) position an `after` cursor continues from; ValueError if malformed."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise ValueError("bad cursor") from exc
    if not raw.startswith(_CURSOR_PREFIX):
        raise ValueError("bad cursor")
    value = json.loads(raw[len(_CURSOR_PREFIX) :])
    if not (isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)):
        raise ValueError("bad cursor")
    return value[0], value[1]


def select_after(
    state: TrackerState, repo: str, p: ListParams, after: tuple[int, int]
) -> tuple[list[Rec], bool]:
    """The page of records strictly past the cursor in the listing's order, and whether more
    follow. Keyset paging: items changing elsewhere in the list never shift the window."""
    want = p.per_page + 1
    if p.fast:
        low = max(p.since_ms, after[0])
        skip = 0
        while True:  # step over the (few) records tied with the cursor's `updated`
            head = state.index.window([repo], low, skip, 64)
            passed = sum(1 for r in head if r.sort_key <= after)
            skip += passed
            if passed < 64:
                break
        recs = state.index.window([repo], low, skip, want)
    else:
        asc = p.direction == "asc"
        recs = []
        for r in ordered(state, repo, p):
            key = order_key(r, p.sort)
            if (key > after) if asc else (key < after):
                recs.append(r)
                if len(recs) == want:
                    break
    return recs[: p.per_page], len(recs) > p.per_page


def cursor_link(req: Request, repo: str, p: ListParams, last: Rec) -> str:
    """`rel="next"` continuing after `last` (no `prev`: `before` is not served)."""
    params = {k: v for k, v in req.query.items() if k not in ("page", "after", "before", "_sbx")}
    params["after"] = encode_cursor(order_key(last, p.sort))
    url = f"{req.base}/repositories/{repo_id(repo)}/issues?{urllib.parse.urlencode(params)}"
    return f'<{url}>; rel="next"'


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


def list_issues(req: Request, env: Env, repo: str, opts: Options | None = None) -> Response:
    try:
        params = ListParams(req.query)
        after = decode_cursor(req.query["after"]) if req.query.get("after") else None
    except ValueError:
        return error(422, "Validation Failed")
    if (params.page > 1 or after is not None) and env.faults.take("github", req.path, _EXPIRE):
        return error(422, _EXPIRED_PAGE)
    cursor_over = None if opts is None else opts.cursor_over
    with env.world.lock:
        state = env.world.state("github")
        if after is None:
            recs, total = select(state, repo, params)
            by_cursor = cursor_over is not None and total > cursor_over
            more = (params.page - 1) * params.per_page + len(recs) < total
        else:
            recs, more = select_after(state, repo, params, after)
            by_cursor, total = True, 0
        rendered = [issue_bytes(r, state, req.base) for r in recs]
    resp = Response(200, json_array([body for body, _ in rendered]))
    resp.etag_basis = b"".join([digest for _, digest in rendered])
    if by_cursor:
        link = cursor_link(req, repo, params, recs[-1]) if more and recs else ""
    else:
        link = link_header(req, repo, params, total)
    if link:
        resp.headers.append(("Link", link))
    return _hostile(req, env, repo, params, recs, resp)


_EXPIRE = frozenset({"expire_page_token"})
_EXPIRED_PAGE = (
    "Pagination with the page parameter is not supported for large datasets, please use "
    "cursor based pagination (after/before)"
)

# --- hostile faults (see `_faults`) ------------------------------------------------------

_LOOP = frozenset({"loop_link"})
_HUGE_PAGE = frozenset({"huge_page"})
_OFF_ORIGIN = frozenset({"offorigin_link"})
_HUGE_ISSUE = (
    b'{"id":%d,"number":%d,"title":"generated %d","labels":[],"state":"open",'
    b'"created_at":"%b","updated_at":"%b"}'
)


def _hostile(
    req: Request, env: Env, repo: str, p: ListParams, recs: list[Rec], resp: Response
) -> Response:
    """A list page as a hostile fault queued for it rewrites it (at most one of each kind)."""
    faults = env.faults
    huge = faults.take("github", req.path, _HUGE_PAGE)
    if huge is not None:
        count = int(huge.params.get("items", HUGE_PAGE_ITEMS))
        return Response(200, huge_page(count), [h for h in resp.headers if h[0] == "Link"])
    loop = faults.take("github", req.path, _LOOP)
    if loop is not None:
        recs, resp = _looping(req, env, repo, p, loop, recs, resp)
    ids = [r.id for r in recs]
    item = faults.take("github", req.path, ITEM_FAULTS, lambda f: targets(f, ids) is not None)
    if item is not None:
        resp = _rewrite_item(resp, item, targets(item, ids))
    links = [v for k, v in resp.headers if k == "Link" and 'rel="next"' in v]
    off = faults.take("github", req.path, _OFF_ORIGIN) if links else None
    if off is not None:
        moved = elsewhere(req.base, str(off.params["origin"]))
        resp.headers = [
            (k, v.replace(req.base, moved) if k == "Link" else v) for k, v in resp.headers
        ]
    return resp


def huge_page(count: int) -> bytes:
    """A JSON array of `count` generated open issues (ids far above the sandbox's own)."""
    stamp = iso_s(now_ms()).encode()
    first = 9_000_000_000
    parts = [_HUGE_ISSUE % (first + i, 900_000 + i, i, stamp, stamp) for i in range(count)]
    return json_array(parts)


def _looping(
    req: Request, env: Env, repo: str, p: ListParams, fault: Fault, recs: list[Rec], resp: Response
) -> tuple[list[Rec], Response]:
    """`repeat`: this page, next = itself (plus the fault's raw `extra` query, once);
    `count`: the first page's items, next = page + 1; `alternate`: the first page's items,
    next = page 2 and page 3 in turn; `empty`: no items after page 1, next = page + 1."""
    others = [(k, v) for k, v in resp.headers if k != "Link"]
    mode = str(fault.params.get("mode", "repeat"))
    if mode == "repeat":
        url = f"{req.base}{req.path}" + (f"?{req.raw_query}" if req.raw_query else "")
        extra = str(fault.params.get("extra", ""))
        if extra and extra not in req.raw_query:
            url += ("&" if req.raw_query else "?") + extra
        resp.headers = [*others, ("Link", f'<{url}>; rel="next"')]
        return recs, resp
    first = copy.copy(p)
    first.page = 1
    with env.world.lock:
        state = env.world.state("github")
        recs = [] if mode == "empty" and p.page > 1 else select(state, repo, first)[0]
        body = json_array([issue_bytes(r, state, req.base)[0] for r in recs])
    step = copy.copy(p)
    if mode == "alternate":
        step.page = 2 if p.page == 2 else 1  # the link's page is step.page + 1
    return recs, Response(200, body, [*others, ("Link", link_header(req, repo, step, 10**9))])


def _rewrite_item(resp: Response, fault: Fault, target: int | None) -> Response:
    """The page with the target issue's title (and, for escapes, labels and assignee) replaced."""
    issues = json.loads(resp.body)
    for issue in issues:
        if issue["id"] != target:
            continue
        issue["title"] = hostile_title(fault, issue["title"])
        for label in issue["labels"]:
            label["name"] = hostile_label(fault, label["name"])
        for person in (issue["assignee"], *issue["assignees"]):
            if person is not None:
                person["login"] = hostile_person(fault, person["login"])
    return Response(resp.status, dumps(issues), resp.headers)


def list_milestones(req: Request, env: Env, repo: str) -> Response:
    state = env.world.state("github")
    with env.world.lock:
        data = [
            render_milestone(m, req.base, milestone_counts(m, state))
            for m in state.containers
            if m.scope == repo
        ]
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
            "owner": _user(owner, req.base) | {"type": "Organization"},
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


def get_rate_limit(rate: RateCounter, graphql: RateCounter) -> Response:
    """`GET /rate_limit`: free (counts against nothing); core, search (unused), graphql."""
    core = rate.overview()
    search = {"limit": 30, "used": 0, "remaining": 30, "reset": int(time.time()) + 60}
    resources = {"core": core, "search": search, "graphql": graphql.overview()}
    resp = json_response(200, {"resources": resources, "rate": core})
    resp.headers += rate.headers(count=False)
    return resp


# --- GraphQL: `_graphql.py` serves it; this is a repository as it shows one ----------------


def gql_repo(repo: str) -> dict[str, Any]:
    owner, name = repo.split("/")
    return {
        "__typename": "Repository",
        "id": f"R_kgDO{repo_id(repo)}",
        "databaseId": repo_id(repo),
        "name": name,
        "nameWithOwner": repo,
        "url": f"https://github.com/{repo}",
        "isPrivate": True,
        "hasIssuesEnabled": True,
        "owner": {"__typename": "Organization", "login": owner},
    }


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


def route(req: Request, env: Env, opts: Options | None = None) -> Response:
    found = resolve_repo(env, req.path)
    state = env.world.state("github")
    opts = opts or Options()
    if found is not None and found[0] in opts.renamed:
        return moved_repo(req, opts.renamed[found[0]], found[1])
    if found is None or found[0] not in state.scopes or found[0] in state.hidden:
        return error(404, "Not Found")
    repo, rest = found
    if repo in opts.refused:
        return refused_repo(opts.refused[repo])
    simple: dict[str, Callable[[Request, Env, str], Response]] = {
        "": get_repo,
        "milestones": list_milestones,
    }
    if rest == "issues":
        return list_issues(req, env, repo, opts)
    if rest == "hooks" or rest.startswith("hooks/"):
        from okrsync.sandbox import _hooks  # it renders payloads with this module

        return _hooks.github_hooks(req, env, repo, rest)
    if rest in simple:
        return simple[rest](req, env, repo)
    if rest.startswith("issues/") and rest[7:].isdigit():
        return get_issue(req, env, repo, rest[7:])
    return error(404, "Not Found")


def moved_repo(req: Request, repo: str, rest: str) -> Response:
    """A renamed repo's old name: 301 to the same request under `/repositories/{id}`."""
    location = f"{req.base}/repositories/{repo_id(repo)}" + (f"/{rest}" if rest else "")
    location += f"?{req.raw_query}" if req.raw_query else ""
    body = {"message": "Moved Permanently", "url": location, "documentation_url": DOCS}
    return json_response(301, body, [("Location", location)])


def refused_repo(status: int) -> Response:
    """403: the organisation blocks this token (SAML); 410: issues are disabled."""
    if status == 410:
        return error(410, "Issues are disabled for this repo")
    return error(
        status,
        "Resource protected by organization SAML enforcement. You must grant your "
        "Personal Access token access to this organization.",
    )


def authorized(req: Request, env: Env) -> bool:
    token = env.credentials["github_token"]
    auth = req.headers.get("authorization", "")
    ok = auth in (f"Bearer {token}", f"token {token}")
    return ok and not env.world.state("github").revoked


def handle(req: Request, env: Env, rate: RateCounter, opts: Options | None = None) -> Response:
    if not authorized(req, env):
        docs = "https://docs.github.com/graphql" if req.path == "/graphql" else DOCS
        body = {"message": "Bad credentials", "documentation_url": docs, "status": "401"}
        return json_response(401, body)
    if req.path == "/rate_limit":
        graphql = (opts or Options()).graphql
        return get_rate_limit(rate, graphql)
    if req.path == "/graphql":
        from okrsync.sandbox import _graphql  # graphql-core: loaded when GraphQL is asked

        return _graphql.post(req, env, (opts or Options()).graphql)
    resp = route(req, env, opts)
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
        # GitHub may also send a secondary limit with no Retry-After at all ("bare").
        headers = [] if params.get("bare") else [("retry-after", str(wait))]
        return error(
            status,
            "You have exceeded a secondary rate limit. Please wait a few "
            "minutes before you try again.",
            headers,
        )
    return error(status, "API rate limit exceeded for user ID 1.", headers)
