"""A tiny HTTP/1.1 server on the event loop for `/healthz`, `/readyz` and `/metrics`.

GET and HEAD only; every answer carries Content-Length and `Connection: close`. Routes are
async callables taking the `Request` (path and the caller's address) and returning (status,
content type, body), so a slow check never blocks the loop. `Request.loopback` tells a route
whether the caller is on this host: only such callers get details (pids, error texts).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog

log = structlog.get_logger("okrsync.endpoint")
Reply = tuple[int, str, bytes]
READ_TIMEOUT_S = 5.0
MAX_HEAD = 16 * 1024
JSON = "application/json"


@dataclass(frozen=True)
class Request:
    """What a route may know of a request: its path and the caller's IP address."""

    path: str
    client: str | None

    @property
    def loopback(self) -> bool:
        """Whether the caller is on this host (127.0.0.0/8, ::1, or ::ffff:127.x)."""
        try:
            addr = ipaddress.ip_address((self.client or "").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            return addr.ipv4_mapped.is_loopback
        return addr.is_loopback


Route = Callable[[Request], Awaitable[Reply]]


def json_reply(status: int, body: Mapping[str, Any]) -> Reply:
    """A JSON answer."""
    return status, JSON, json.dumps(body, sort_keys=True).encode() + b"\n"


class Endpoint:
    """Serve `routes` (path → handler) on host:port; port 0 picks a free one."""

    def __init__(self, host: str, port: int, routes: Mapping[str, Route]) -> None:
        self.host, self.port = host, port
        self.routes = dict(routes)
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen and return the bound port."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, reply = await self._dispatch(head, _client(writer))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            method, reply = "GET", json_reply(400, {"error": "bad request"})
        except Exception as exc:  # a failing check must not kill the server
            log.exception("endpoint.error", error=str(exc))
            method, reply = "GET", json_reply(500, {"error": "internal error"})
        with contextlib.suppress(ConnectionError):
            writer.write(_encode(reply, head_only=method == "HEAD"))
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _dispatch(self, head: bytes, client: str | None) -> tuple[str, Reply]:
        parts = head[:MAX_HEAD].split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "GET", json_reply(400, {"error": "bad request line"})
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return method, json_reply(405, {"error": "only GET and HEAD"})
        route = self.routes.get(target)
        if route is None:
            return method, json_reply(
                404, {"error": f"no route {target}", "routes": [*self.routes]}
            )
        return method, await route(Request(target, client))


def _client(writer: asyncio.StreamWriter) -> str | None:
    """The caller's IP address; None when the transport has none (not a TCP socket)."""
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def _encode(reply: Reply, *, head_only: bool) -> bytes:
    status, ctype, body = reply
    reason = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (b"" if head_only else body)
