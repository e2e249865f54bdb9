"""Fake Jira Cloud (`/jira`, API v3 enhanced search) and Jira Data Center (`/jira-dc`, v2).

Cloud: Basic auth (email:api_token); `/rest/api/3/search/jql` pages with an opaque
`nextPageToken` (offset + JQL hash + issue time; expires after `token_ttl_s`); without
`fields` issues carry only `id`. The legacy `/rest/api/3/search` answers 410.
DC: Bearer PAT; `/rest/api/2/search` pages with `startAt`/`maxResults` (cap 1000)/`total`.
Epics: Cloud links children through `parent`; DC through "Epic Link" (customfield_10008),
with `parent` only for sub-tasks.
Knobs (`Settings`): `jira_page_cap` serves fewer issues per page than `maxResults` asks (Cloud
may; DC reports the lower `maxResults`); `jira_approximate_count = False` answers 404 to
`approximate-count`; `clock_skew_s` moves the server clock its `Date` header reports.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from okrsync.sandbox._core import (
    ITEMS,
    Env,
    Request,
    Response,
    alternating_token,
    decode_token,
    dumps,
    encode_token,
    json_response,
    looping_token,
    short_hash,
    splice,
)
from okrsync.sandbox._data import USERS, Rec, Shared, encode_parts
from okrsync.sandbox._faults import (
    HUGE_PAGE_ITEMS,
    ITEM_FAULTS,
    Fault,
    elsewhere,
    hostile_label,
    hostile_person,
    hostile_title,
    jql_in,
    targets,
)
from okrsync.sandbox._jql import JqlError, JqlQuery, parse_jql
from okrsync.sandbox._world import TrackerState

SELF_HOST = "https://sandbox.invalid"
_STATUS = {
    "todo": ("To Do", "10000", ("new", "To Do", 2), None),
    "in_progress": ("In Progress", "3", ("indeterminate", "In Progress", 4), None),
    "done": ("Done", "10001", ("done", "Done", 3), "Done"),
    "dropped": ("Cancelled", "10002", ("done", "Done", 3), "Won't Do"),
}
_TYPES = {
    "Epic": ("10000", 1),
    "Story": ("10001", 0),
    "Task": ("10002", 0),
    "Bug": ("10004", 0),
    "Sub-task": ("10003", -1),
}
CLOUD_POINTS, CLOUD_POINTS_UNUSED = "customfield_10016", "customfield_10026"
DC_POINTS, DC_EPIC_LINK = "customfield_10002", "customfield_10008"
TOKEN_INVALID = "The provided next page token is invalid or has expired."  # noqa: S105


def error(status: int, *messages: str) -> Response:
    return json_response(status, {"errorMessages": list(messages), "errors": {}})


def check_auth(req: Request, env: Env) -> bool:
    auth = req.headers.get("authorization", "")
    creds = env.credentials
    if req.tracker == "jira":
        basic = f"{creds['jira_email']}:{creds['jira_token']}".encode()
        return auth == "Basic " + base64.b64encode(basic).decode()
    return auth == f"Bearer {creds['jira_dc_token']}"


# --- rendering --------------------------------------------------------------------------


def jira_time(ms: int, tz: str) -> str:
    local = datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(tz))
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}" + local.strftime("%z")


_STATUS_COLOR = {"new": "blue-gray", "indeterminate": "yellow", "done": "green"}
_TYPE_TEXT = {
    "Epic": ("A big user story that needs to be broken down.", 10307),
    "Story": ("Functionality or a feature expressed as a user goal.", 10315),
    "Task": ("A small, distinct piece of work.", 10318),
    "Bug": ("A problem or error.", 10303),
    "Sub-task": ("A small piece of work that's part of a larger task.", 10316),
}
_RESOLUTIONS = {
    "Done": ("10000", "Work has been completed on this issue."),
    "Won't Do": ("10001", "This issue won't be actioned."),
}
_PRIORITY = ("3", "Medium")
EXPAND = "operations,versionedRepresentations,editmeta,changelog,renderedFields"


def _api(cloud: bool) -> str:
    return f"{SELF_HOST}/rest/api/{'3' if cloud else '2'}"


def _status_obj(status: str, cloud: bool) -> dict[str, Any]:
    """A status with its statusCategory, as a real search returns it."""
    name, sid, (cat_key, cat_name, cat_id), _ = _STATUS[status]
    return {
        "self": f"{_api(cloud)}/status/{sid}",
        "description": "",
        "iconUrl": f"{SELF_HOST}/images/icons/statuses/generic.png",
        "name": name,
        "id": sid,
        "statusCategory": {
            "self": f"{_api(cloud)}/statuscategory/{cat_id}",
            "id": cat_id,
            "key": cat_key,
            "colorName": _STATUS_COLOR[cat_key],
            "name": cat_name,
        },
    }


@functools.lru_cache(maxsize=64)
def _status_bytes(status: str, cloud: bool) -> bytes:
    return dumps(_status_obj(status, cloud))


def _issuetype_obj(name: str, cloud: bool) -> dict[str, Any]:
    tid, level = _TYPES[name]
    text, avatar = _TYPE_TEXT[name]
    out: dict[str, Any] = {
        "self": f"{_api(cloud)}/issuetype/{tid}",
        "id": tid,
        "description": text,
        "iconUrl": f"{SELF_HOST}/rest/api/2/universal_avatar/view/type/issuetype/avatar/"
        f"{avatar}?size=medium",
        "name": name,
        "subtask": level < 0,
        "avatarId": avatar,
    }
    if cloud:  # Data Center has no hierarchy levels in its issue types
        out["hierarchyLevel"] = level
    return out


@functools.lru_cache(maxsize=64)
def _issuetype_bytes(name: str, cloud: bool) -> bytes:
    return dumps(_issuetype_obj(name, cloud))


def _avatars(url: str, sizes: tuple[str, ...]) -> dict[str, str]:
    return {
        f"{n}x{n}": url.format(size=size) for n, size in zip((48, 24, 16, 32), sizes, strict=True)
    }


@functools.lru_cache(maxsize=64)
def _project_bytes(key: str, pid: str, cloud: bool) -> bytes:
    url = f"{SELF_HOST}/rest/api/2/universal_avatar/view/type/project/avatar/10425{{size}}"
    body: dict[str, Any] = {
        "self": f"{_api(cloud)}/project/{pid}",
        "id": pid,
        "key": key,
        "name": key.title(),
        "projectTypeKey": "software",
    }
    if cloud:
        body["simplified"] = False
    body["avatarUrls"] = _avatars(url, ("", "?size=small", "?size=xsmall", "?size=medium"))
    return dumps(body)


def _user_obj(name: str, cloud: bool) -> dict[str, Any]:
    """A user as Jira embeds one (assignee, reporter, creator): avatars in four sizes."""
    slug = name.lower().replace(" ", ".")
    digest = short_hash(slug)
    initials = "".join(w[0] for w in name.split()).upper()
    email = f"{slug}@example.com"
    if cloud:
        account = f"5b10ac8d82e05b22cc7d{digest[:4]}"
        url = (
            f"https://secure.gravatar.com/avatar/{digest}{digest}{digest[:8]}?d=https%3A%2F%2F"
            f"avatar-management--avatars.us-west-2.prod.public.atl-paas.net%2Finitials%2F"
            f"{initials}-5.png{{size}}"
        )
        return {
            "self": f"{_api(cloud)}/user?accountId={account}",
            "accountId": account,
            "emailAddress": email,
            "avatarUrls": _avatars(url, ("", "", "", "")),
            "displayName": name,
            "active": True,
            "timeZone": "America/Los_Angeles",
            "accountType": "atlassian",
        }
    url = f"{SELF_HOST}/secure/useravatar?{{size}}ownerId={slug}&avatarId=1{digest[:4]}"
    return {
        "self": f"{_api(cloud)}/user?username={slug}",
        "name": slug,
        "key": slug,
        "emailAddress": email,
        "avatarUrls": _avatars(url, ("", "size=small&", "size=xsmall&", "size=medium&")),
        "displayName": name,
        "active": True,
        "timeZone": "Europe/Berlin",
    }


@functools.lru_cache(maxsize=256)
def _user_bytes(name: str, cloud: bool) -> bytes:
    return dumps(_user_obj(name, cloud))


@functools.lru_cache(maxsize=8)
def _priority_bytes(cloud: bool) -> bytes:
    pid, name = _PRIORITY
    return dumps(
        {
            "self": f"{_api(cloud)}/priority/{pid}",
            "iconUrl": f"{SELF_HOST}/images/icons/priorities/{name.lower()}.svg",
            "name": name,
            "id": pid,
        }
    )


@functools.lru_cache(maxsize=8)
def _resolution_bytes(name: str, cloud: bool) -> bytes:
    rid, text = _RESOLUTIONS[name]
    return dumps(
        {"self": f"{_api(cloud)}/resolution/{rid}", "id": rid, "description": text, "name": name}
    )


def _parent(state: TrackerState, key: str, shared: Shared) -> dict[str, Any]:
    parent = state.by_key.get(key)
    if parent is None:
        return {"key": key}
    cloud = parent.tracker == "jira"
    return {
        "id": str(parent.id),
        "key": parent.key,
        "self": _self(parent),
        "fields": {
            "summary": parent.title,
            "status": shared.ref(_status_bytes(parent.status, cloud)),
            "priority": shared.ref(_priority_bytes(cloud)),
            "issuetype": shared.ref(_issuetype_bytes(parent.issuetype, cloud)),
        },
    }


def _self(rec: Rec) -> str:
    version = "3" if rec.tracker == "jira" else "2"
    return f"{SELF_HOST}/rest/api/{version}/issue/{rec.id}"


def _person(name: str | None, cloud: bool, shared: Shared) -> str | None:
    return None if name is None else shared.ref(_user_bytes(name, cloud))


Fields = tuple[dict[str, Any], Shared]


def all_fields(rec: Rec, state: TrackerState, tz: str) -> Fields:
    """Every field of the issue, shared sub-objects as `Shared` refs (cached per timezone)."""
    cache_key = f"jira:{tz}"
    cached: Fields | None = rec.cache.get(cache_key)
    if cached is None:
        cached = _build_fields(rec, state, tz)
        rec.cache[cache_key] = cached
    return cached


def _build_fields(rec: Rec, state: TrackerState, tz: str) -> Fields:
    """The fields of a real search hit: status with statusCategory, users with avatarUrls."""
    cloud = rec.tracker == "jira"
    shared = Shared()
    resolution = _STATUS[rec.status][3]
    creator = USERS[rec.id % len(USERS)]
    pid = str(state.scopes.index(rec.scope) + 10000)
    fields: dict[str, Any] = {
        "summary": rec.title,
        "status": shared.ref(_status_bytes(rec.status, cloud)),
        "resolution": shared.ref(_resolution_bytes(resolution, cloud)) if resolution else None,
        "resolutiondate": jira_time(rec.updated_ms, tz) if resolution else None,
        "issuetype": shared.ref(_issuetype_bytes(rec.issuetype, cloud)),
        "project": shared.ref(_project_bytes(rec.scope, pid, cloud)),
        "labels": list(rec.labels),
        "assignee": _person(rec.assignee, cloud, shared),
        "reporter": _person(creator, cloud, shared),
        "creator": _person(creator, cloud, shared),
        "priority": shared.ref(_priority_bytes(cloud)),
        "duedate": rec.due,
        "created": jira_time(rec.created_ms, tz),
        "updated": jira_time(rec.updated_ms, tz),
        "fixVersions": [],
    }
    is_sub = rec.issuetype == "Sub-task"
    if rec.parent_key and (cloud or is_sub):
        fields["parent"] = _parent(state, rec.parent_key, shared)
    if cloud:
        fields[CLOUD_POINTS], fields[CLOUD_POINTS_UNUSED] = rec.estimate, None
    else:
        fields[DC_POINTS] = rec.estimate
        fields[DC_EPIC_LINK] = rec.parent_key if rec.parent_key and not is_sub else None
    return fields, shared


def render_issue(rec: Rec, state: TrackerState, tz: str, wanted: list[str] | None) -> Any:
    """The issue as a search returns it for the `fields` selection `wanted`, decoded."""
    return json.loads(issue_bytes(rec, state, tz, wanted, bytes_key(tz, wanted)))


def _issue(rec: Rec, full: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
    fields = full if wanted is None else {k: full[k] for k in wanted if k in full}
    return {
        "expand": EXPAND,
        "id": str(rec.id),
        "self": _self(rec),
        "key": rec.key,
        "fields": fields,
    }


def bytes_key(tz: str, wanted: list[str] | None) -> str:
    """`rec.cache` key of an issue's JSON pieces for one timezone and `fields` selection."""
    return f"bytes:{tz}:{'*' if wanted is None else json.dumps(wanted)}"


def issue_bytes(
    rec: Rec, state: TrackerState, tz: str, wanted: list[str] | None, key: str
) -> bytes:
    """`render_issue` as JSON bytes; the pieces are cached on the record under `key`."""
    cached: tuple[bytes, ...] | None = rec.cache.get(key)
    if cached is None:
        if wanted is not None and not wanted:
            cached = (dumps({"id": str(rec.id)}),)
        else:
            full, shared = rec.cache.get(f"jira:{tz}") or _build_fields(rec, state, tz)
            cached = encode_parts(_issue(rec, full, wanted), shared)
        rec.cache[key] = cached
    return b"".join(cached)


def issue_parts(
    recs: list[Rec], state: TrackerState, tz: str, wanted: list[str] | None
) -> list[bytes]:
    key = bytes_key(tz, wanted)
    return [issue_bytes(rec, state, tz, wanted, key) for rec in recs]


def parse_fields(raw: Any, default_all: bool) -> list[str] | None:
    """None = every field; [] = id only."""
    if raw is None or raw == "":
        return None if default_all else []
    names = raw if isinstance(raw, list) else str(raw).split(",")
    names = [str(n).strip() for n in names if str(n).strip()]
    if any(n in ("*all", "*navigable") for n in names):
        return None
    return [n for n in names if not n.startswith("-")]


# --- search -----------------------------------------------------------------------------


def run_query(req: Request, env: Env, jql: str) -> tuple[JqlQuery, list[str]] | Response:
    state = env.world.state(req.tracker)
    try:
        q = parse_jql(jql, env.settings.jira_timezone)
    except JqlError as exc:
        return error(400, str(exc))
    if req.tracker == "jira" and q.clauses == 0:
        return error(
            400,
            "Unbounded JQL queries are not allowed here. "
            "Please add a search restriction to your query.",
        )
    visible = [s for s in state.scopes if s not in state.hidden]
    for key in q.projects or []:
        if key not in visible:
            return error(400, f"The value '{key}' does not exist for the field 'project'.")
    return q, (visible if q.projects is None else q.projects)


def window(
    state: TrackerState, q: JqlQuery, scopes: list[str], offset: int, limit: int
) -> tuple[list[Rec], int]:
    total = state.index.count(scopes, q.min_ms)
    if not q.descending:
        return state.index.window(scopes, q.min_ms, offset, limit), total
    items = list(state.index.iter(scopes, q.min_ms))[::-1]
    return items[offset : offset + limit], total


def page_cap(env: Env, api_max: int) -> int:
    """The most issues one search page holds: the API's maximum or the sandbox's lower cap."""
    cap = env.settings.jira_page_cap
    return api_max if cap is None else max(1, min(cap, api_max))


def int_param(value: Any, default: int, cap: int) -> int:
    if value is None or value == "":
        return default
    number = int(value)
    if number < 0:
        raise ValueError("negative")
    return min(number, cap)


def search_jql(req: Request, env: Env) -> Response:
    """Cloud enhanced search, GET or POST."""
    params: dict[str, Any] = dict(req.query) if req.method == "GET" else req.json_body()
    try:
        limit = int_param(params.get("maxResults"), 50, page_cap(env, 100))
    except (TypeError, ValueError):
        return error(400, "The value of 'maxResults' must be an integer.")
    jql = str(params.get("jql", ""))
    token = params.get("nextPageToken")
    offset = page_offset(req, env, token, jql)
    if isinstance(offset, Response):
        return offset
    alternate = env.faults.take(req.tracker, req.path, _ALTERNATE)
    loop = None if alternate else env.faults.take(req.tracker, req.path, _LOOP, jql_in(jql))
    with env.world.lock:
        found = run_query(req, env, jql)
        if isinstance(found, Response):
            return found
        state = env.world.state(req.tracker)
        offset = 0 if alternate is not None or loop is not None else offset
        recs, total = window(state, found[0], found[1], offset, limit or 1)
        if loop is not None and token and loop.params.get("mode") == "empty":
            recs = []
        wanted = parse_fields(params.get("fields"), default_all=False)
        issues = issue_parts(recs, state, env.settings.jira_timezone, wanted)
    body: dict[str, Any] = {"issues": ITEMS, "isLast": offset + len(recs) >= total}
    if alternate is not None:
        body = {
            "issues": ITEMS,
            "isLast": False,
            "nextPageToken": alternating_token(alternate.params, short_hash(jql), token),
        }
    elif loop is not None:
        next_token = looping_token(loop.params, short_hash(jql), token)
        body = {"issues": ITEMS, "isLast": False, "nextPageToken": next_token}
    elif not body["isLast"]:
        body["nextPageToken"] = encode_token(
            {"o": offset + len(recs), "h": short_hash(jql), "t": int(time.time())}
        )
    return _hostile_search(req, env, body, recs, issues)


def approximate_count(req: Request, env: Env) -> Response:
    """Cloud `POST /rest/api/3/search/approximate-count` {"jql"} → {"count"} (bounded JQL)."""
    if not env.settings.jira_approximate_count:
        return error(404, f"No resource at {req.path}")
    if req.method != "POST":
        return error(405, "Method not allowed: use POST.")
    try:
        params = req.json_body()
    except ValueError:
        return error(400, "The request body is not valid JSON.")
    if not isinstance(params, dict):
        return error(400, "The request body must be a JSON object with a 'jql' string.")
    jql = str(params.get("jql", ""))
    with env.world.lock:
        found = run_query(req, env, jql)
        if isinstance(found, Response):
            return found
        state = env.world.state(req.tracker)
        count = state.index.count(found[1], found[0].min_ms)
    return json_response(200, {"count": count})


def page_offset(req: Request, env: Env, token: Any, jql: str) -> int | Response:
    if not token:
        return 0
    if env.faults.take(req.tracker, req.path, frozenset({"expire_page_token"})):
        return error(400, TOKEN_INVALID)
    data = decode_token(str(token))
    if (
        data is None
        or data.get("h") != short_hash(jql)
        or time.time() - float(data.get("t", 0)) > env.settings.token_ttl_s
    ):
        return error(400, TOKEN_INVALID)
    return int(data.get("o", 0))


def search_dc(req: Request, env: Env) -> Response:
    """Jira Server/DC (and Cloud v2-style) startAt search."""
    params: dict[str, Any] = dict(req.query) if req.method == "GET" else req.json_body()
    try:
        limit = int_param(params.get("maxResults"), 50, page_cap(env, 1000))
        start = int_param(params.get("startAt"), 0, 10**9)
    except (TypeError, ValueError):
        return error(400, "The value of 'maxResults'/'startAt' must be an integer.")
    jql = str(params.get("jql", ""))
    with env.world.lock:
        found = run_query(req, env, jql)
        if isinstance(found, Response):
            return found
        state = env.world.state(req.tracker)
        huge_total = env.faults.take(req.tracker, req.path, _HUGE_TOTAL, jql_in(jql))
        mode = "" if huge_total is None else str(huge_total.params.get("mode", "same"))
        at = 0 if mode in ("same", "stuck") else start
        recs, total = window(state, found[0], found[1], at, limit)
        if huge_total is not None:
            recs = _huge_total_page(huge_total, mode, recs)
        wanted = parse_fields(params.get("fields"), default_all=True)
        issues = issue_parts(recs, state, env.settings.jira_timezone, wanted)
    envelope = {
        "expand": "schema,names",
        "startAt": 0 if mode == "stuck" else start,
        "maxResults": limit,
        "total": total if huge_total is None else 10**9,
        "issues": ITEMS,
    }
    return _hostile_search(req, env, envelope, recs, issues)


# --- hostile faults (see `_faults`) ------------------------------------------------------

_ALTERNATE = frozenset({"alternate_token"})
_HUGE_TOTAL = frozenset({"huge_total"})
_LOOP = frozenset({"loop_link"})
_HUGE_PAGE = frozenset({"huge_page"})
_OFF_ORIGIN = frozenset({"offorigin_link"})
_HUGE_ISSUE = (
    b'{"id":"%d","key":"%b-%d","fields":{"summary":"generated %d","issuetype":{"name":"Task"},'
    b'"project":{"key":"%b"},"created":"%b","updated":"%b"}}'
)


def _huge_total_page(fault: Fault, mode: str, recs: list[Rec]) -> list[Rec]:
    """A `huge_total` page's issues: cut to the fault's `size` (`short`), none (`empty`)."""
    if mode == "short":
        return recs[: int(fault.params.get("size", 2))]
    return [] if mode == "empty" else recs


def _hostile_search(
    req: Request, env: Env, envelope: dict[str, Any], recs: list[Rec], issues: list[bytes]
) -> Response:
    """A search page as the hostile faults queued for it rewrite it."""
    huge = env.faults.take(req.tracker, req.path, _HUGE_PAGE)
    if huge is not None:
        scope = recs[0].scope if recs else "HUGE"
        issues = huge_issues(int(huge.params.get("items", HUGE_PAGE_ITEMS)), scope, env)
        return Response(200, splice(envelope, issues))
    ids = [r.id for r in recs]
    item = env.faults.take(
        req.tracker, req.path, ITEM_FAULTS, lambda f: targets(f, ids) is not None
    )
    if item is not None:
        at = ids.index(targets(item, ids) or 0)
        issue = _rewrite_issue(json.loads(issues[at]), item)
        issues = [*issues[:at], dumps(issue), *issues[at + 1 :]]
    return Response(200, splice(envelope, issues))


def huge_issues(count: int, project: str, env: Env) -> list[bytes]:
    """`count` generated issues of `project` (ids far above the sandbox's own)."""
    stamp = jira_time(int(time.time() * 1000), env.settings.jira_timezone).encode()
    key = project.encode()
    first = 900_000_000
    return [_HUGE_ISSUE % (first + i, key, 900_000 + i, i, key, stamp, stamp) for i in range(count)]


def _rewrite_issue(issue: dict[str, Any], fault: Fault) -> dict[str, Any]:
    """The issue with its summary (and, for escapes, labels and assignee) replaced, or (for
    missing_fields) without the fields the fault names."""
    f = issue.get("fields") or {}
    if fault.kind == "missing_fields":
        for name in fault.params.get("fields", ("created", "status")):
            f.pop(name, None)
        return issue
    if "summary" in f:
        f["summary"] = hostile_title(fault, f["summary"])
    if f.get("labels"):
        f["labels"] = [hostile_label(fault, label) for label in f["labels"]]
    if isinstance(f.get("assignee"), dict):
        f["assignee"]["displayName"] = hostile_person(fault, f["assignee"]["displayName"])
    return issue


def _off_origin(req: Request, env: Env, resp: Response) -> Response:
    """Every `self` URL and serverInfo's `baseUrl` pointing at the fault's origin."""
    ours = (SELF_HOST.encode(), req.base.encode())
    if not any(url in resp.body for url in ours):
        return resp
    fault = env.faults.take(req.tracker, req.path, _OFF_ORIGIN)
    if fault is None:
        return resp
    there = elsewhere(req.base, str(fault.params["origin"])).encode()
    body = resp.body.replace(SELF_HOST.encode(), there).replace(req.base.encode(), there)
    return Response(resp.status, body, resp.headers, resp.content_type)


# --- other resources --------------------------------------------------------------------


def get_issue(req: Request, env: Env, ref: str) -> Response:
    with env.world.lock:
        state = env.world.state(req.tracker)
        rec = state.recs.get(int(ref)) if ref.isdigit() else state.by_key.get(ref.upper())
        if rec is None or rec.deleted or rec.scope in state.hidden:
            return error(404, "Issue does not exist or you do not have permission to see it.")
        wanted = parse_fields(req.query.get("fields"), default_all=True)
        tz = env.settings.jira_timezone
        return Response(200, issue_bytes(rec, state, tz, wanted, bytes_key(tz, wanted)))


def myself(req: Request, env: Env) -> Response:
    cloud = req.tracker == "jira"
    body: dict[str, Any] = {
        "displayName": "Sandbox Bot",
        "active": True,
        "emailAddress": env.credentials["jira_email"],
        "timeZone": env.settings.jira_timezone,
        "locale": "en_US",
    }
    if cloud:
        body["accountId"] = "5b10ac8d82e05b22cc7d4ef5"
        body["accountType"] = "atlassian"
    else:
        body["name"] = body["key"] = "sandbox.bot"
    return json_response(200, body)


def server_info(req: Request, env: Env) -> Response:
    cloud = req.tracker == "jira"
    return json_response(
        200,
        {
            "baseUrl": req.base,
            "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.2",
            "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 2],
            "deploymentType": "Cloud" if cloud else env.settings.jira_dc_deployment,
            "buildNumber": 100230,
            "serverTitle": "Sandbox Jira",
            "serverTime": jira_time(int(time.time() * 1000), env.settings.jira_timezone),
        },
    )


def _field(fid: str, name: str, custom: bool, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": fid,
        "key": fid,
        "name": name,
        "custom": custom,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": [f"cf[{fid[12:]}]", name] if custom else [fid],
        "schema": schema,
    }


def fields(req: Request, env: Env) -> Response:
    std = [
        ("summary", "Summary", {"type": "string", "system": "summary"}),
        ("status", "Status", {"type": "status", "system": "status"}),
        ("resolution", "Resolution", {"type": "resolution", "system": "resolution"}),
        ("issuetype", "Issue Type", {"type": "issuetype", "system": "issuetype"}),
        ("project", "Project", {"type": "project", "system": "project"}),
        ("parent", "Parent", {}),
        ("labels", "Labels", {"type": "array", "items": "string"}),
        ("assignee", "Assignee", {"type": "user", "system": "assignee"}),
        ("duedate", "Due date", {"type": "date", "system": "duedate"}),
        ("created", "Created", {"type": "datetime", "system": "created"}),
        ("updated", "Updated", {"type": "datetime", "system": "updated"}),
        ("resolutiondate", "Resolved", {"type": "datetime", "system": "resolutiondate"}),
        ("fixVersions", "Fix versions", {"type": "array", "items": "version"}),
    ]
    out = [_field(fid, name, False, schema) for fid, name, schema in std]
    number = {"type": "number", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float"}
    if req.tracker == "jira":
        out.append(_field(CLOUD_POINTS, "Story point estimate", True, number))
        out.append(_field(CLOUD_POINTS_UNUSED, "Story Points", True, number))
    else:
        out.append(_field(DC_POINTS, "Story Points", True, number))
        out.append(
            _field(
                DC_EPIC_LINK,
                "Epic Link",
                True,
                {"type": "any", "custom": "com.pyxis.greenhopper.jira:gh-epic-link"},
            )
        )
    return json_response(200, out)


def projects(req: Request, env: Env) -> Response:
    state = env.world.state(req.tracker)
    values = [
        {"id": str(i + 10000), "key": key, "name": key.title()}
        for i, key in enumerate(state.scopes)
        if key not in state.hidden
    ]
    if req.path.endswith("/project/search"):
        return json_response(
            200,
            {
                "values": values,
                "isLast": True,
                "total": len(values),
                "startAt": 0,
                "maxResults": 50,
            },
        )
    return json_response(200, values)


def legacy_gone(req: Request, env: Env) -> Response:
    return error(
        410,
        "The requested API has been removed. Please migrate to the "
        "/rest/api/3/search/jql API. A full migration guideline is available "
        "at https://developer.atlassian.com/changelog/#CHANGE-2046",
    )


Handler = Callable[[Request, Env], Response]
CLOUD_ROUTES: dict[str, Handler] = {
    "/rest/api/3/search/jql": search_jql,
    "/rest/api/3/search/approximate-count": approximate_count,
    "/rest/api/3/search": legacy_gone,
    "/rest/api/2/search": legacy_gone,
    "/rest/api/3/myself": myself,
    "/rest/api/2/myself": myself,
    "/rest/api/3/serverInfo": server_info,
    "/rest/api/2/serverInfo": server_info,
    "/rest/api/3/field": fields,
    "/rest/api/2/field": fields,
    "/rest/api/3/project/search": projects,
    "/rest/api/3/project": projects,
}
DC_ROUTES: dict[str, Handler] = {
    "/rest/api/2/search": search_dc,
    "/rest/api/2/myself": myself,
    "/rest/api/2/serverInfo": server_info,
    "/rest/api/2/field": fields,
    "/rest/api/2/project": projects,
}


def handle(req: Request, env: Env) -> Response:
    if not check_auth(req, env) or env.world.state(req.tracker).revoked:
        return error(
            401, "You are not authenticated. Authentication required to perform this operation."
        )
    return _off_origin(req, env, route(req, env))


def route(req: Request, env: Env) -> Response:
    routes = CLOUD_ROUTES if req.tracker == "jira" else DC_ROUTES
    handler = routes.get(req.path.rstrip("/"))
    if handler is not None:
        return handler(req, env)
    if req.path.startswith("/rest/webhooks/1.0/webhook"):
        from okrsync.sandbox import _hooks  # it renders payloads with this module

        return _hooks.jira_hooks(req, env)
    for prefix in ("/rest/api/3/issue/", "/rest/api/2/issue/"):
        if req.path.startswith(prefix) and (req.tracker == "jira" or "/2/" in prefix):
            return get_issue(req, env, req.path[len(prefix) :].strip("/"))
    return error(404, f"No resource at {req.path}")
