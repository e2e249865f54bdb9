"""Serving the app with uvicorn inside the caller's asyncio loop.

`WebServer` binds the socket itself (so port 0 gives the bound port and a port in use is a
plain OSError the caller turns into a config error), runs `uvicorn.Server` as a task and
stops it. uvicorn installs no signal handlers here: the daemon handles SIGTERM/SIGINT on its
loop, and `run` (for `okrsync web` and the demo) does the same. uvicorn's own access log is
off (`okrsync.web.app.RequestLog` logs each request through structlog) and its warnings and
errors are routed into the structlog chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import structlog
import uvicorn
from starlette.types import ASGIApp

log = structlog.get_logger("okrsync.web")
STOP_TIMEOUT_S = 5


class _ToStructlog(logging.Handler):
    """uvicorn's warnings and errors (with their traceback) as structlog events."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else "warning"
        getattr(log, level)(
            "web.server", message=record.getMessage(), logger=record.name, exc_info=record.exc_info
        )


def route_uvicorn_logs() -> None:
    """uvicorn's loggers into structlog, warnings and up only (its start banner is ours)."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [_ToStructlog(level=logging.WARNING)]
        logger.setLevel(logging.WARNING)
        logger.propagate = False


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to its host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port (IPv4 or IPv6); OSError when it cannot."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    return sock


class WebServer:
    """One uvicorn server for `app` on host:port (0: any free port)."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.host, self.port = host, port
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            lifespan="on",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=STOP_TIMEOUT_S,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[Any] | None = None

    async def start(self) -> int:
        """Bind, serve in a task once uvicorn has started, and return the bound port."""
        route_uvicorn_logs()
        sock = bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the web server stopped during start-up")
            await asyncio.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        """Stop accepting, let answers in flight finish (up to STOP_TIMEOUT_S), close."""
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S + 1)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


async def serve(
    app: ASGIApp, host: str, port: int, *, ready: Callable[[int], None] | None = None
) -> None:
    """Serve `app` until cancelled; `ready(port)` once it accepts connections."""
    server = WebServer(app, host, port)
    await server.start()
    try:
        if ready is not None:
            ready(server.port)
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(server.stop())


def run(app: ASGIApp, host: str, port: int, *, ready: Callable[[int], None] | None = None) -> None:
    """Serve `app` on host:port until SIGINT or SIGTERM (then stop cleanly and return)."""
    asyncio.run(_until_signal(app, host, port, ready))


async def _until_signal(
    app: ASGIApp, host: str, port: int, ready: Callable[[int], None] | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = WebServer(app, host, port)
    await server.start()
    try:
        if ready is not None:
            ready(server.port)
        await stop.wait()
        log.info("web.stopping")
    finally:
        await server.stop()
