"""The read API under /api/v1/ (mounted by `okrsync.web.app`): thin handlers over
`okrsync.web.readmodel`, each run on a worker thread (the store is synchronous).

A bad query value is 400 `{"error": ..., "param": NAME}`; an unknown id or route is 404
`{"error": ...}`. The OpenAPI 3.1 description is `OPENAPI`, served at /api/v1/openapi.json.

The tree's "now" view (no `as_of`) is kept serialized, keyed by the store's data version
(`Store.data_version`: snapshots, check-ins, the OKR tables), the day, the query and the
thresholds: repeated requests between two syncs cost one fingerprint query, and any sync,
check-in or mapping change builds it afresh. While the app is served (uvicorn runs its
lifespan), `warm_tree` rebuilds the whole tree's entry in the background within
`WARM_EVERY_S` of a change, so the first request after a sync does not pay for it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from okrsync import __version__
from okrsync.signals import today
from okrsync.web import readmodel
from okrsync.web.readmodel import BadParam, NotFound

Handler = Callable[[Request], Awaitable[Response]]
log = structlog.get_logger("okrsync.web")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


def _flag(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "").strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise BadParam(name, f"{name} must be true or false, got {text!r}")


def _int(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise BadParam(name, f"{name} must be a whole number, got {text!r}") from None


def _known(request: Request, allowed: tuple[str, ...]) -> None:
    for name in request.query_params:
        if name not in allowed:
            hint = ", ".join(allowed) or "none"
            raise BadParam(name, f"unknown query parameter {name!r}; this endpoint takes: {hint}")


def answers(*params: str) -> Callable[[Callable[[Request], Any]], Handler]:
    """A handler from a read: query names it takes, its result as JSON, BadParam → 400,
    NotFound → 404; the read runs on a worker thread."""

    def wrap(read: Callable[[Request], Any]) -> Handler:
        @functools.wraps(read)
        async def handler(request: Request) -> Response:
            try:
                _known(request, params)
                result = await asyncio.to_thread(read, request)
                return result if isinstance(result, Response) else JSONResponse(result)
            except BadParam as exc:
                return JSONResponse({"error": str(exc), "param": exc.param}, 400)
            except NotFound as exc:
                return JSONResponse({"error": str(exc)}, 404)

        return handler

    return wrap


def _as_of(request: Request) -> Any:
    return readmodel.parse_date("as_of", request.query_params.get("as_of"))


class TreeCache:
    """The newest serialized "now" trees, by (data version, day, query, thresholds)."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def held(self) -> list[tuple[Any, ...]]:
        """The keys held, oldest first."""
        with self._lock:
            return list(self._entries)

    def get(self, key: tuple[Any, ...], build: Callable[[], bytes]) -> bytes:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        body = build()
        with self._lock:
            self._entries[key] = body
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return body


def tree_cache(app: Any) -> TreeCache:
    """The app's cache of now trees (made on first use)."""
    state = app.state
    if not hasattr(state, "tree_cache"):
        state.tree_cache = TreeCache()
    cache = state.tree_cache
    assert isinstance(cache, TreeCache)  # noqa: S101 - set just above
    return cache


def now_tree(app: Any, period: str | None = None, objective: str | None = None) -> bytes:
    """The serialized now tree of `app`'s store, from the cache while the store is unchanged."""
    ctx = app.state.ctx
    cfg = ctx.settings.signals
    # the minute: a source turns stale with time alone (docs/signals.md, stale_source)
    minute = int(time.time() // 60) if ctx.sources() else None
    key = (ctx.store.data_version(), today(), minute, period, objective, cfg.model_dump_json())

    def build() -> bytes:
        doc = readmodel.tree(
            ctx.store, period=period, objective=objective, cfg=cfg, sources=ctx.sources()
        )
        return bytes(JSONResponse(doc).body)

    return tree_cache(app).get(key, build)


@answers("as_of", "period", "objective")
def tree(request: Request) -> Any:
    ctx = _ctx(request)
    as_of = _as_of(request)
    period = readmodel.parse_period(request.query_params.get("period"))
    objective = request.query_params.get("objective") or None
    if as_of is None:
        body = now_tree(request.app, period, objective)
        return Response(body, media_type="application/json")
    cfg = ctx.settings.signals
    return readmodel.tree(
        ctx.store, as_of=as_of, period=period, objective=objective, cfg=cfg,
        sources=ctx.sources(),
    )  # fmt: skip


@answers("as_of")
def key_result(request: Request) -> Any:
    ctx = _ctx(request)
    kr = request.path_params["id"]
    return readmodel.key_result(
        ctx.store, kr, as_of=_as_of(request), cfg=ctx.settings.signals, sources=ctx.sources()
    )


@answers("as_of")
def tactic(request: Request) -> Any:
    ctx = _ctx(request)
    tid = request.path_params["id"]
    return readmodel.tactic(ctx.store, tid, as_of=_as_of(request), cfg=ctx.settings.signals)


@answers()
def key_result_history(request: Request) -> Any:
    return readmodel.history(_ctx(request).store, "key_result", request.path_params["id"])


@answers()
def tactic_history(request: Request) -> Any:
    return readmodel.history(_ctx(request).store, "tactic", request.path_params["id"])


ITEM_PARAMS = ("as_of", "status", *readmodel.ITEM_FLAGS)


@answers(*ITEM_PARAMS)
def tactic_items(request: Request) -> Any:
    ctx = _ctx(request)
    flags = {name: _flag(request, name) for name in readmodel.ITEM_FLAGS}
    return readmodel.tactic_items(
        ctx.store,
        request.path_params["id"],
        as_of=_as_of(request),
        status=request.query_params.get("status") or None,
        cfg=ctx.settings.signals,
        **flags,
    )


@answers("connector", "failed", "limit")
def runs(request: Request) -> Any:
    return {
        "runs": readmodel.runs(
            _ctx(request).store,
            connector=request.query_params.get("connector") or None,
            failed=_flag(request, "failed"),
            limit=_int(request, "limit", 50),
        )
    }


@answers()
def run(request: Request) -> Any:
    return readmodel.run(_ctx(request).store, request.path_params["id"])


async def openapi(_request: Request) -> Response:
    return JSONResponse(OPENAPI)


routes: list[BaseRoute] = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/tree", tree, methods=["GET"]),
    Route("/key-results/{id}", key_result, methods=["GET"]),
    Route("/key-results/{id}/history", key_result_history, methods=["GET"]),
    Route("/tactics/{id}", tactic, methods=["GET"]),
    Route("/tactics/{id}/history", tactic_history, methods=["GET"]),
    Route("/tactics/{id}/items", tactic_items, methods=["GET"]),
    Route("/runs", runs, methods=["GET"]),
    Route("/runs/{id:int}", run, methods=["GET"]),
]


async def warm_tree(app: Any, every_s: float) -> None:
    """Keep the whole now tree current: every `every_s`, rebuild it if the store changed
    (a failing store is skipped quietly; /readyz reports it)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(now_tree, app)
        except Exception as exc:  # a warmer must never die
            log.debug("web.tree_warm_failed", error=str(exc))


# -- OpenAPI -----------------------------------------------------------------------------------


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


def _path(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string"}}  # fmt: skip


AS_OF = _query(
    "as_of",
    "Compute every signal from the items as of this day (YYYY-MM-DD). Left out: the "
    "dashboard's now: tactics' newest snapshots, rolled up for today.",
    {"type": "string", "format": "date"},
)
BOOL = {"type": "boolean"}
ERRORS = {
    "400": {"$ref": "#/components/responses/BadParam"},
    "404": {"$ref": "#/components/responses/NotFound"},
}


def _get(summary: str, params: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
    ok = {"description": "OK", "content": {"application/json": {"schema": schema}}}
    return {"get": {"summary": summary, "parameters": params, "responses": {"200": ok, **ERRORS}}}


def _obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": sorted(props), "properties": props}


ANY_OBJECT: dict[str, Any] = {"type": "object"}
EXPORT = "#/components/schemas/Export"


def export_schema() -> dict[str, Any]:
    """okrsync/schema/export.schema.json as a component: its own `$defs` references rewritten
    to where it sits in this document (`#/$defs/x` → `#/components/schemas/Export/$defs/x`)."""
    text = resources.files("okrsync").joinpath("schema/export.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text.replace('"#/$defs/', f'"{EXPORT}/$defs/'))
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    return schema


SUBJECT = _obj(
    format={"type": "string"}, as_of={"type": "string", "format": "date"},
    thresholds=ANY_OBJECT, objective=ANY_OBJECT, key_result=ANY_OBJECT,
)  # fmt: skip
ITEM = _obj(
    tactic={"type": ["string", "null"]}, rule={"type": ["string", "null"]},
    connector={"type": "string"}, key={"type": "string"}, title={"type": "string"},
    status={"type": "string"}, assignee={"type": ["string", "null"]},
    created={"type": "string"}, updated={"type": "string"},
    due={"type": ["string", "null"]}, completed_at={"type": ["string", "null"]},
    url={"type": ["string", "null"]},
)  # fmt: skip
RUN = _obj(
    id={"type": "integer"}, connector={"type": "string"}, status={"type": "string"},
    trigger={"enum": ["schedule", "manual", "webhook"]},
    started_at={"type": "string"}, ended_at={"type": ["string", "null"]},
    duration_s={"type": ["number", "null"]}, pages={"type": "integer"},
    requests={"type": "integer"}, retries={"type": "integer"},
    rate_limit_wait_s={"type": "number"}, items_created={"type": "integer"},
    items_updated={"type": "integer"}, items_deleted={"type": "integer"},
    lost_scopes={"type": "array", "items": {"type": "string"}},
    error={"type": ["string", "null"]}, host={"type": ["string", "null"]},
)  # fmt: skip
HISTORY = _obj(
    subject_type={"enum": ["key_result", "tactic"]},
    id={"type": "string"},
    snapshots={"type": "array", "items": _obj(
        as_of={"type": "string", "format": "date"}, computed_at={"type": "string"},
        values=ANY_OBJECT,
    )},
)  # fmt: skip
HISTORY["properties"]["checkins"] = {
    "type": "array",
    "description": "Key results only: the check-ins, oldest reading first.",
    "items": _obj(
        id={"type": "integer"}, value={"type": "number"},
        confidence={"type": ["number", "null"]}, note={"type": ["string", "null"]},
        recorded_at={"type": "string"}, author={"type": ["string", "null"]},
    ),
}  # fmt: skip
ITEMS_DOC = _obj(
    as_of={"type": "string", "format": "date"},
    tactic=_obj(id={"type": "string"}, title={"type": "string"}),
    connector={"type": "null"},
    filters={"type": "array", "items": {"type": "string"}},
    count={"type": "integer"},
    items={"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
)  # fmt: skip
ERROR = _obj(error={"type": "string"})
ERROR["properties"]["param"] = {"type": "string", "description": "The parameter at fault."}
ITEM_FILTER_PARAMS = [
    _query("status", "Only items in this status.", {"enum": list(readmodel.STATUSES)}),
    _query("stale", "Only the items `stale` counts.", BOOL),
    _query("overdue", "Only the items `overdue` counts.", BOOL),
    _query("scope_added", "Only the items `scope_added` counts.", BOOL),
    _query("in_window", "Only the done items throughput counts (its window).", BOOL),
    _query("unestimated", "Only the items `items_unestimated` counts.", BOOL),
]
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "okrsync read API",
        "version": __version__,
        "description": "The OKR tree with outcome beside execution, its history, the items "
        "behind each count and the sync runs. Read-only; see docs/web.md.",
    },
    "paths": {
        "/api/v1/tree": _get(
            "The OKR tree with outcome, execution and flags (an export document).",
            [
                AS_OF,
                _query(
                    "period",
                    "Objectives within a period: 2026, 2026-H2, 2026-Q4, 2026-11.",
                    {"type": "string"},
                ),
                _query("objective", "One objective and those below it.", {"type": "string"}),
            ],
            {"$ref": EXPORT},
        ),
        "/api/v1/key-results/{id}": _get(
            "One key result (the export's node, with its tactics) and its objective.",
            [_path("Key result id."), AS_OF],
            SUBJECT,
        ),
        "/api/v1/tactics/{id}": _get(
            "One tactic (the export's node), its key result and objective.",
            [_path("Tactic id."), AS_OF],
            SUBJECT,
        ),
        "/api/v1/key-results/{id}/history": _get(
            "A key result's signal snapshots over time and its check-ins.",
            [_path("Key result id.")],
            {"$ref": "#/components/schemas/History"},
        ),
        "/api/v1/tactics/{id}/history": _get(
            "A tactic's signal snapshots over time.",
            [_path("Tactic id.")],
            {"$ref": "#/components/schemas/History"},
        ),
        "/api/v1/tactics/{id}/items": _get(
            "The items behind a tactic's counts (filters combine), with tracker URL and rule.",
            [_path("Tactic id."), AS_OF, *ITEM_FILTER_PARAMS],
            ITEMS_DOC,
        ),
        "/api/v1/runs": _get(
            "Recorded sync runs, newest first.",
            [
                _query("connector", "One connector's runs.", {"type": "string"}),
                _query("failed", "Only runs not ended ok.", BOOL),
                _query(
                    "limit",
                    "At most this many (1 to 1000).",
                    {"type": "integer", "minimum": 1, "maximum": readmodel.MAX_RUNS, "default": 50},
                ),
            ],
            _obj(runs={"type": "array", "items": {"$ref": "#/components/schemas/Run"}}),
        ),
        "/api/v1/runs/{id}": _get(
            "One sync run.",
            [_path("Run id.", {"type": "integer"})],
            {"$ref": "#/components/schemas/Run"},
        ),
    },
    "components": {
        "schemas": {
            "Export": export_schema(),
            "Item": ITEM,
            "Run": RUN,
            "History": HISTORY,
            "Error": ERROR,
        },
        "responses": {
            "BadParam": {
                "description": "A bad query value; `param` names it.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "NotFound": {
                "description": "No such id.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    },
}
