"""The ASGI app: probes, the read API, static files and the dashboard pages.

    /healthz /readyz /metrics   the daemon's probes (a loopback caller also gets details)
    /api/v1/...                 the read API (okrsync.web.api), OpenAPI at /api/v1/openapi.json
    /hooks/<type>[/<name>]      webhooks in (okrsync.web.hooks; the daemon's `ctx.hooks`)
    /static/...                 the package's own assets (okrsync/web/static)
    everything else             the dashboard pages (okrsync.web.pages)

`create_app(ctx)` builds it for the daemon (`ctx.service` set: probes read its state) or for
`okrsync web` (no service: /readyz checks the store, /metrics is 404). The `WebContext` is
`request.app.state.ctx`. Middleware, outermost first: security headers, secrets scrubbed
from bodies, access (sets `request.state.user`; see okrsync.web.access), request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from okrsync.web import api, hooks, pages
from okrsync.web.access import (
    Access,
    AccessMiddleware,
    ScrubSecrets,
    SecurityHeaders,
    is_loopback,
    register_connector_secrets,
)

if TYPE_CHECKING:
    from okrsync.config import Settings
    from okrsync.hooks import HookSink
    from okrsync.okrfile import MetricSource
    from okrsync.service import Service
    from okrsync.store import Store

log = structlog.get_logger("okrsync.web")
PROBES = ("/healthz", "/readyz", "/metrics")
WARM_EVERY_S = 2.0


def _default_static() -> Path:
    return Path(str(resources.files("okrsync.web") / "static"))


@dataclass
class WebContext:
    """What every route reads: settings, the opened store, the daemon (None under
    `okrsync web`) and the folder of static assets."""

    settings: Settings
    store: Store
    service: Service | None = None
    static_dir: Path = field(default_factory=_default_static)
    hooks: HookSink | None = None  # the daemon's webhook receiver (docs/webhooks.md)
    _sources: dict[str, MetricSource] | None = field(default=None, init=False, repr=False)

    def sources(self) -> dict[str, MetricSource]:
        """Key results' sources (docs/sources.md): the daemon's loaded mapping, else the
        mapping files read once (none when they do not load: `okrsync mappings check`)."""
        from okrsync.report import tree_sources

        if self.service is not None:
            tree = self.service.mapping.tree
            return tree_sources(lambda: tree)
        if self._sources is None:
            from okrsync.okrfile import load_tree

            self._sources = tree_sources(lambda: load_tree(self.settings.mapping_paths()))
        return self._sources


def create_app(ctx: WebContext) -> Starlette:
    """The app over `ctx`; `[web] auth` is read now (a token problem: ConfigError)."""
    access = Access.of(ctx.settings)
    register_connector_secrets(ctx.settings)
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Mount("/api/v1", routes=api.routes),
        *hooks.routes,
        Mount("/static", StaticFiles(packages=[("okrsync.web", "static")]), name="static"),
        *pages.routes,
    ]
    app = Starlette(
        routes=routes,
        lifespan=_lifespan,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(ScrubSecrets),
            Middleware(AccessMiddleware, access=access),
            Middleware(RequestLog),
        ],
        exception_handlers={HTTPException: http_error},  # type: ignore[dict-item]
    )
    app.state.ctx = ctx
    app.state.access = access
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    """While served: keep the now tree warm (okrsync.web.api.warm_tree)."""
    warmer = asyncio.create_task(api.warm_tree(app, WARM_EVERY_S))
    try:
        yield
    finally:
        warmer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await warmer


def context(request: Request) -> WebContext:
    """The `WebContext` of the app serving `request`."""
    ctx = request.app.state.ctx
    assert isinstance(ctx, WebContext)  # noqa: S101 - set by create_app
    return ctx


async def http_error(request: Request, exc: HTTPException) -> Response:
    """Errors as JSON `{"error": ...}` (the API and the probes; pages may render their own)."""
    body = {"error": exc.detail}
    if exc.status_code == 404 and request.url.path not in PROBES:
        body["error"] = f"no route {request.url.path}" if exc.detail == "Not Found" else exc.detail
    return JSONResponse(body, exc.status_code, headers=exc.headers)


def _loopback(request: Request) -> bool:
    return is_loopback(request.client.host if request.client else None)


# -- probes ------------------------------------------------------------------------------------
# A remote caller learns only alive/ready and the stable codes of service.NOT_READY; a caller on
# loopback also gets the pid and each reason's detail (which may quote a tracker's error).


async def healthz(request: Request) -> Response:
    body: dict[str, Any] = {"status": "alive"}
    if _loopback(request):
        body["pid"] = os.getpid()
    return JSONResponse(body)


async def readyz(request: Request) -> Response:
    ctx = context(request)
    if ctx.service is not None:
        reasons = await asyncio.to_thread(ctx.service.not_ready_reasons)
    else:
        ok = await asyncio.to_thread(ctx.store.ping)
        reasons = [] if ok else [("store_unreachable", "store unreachable")]
    body: dict[str, Any] = {
        "ready": not reasons,
        "codes": list(dict.fromkeys(code for code, _ in reasons)),
    }
    if _loopback(request):
        body["reasons"] = [detail for _, detail in reasons]
        if ctx.service is not None:
            body["mapping_loaded_at"] = ctx.service.mapping.loaded_at.isoformat()
    return JSONResponse(body, 503 if reasons else 200)


async def metrics(request: Request) -> Response:
    service = context(request).service
    if service is None:
        raise HTTPException(404, "no /metrics: `okrsync web` runs no syncs (the daemon has them)")
    from okrsync.metrics import CONTENT_TYPE

    return Response(service.metrics.render(), headers={"content-type": CONTENT_TYPE})


# -- request log ---------------------------------------------------------------------------------


class RequestLog:
    """One `web.request` event per answer (method, path, status, ms, user): probes and static
    files at debug level, the rest at info. Query strings are left out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def seen(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, seen)
        finally:
            path = scope["path"]
            quiet = path in PROBES or path.startswith("/static/")
            emit = log.debug if quiet else log.info
            emit(
                "web.request",
                method=scope["method"],
                path=path,
                status=status[0],
                ms=round((time.perf_counter() - started) * 1000, 1),
                user=scope.get("state", {}).get("user"),
            )
