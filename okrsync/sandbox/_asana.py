"""Fake Asana (`/asana`, like https://app.asana.com/api/1.0).

Bearer PAT. Tasks of a project are listed in (modified_at, gid) order; `modified_since` keeps
tasks with modified_at >= the value; `limit` must be 1..100 (without it at most 1000 results,
else 400); the `offset` token encodes position + query hash + issue time and expires after
`offset_ttl_s`. Only `opt_fields` asked for are returned (plus gid, resource_type); dotted
paths select sub-fields. `/events?resource=<project>&sync=` follows Asana's 412 protocol; a
project's events cover its tasks and its sections (`type`/`resource_type` "task" or "section").

Sections are changed as Asana's section endpoints change them (`add_section`, `rename_section`,
`delete_section`, exposed on `Sandbox`): creating one appends an empty section and logs an
`added` section event; renaming logs `changed` and renames the section in every member task's
`memberships` without touching the tasks' `modified_at`; deleting is refused for a section that
still has tasks and for a project's last section (Asana answers 400), else logs `deleted`.
A renamed section keeps its meaning in truth: the four generated sections are what a task's
status maps to (`World._section_for`), whatever they are called now.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

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
from okrsync.sandbox._data import ASANA_SECTIONS, ASANA_WORKSPACE, Rec, dt_to_ms, iso_z, now_ms
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
from okrsync.sandbox._world import TrackerState, World

ESTIMATE_FIELD = "1204000000000001"
SYNC_INVALID = (
    "Sync token invalid or too old. If you are attempting to keep resources in sync, you must "
    "fetch the full dataset for this query now and use the new sync token for the next sync."
)
OFFSET_EXPIRED = "offset: Your pagination token has expired."
# Beside "Estimate", the enum custom fields every sandbox project has (Asana returns a project's
# custom fields on each of its tasks).
ENUM_FIELDS = (
    ("Priority", ("P1", "P2", "P3")),
    ("Status", ("On track", "At risk", "Off track")),
    ("T-shirt size", ("S", "M", "L", "XL")),
    ("Impact", ("Low", "Medium", "High")),
)
COMPACT = ("gid", "name", "resource_type", "resource_subtype")


def error(status: int, message: str, **extra: Any) -> Response:
    return json_response(status, {"errors": [{"message": message}], **extra})


def _user(name: str) -> dict[str, Any]:
    return {
        "gid": "12000000" + short_hash(name)[:8].translate(str.maketrans("abcdef", "123456")),
        "name": name,
        "email": name.lower().replace(" ", ".") + "@example.com",
        "resource_type": "user",
    }


def full_task(rec: Rec, state: TrackerState, projects: dict[str, str]) -> dict[str, Any]:
    cached: dict[str, Any] | None = rec.cache.get("asana")
    if cached is None:
        cached = _build_task(rec, state, projects)
        rec.cache["asana"] = cached
    return cached


def _build_task(rec: Rec, state: TrackerState, projects: dict[str, str]) -> dict[str, Any]:
    section = state.by_key[rec.section or ""]
    parent = state.recs.get(int(rec.parent_key)) if rec.parent_key else None
    return {
        "gid": str(rec.id),
        "resource_type": "task",
        "name": rec.title,
        "resource_subtype": rec.issuetype,
        "completed": rec.completed,
        "completed_at": iso_z(rec.updated_ms) if rec.completed else None,
        "created_at": iso_z(rec.created_ms),
        "modified_at": iso_z(rec.updated_ms),
        "due_on": rec.due,
        "assignee": _user(rec.assignee) if rec.assignee else None,
        "tags": [
            {
                "gid": "12050000000"
                + short_hash(t)[:5].translate(str.maketrans("abcdef", "123456")),
                "name": t,
                "resource_type": "tag",
            }
            for t in rec.labels
        ],
        "parent": None
        if parent is None
        else {
            "gid": str(parent.id),
            "name": parent.title,
            "resource_type": "task",
            "resource_subtype": parent.issuetype,
        },
        "memberships": [
            {
                "project": {
                    "gid": rec.scope,
                    "name": projects[rec.scope],
                    "resource_type": "project",
                },
                "section": {
                    "gid": str(section.id),
                    "name": section.title,
                    "resource_type": "section",
                },
            }
        ],
        "permalink_url": f"https://app.asana.com/0/{rec.scope}/{rec.id}",
        "custom_fields": [_estimate(rec.estimate), *_enum_fields(rec.id)],
        "notes": "",
    }


def _estimate(value: float | None) -> dict[str, Any]:
    return {
        "gid": ESTIMATE_FIELD,
        "resource_type": "custom_field",
        "name": "Estimate",
        "type": "number",
        "resource_subtype": "number",
        "number_value": value,
        "display_value": None if value is None else f"{value:g}",
        "enabled": True,
        "precision": 0,
    }


def _enum_fields(seed: int) -> list[dict[str, Any]]:
    """The project's enum custom fields, as every task of a real project carries them."""
    out = []
    for i, (name, options) in enumerate(ENUM_FIELDS):
        pick = (seed // (i + 1)) % (len(options) + 1)  # one in n+1 tasks leaves it empty
        value = None
        if pick < len(options):
            value = {
                "gid": f"12040000000{i + 2:02d}{pick:03d}",
                "resource_type": "enum_option",
                "name": options[pick],
                "enabled": True,
                "color": ("red", "yellow", "green", "blue")[pick % 4],
            }
        out.append(
            {
                "gid": f"12040000000000{i + 2:02d}",
                "resource_type": "custom_field",
                "name": name,
                "type": "enum",
                "resource_subtype": "enum",
                "enum_value": value,
                "display_value": None if value is None else value["name"],
                "enabled": True,
            }
        )
    return out


def field_tree(opt_fields: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in filter(None, (p.strip() for p in opt_fields.split(","))):
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    return tree


def project_fields(value: Any, tree: dict[str, Any]) -> Any:
    """Keep only the requested paths (an empty subtree keeps the whole value)."""
    if not tree:
        return value
    if isinstance(value, list):
        return [project_fields(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: value[k] for k in ("gid", "resource_type") if k in value}
    for name, sub in tree.items():
        if name in value:
            out[name] = project_fields(value[name], sub)
    return out


def select(task: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    if not tree:
        return {k: task[k] for k in COMPACT}
    result: dict[str, Any] = project_fields(task, tree)
    return result


def selected(
    rec: Rec, state: TrackerState, projects: dict[str, str], opt_fields: str, tree: dict[str, Any]
) -> bytes:
    """The projected task as JSON bytes, cached on the record per opt_fields string."""
    key = "asana:" + opt_fields
    cached: bytes | None = rec.cache.get(key)
    if cached is None:
        full = rec.cache.get("asana") or _build_task(rec, state, projects)
        cached = dumps(select(full, tree))
        rec.cache[key] = cached
    return cached


def selected_parts(
    recs: list[Rec], state: TrackerState, projects: dict[str, str], opt_fields: str
) -> list[bytes]:
    key = "asana:" + opt_fields
    parts: list[bytes] = []
    tree: dict[str, Any] | None = None
    for rec in recs:
        cached: bytes | None = rec.cache.get(key)
        if cached is None:
            tree = field_tree(opt_fields) if tree is None else tree
            cached = selected(rec, state, projects, opt_fields, tree)
        parts.append(cached)
    return parts


def visible_project(env: Env, gid: str) -> Response | None:
    state = env.world.state("asana")
    if gid not in state.scopes:
        return error(404, f"project: Not a recognized ID: {gid}")
    if gid in state.hidden:
        return error(403, "You do not have access to this resource.")
    return None


def list_tasks(req: Request, env: Env, project: str) -> Response:
    denied = visible_project(env, project)
    if denied:
        return denied
    since = parse_since(req.query.get("modified_since"))
    if isinstance(since, Response):
        return since
    raw_limit = req.query.get("limit")
    if raw_limit is not None and not (raw_limit.isdigit() and 1 <= int(raw_limit) <= 100):
        return error(400, "limit: Must be between 1 and 100")
    query_hash = short_hash(f"{project}|{req.query.get('modified_since', '')}")
    offset = read_offset(req, env, query_hash)
    if isinstance(offset, Response):
        return offset
    limit = int(raw_limit) if raw_limit else 1001
    return _task_page(req, env, project, since, offset, limit, query_hash)


def _task_page(
    req: Request, env: Env, project: str, since: int, offset: int, limit: int, query_hash: str
) -> Response:
    world = env.world
    opt_fields = req.query.get("opt_fields", "")
    with world.lock:
        state = world.state("asana")
        recs = state.index.window([project], since, offset, limit)
        total = state.index.count([project], since)
        if "limit" not in req.query and total > 1000:
            return error(
                400,
                "The result is too large. "
                "You should use pagination (may require specifying a limit).",
            )
        alternate = env.faults.take("asana", req.path, _ALTERNATE)
        loop = None if alternate else env.faults.take("asana", req.path, _LOOP)
        if alternate is not None or loop is not None:
            recs = state.index.window([project], since, 0, limit)
        if loop is not None and _looped_empty(loop, req):
            recs = []
        data = selected_parts(recs, state, world.asana_projects, opt_fields)
    next_page = None
    current = req.query.get("offset")
    if alternate is not None:
        next_page = _next_page(
            req, project, alternating_token(alternate.params, query_hash, current)
        )
    elif loop is not None:
        next_page = _next_page(req, project, looping_token(loop.params, query_hash, current))
    elif offset + len(recs) < total:
        token = encode_token({"o": offset + len(recs), "h": query_hash, "t": int(time.time())})
        next_page = _next_page(req, project, token)
    return _hostile_tasks(req, env, [r.id for r in recs], data, next_page)


def _next_page(req: Request, project: str, token: str, listing: str = "tasks") -> dict[str, str]:
    fixed = _urlencode(tuple((k, v) for k, v in req.query.items() if k != "offset"))
    tail = "offset=" + urllib.parse.quote_plus(token)
    query = f"{fixed}&{tail}" if fixed else tail
    path = f"/projects/{project}/{listing}?{query}"
    return {"offset": token, "path": path, "uri": req.base + path}


# --- hostile faults (see `_faults`) ------------------------------------------------------

_ALTERNATE = frozenset({"alternate_offset"})
_HUGE_PAGE = frozenset({"huge_page"})
_OFF_ORIGIN = frozenset({"offorigin_link"})
_FOREVER = frozenset({"events_forever"})
_LOOP = frozenset({"loop_link"})
_HUGE_TASK = (
    b'{"gid":"%d","resource_type":"task","name":"generated %d","resource_subtype":'
    b'"default_task","completed":false,"created_at":"%b","modified_at":"%b"}'
)


def _hostile_tasks(
    req: Request, env: Env, ids: list[int], data: list[bytes], next_page: dict[str, str] | None
) -> Response:
    """A task page as the hostile faults queued for it rewrite it."""
    faults = env.faults
    huge = faults.take("asana", req.path, _HUGE_PAGE)
    if huge is not None:
        data = huge_tasks(int(huge.params.get("items", HUGE_PAGE_ITEMS)))
    item = None
    if huge is None:
        item = faults.take("asana", req.path, ITEM_FAULTS, lambda f: targets(f, ids) is not None)
    if item is not None:
        at = ids.index(targets(item, ids) or 0)
        data = [*data[:at], dumps(_rewrite_task(json.loads(data[at]), item)), *data[at + 1 :]]
    off = faults.take("asana", req.path, _OFF_ORIGIN) if next_page else None
    if off is not None and next_page is not None:
        uri = elsewhere(req.base, str(off.params["origin"])) + next_page["path"]
        next_page = {**next_page, "uri": uri}
    return Response(200, splice({"data": ITEMS, "next_page": next_page}, data))


def _looped_empty(fault: Fault, req: Request) -> bool:
    """A `loop_link` fault in `empty` mode serves nothing after the first page."""
    return fault.params.get("mode") == "empty" and bool(req.query.get("offset"))


def huge_tasks(count: int) -> list[bytes]:
    """`count` generated open tasks (gids far above the sandbox's own)."""
    stamp = iso_z(now_ms()).encode()
    first = 1_290_000_000_000_000
    return [_HUGE_TASK % (first + i, i, stamp, stamp) for i in range(count)]


def _rewrite_task(task: dict[str, Any], fault: Fault) -> dict[str, Any]:
    """The task with its name (and, for escapes, tag names and assignee) replaced."""
    if "name" in task:
        task["name"] = hostile_title(fault, task["name"])
    for tag in task.get("tags") or []:
        if "name" in tag:
            tag["name"] = hostile_label(fault, tag["name"])
    assignee = task.get("assignee")
    if isinstance(assignee, dict) and "name" in assignee:
        assignee["name"] = hostile_person(fault, assignee["name"])
    return task


@functools.lru_cache(maxsize=256)
def _urlencode(params: tuple[tuple[str, str], ...]) -> str:
    """`urlencode` of a page's fixed query (a long opt_fields is costly to quote per page)."""
    return urllib.parse.urlencode(params)


def parse_since(raw: str | None) -> int | Response:
    if not raw:
        return 0
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return error(400, f"modified_since: Not a valid datetime: {raw}")
    return dt_to_ms(when if when.tzinfo else when.replace(tzinfo=UTC))


def read_offset(req: Request, env: Env, query_hash: str) -> int | Response:
    token = req.query.get("offset")
    if not token:
        return 0
    if env.faults.take("asana", req.path, frozenset({"expire_offset"})):
        return error(400, OFFSET_EXPIRED)
    data = decode_token(token)
    if (
        data is None
        or data.get("h") != query_hash
        or time.time() - float(data.get("t", 0)) > env.settings.offset_ttl_s
    ):
        return error(400, OFFSET_EXPIRED)
    return int(data.get("o", 0))


def get_task(req: Request, env: Env, gid: str) -> Response:
    world = env.world
    with world.lock:
        state = world.state("asana")
        rec = state.recs.get(int(gid)) if gid.isdigit() else None
        if rec is None or rec.deleted:
            return error(404, f"task: Not a recognized ID: {gid}")
        if rec.scope in state.hidden:
            return error(403, "You do not have access to this resource.")
        task = full_task(rec, state, world.asana_projects)
        return json_response(
            200, {"data": select(task, field_tree(req.query.get("opt_fields", ",".join(task))))}
        )


def events(req: Request, env: Env) -> Response:
    world = env.world
    project = req.query.get("resource", "")
    denied = visible_project(env, project)
    if denied:
        return denied
    with world.lock:
        token = req.query.get("sync", "")
        known = world.sync_tokens.get(token)
        expired = (
            bool(token)
            and env.faults.take("asana", req.path, frozenset({"expire_sync_token"})) is not None
        )
        too_old = known is not None and now_ms() - known[2] > env.settings.sync_ttl_s * 1000
        if known is None or known[0] != project or expired or too_old:
            return error(412, SYNC_INVALID, sync=world.new_sync_token(project))
        return _events_since(env, project, known[1], token)


def _events_since(env: Env, project: str, after_seq: int, current: str) -> Response:
    world = env.world
    if env.faults.take("asana", "/events", _FOREVER) is not None:
        return _events_forever(env, project, after_seq)
    loop = env.faults.take("asana", "/events", _LOOP)
    if loop is not None:
        return _events_looping(env, project, after_seq, loop, current)
    pending = [e for e in world.events[after_seq:] if e.project == project]
    batch = pending[:100]
    last_seq = batch[-1].seq if len(pending) > 100 else len(world.events)
    token = world.new_sync_token(project)
    world.sync_tokens[token] = (project, last_seq, now_ms())
    data = [
        {
            "user": None,
            "type": e.resource_type,
            "action": e.action,
            "resource": {"gid": e.task, "resource_type": e.resource_type},
            "parent": {"gid": e.project, "resource_type": "project"},
            "created_at": iso_z(e.at_ms),
        }
        for e in batch
    ]
    return json_response(200, {"data": data, "sync": token, "has_more": len(pending) > 100})


def _events_forever(env: Env, project: str, after_seq: int) -> Response:
    """The same events again, `has_more: true` and a new valid sync token (same position)."""
    world = env.world
    token = world.new_sync_token(project)
    world.sync_tokens[token] = (project, after_seq, now_ms())
    return json_response(200, {"data": _changed(world, project), "sync": token, "has_more": True})


def _events_looping(env: Env, project: str, after_seq: int, fault: Fault, current: str) -> Response:
    """`loop_link` on events: `has_more: true` and a sync token repeated (the fault's `token`,
    else one fixed at its first use), alternating A/B, or fresh (`count`, `empty`); the first
    3 tasks as `changed`, none after the first page for `empty`."""
    world, params = env.world, fault.params
    mode = str(params.get("mode", "repeat"))
    if mode == "repeat":
        token = str(params.get("token") or params.setdefault("token", secrets.token_hex(16)))
    elif mode == "alternate":
        a, b = (str(params.setdefault(x, secrets.token_hex(16))) for x in "AB")
        token = b if current == a else a
    else:
        token = secrets.token_hex(16)
    world.sync_tokens[token] = (project, after_seq, now_ms())
    served = int(params.get("served", 0))
    params["served"] = served + 1
    data = [] if mode == "empty" and served else _changed(world, project)
    return json_response(200, {"data": data, "sync": token, "has_more": True})


def _changed(world: World, project: str) -> list[dict[str, Any]]:
    """The project's first 3 tasks as `changed` events."""
    recs = world.state("asana").index.window([project], 0, 0, 3)
    return [
        {
            "user": None,
            "type": "task",
            "action": "changed",
            "resource": {"gid": str(r.id), "resource_type": "task"},
            "parent": {"gid": project, "resource_type": "project"},
            "created_at": iso_z(r.updated_ms),
        }
        for r in recs
    ]


def _project_json(gid: str, name: str, req: Request) -> dict[str, Any]:
    return {
        "gid": gid,
        "resource_type": "project",
        "name": name,
        "archived": False,
        "workspace": {"gid": ASANA_WORKSPACE, "resource_type": "workspace", "name": "Sandbox"},
        "permalink_url": f"https://app.asana.com/0/{gid}",
    }


def users_me(req: Request, env: Env) -> Response:
    return json_response(
        200,
        {
            "data": {
                "gid": "1200000000000099",
                "resource_type": "user",
                "name": "Sandbox Bot",
                "email": "sandbox@example.com",
                "workspaces": [
                    {"gid": ASANA_WORKSPACE, "resource_type": "workspace", "name": "Sandbox"}
                ],
            }
        },
    )


def workspace_projects(req: Request, env: Env, workspace: str) -> Response:
    if workspace != ASANA_WORKSPACE:
        return error(404, f"workspace: Not a recognized ID: {workspace}")
    state = env.world.state("asana")
    data = [
        {"gid": gid, "resource_type": "project", "name": name}
        for gid, name in env.world.asana_projects.items()
        if gid not in state.hidden
    ]
    return json_response(200, {"data": data, "next_page": None})


def project(req: Request, env: Env, gid: str) -> Response:
    denied = visible_project(env, gid)
    if denied:
        return denied
    return json_response(200, {"data": _project_json(gid, env.world.asana_projects[gid], req)})


def sections(req: Request, env: Env, gid: str) -> Response:
    denied = visible_project(env, gid)
    if denied:
        return denied
    data = [
        {
            "gid": str(s.id),
            "resource_type": "section",
            "name": s.title,
            "created_at": iso_z(s.created_ms),
        }
        for s in env.world.state("asana").containers
        if s.scope == gid and not s.deleted
    ]
    loop = env.faults.take("asana", req.path, _LOOP)
    if loop is None:
        return json_response(200, {"data": data, "next_page": None})
    token = looping_token(loop.params, short_hash(gid), req.query.get("offset"))
    data = [] if _looped_empty(loop, req) else data
    return json_response(200, {"data": data, "next_page": _next_page(req, gid, token, "sections")})


# --- section changes (Asana's POST /projects/{gid}/sections, PUT and DELETE /sections/{gid}) --


def add_section(world: World, project: str, name: str) -> str:
    """A new empty section at the end of `project`; its gid. Logs an `added` section event."""
    with world.lock:
        state = world.state("asana")
        if project not in state.scopes:
            raise ValueError(f"asana: unknown project {project!r}")
        now = now_ms()
        sid = max(s.id for s in state.containers) + 1
        rec = Rec("asana", sid, str(sid), project, "section", name, "todo", now, now)
        state.containers.append(rec)
        state.by_key[rec.key] = rec
        world.log_event(project, "added", rec)
        return rec.key


def rename_section(world: World, gid: str, name: str) -> None:
    """Rename a section: its tasks' memberships show the new name (their `modified_at` stays)."""
    with world.lock:
        section = live_section(world, gid)
        section.title = name
        for rec in world.state("asana").recs.values():
            if rec.section == gid:
                rec.cache.clear()
        world.log_event(section.scope, "changed", section)


def delete_section(world: World, gid: str) -> None:
    """Delete an empty section (Asana refuses a section with tasks, and a project's last one)."""
    with world.lock:
        section = live_section(world, gid)
        state = world.state("asana")
        if any(r.section == gid and not r.deleted for r in state.recs.values()):
            raise ValueError(
                f"asana: section {gid} is not empty; Asana deletes empty sections only"
            )
        ours = [s for s in state.containers if s.scope == section.scope and not s.deleted]
        generated = ours[: len(ASANA_SECTIONS)]
        if len(ours) == 1 or section in generated:
            raise ValueError(
                f"asana: section {gid} is the last section or one of the generated "
                f"{ASANA_SECTIONS} that task statuses map to; add a section to delete instead"
            )
        section.deleted = True
        world.log_event(section.scope, "deleted", section)


def live_section(world: World, gid: str) -> Rec:
    rec = world.state("asana").by_key.get(gid)
    if rec is None or rec.kind != "section" or rec.deleted:
        raise KeyError(f"asana: no section {gid!r}")
    return rec


Handler = Callable[[Request, Env, str], Response]
_ROUTES: list[tuple[str, str, Handler]] = [
    ("/workspaces/", "/projects", workspace_projects),
    ("/projects/", "/tasks", list_tasks),
    ("/projects/", "/sections", sections),
    ("/projects/", "", project),
    ("/tasks/", "", get_task),
]


def handle(req: Request, env: Env) -> Response:
    if (
        req.headers.get("authorization") != f"Bearer {env.credentials['asana_token']}"
        or env.world.state("asana").revoked
    ):
        return error(401, "Not Authorized")
    path = req.path.rstrip("/")
    if path == "/users/me":
        return users_me(req, env)
    if path == "/events":
        return events(req, env)
    if path == "/webhooks" or path.startswith("/webhooks/"):
        from okrsync.sandbox import _hooks  # it renders payloads with this module

        return _hooks.asana_hooks(req, env, path)
    for prefix, suffix, handler in _ROUTES:
        if path.startswith(prefix) and path.endswith(suffix):
            gid = path[len(prefix) : len(path) - len(suffix)]
            if gid.isdigit():
                return handler(req, env, gid)
    return error(404, f"No matching route for request: {req.path}")
