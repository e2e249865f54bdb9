"""The HTTP layer: one ThreadingHTTPServer, path prefix per tracker, faults, request log.

HTTP/1.1 with keep-alive; every response carries Content-Length (the "truncate" fault
deliberately lies about it). Paths in the request log and in `path_contains` are the part
after the tracker prefix (e.g. `/rest/api/3/search/jql`).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from okrsync.sandbox import _asana, _github, _jira, metrics
from okrsync.sandbox._core import Env, Request, Response, json_response
from okrsync.sandbox._faults import TRANSPORT_FAULTS, Fault

PREFIXES = (
    ("/jira-dc", "jira_dc"),
    ("/jira", "jira"),
    ("/asana", "asana"),
    ("/github", "github"),
    ("/prometheus", "prometheus"),
    ("/metrics-json", "metrics_json"),
)
PREFIX_OF = {tracker: prefix for prefix, tracker in PREFIXES}


@dataclass(frozen=True, slots=True)
class RequestLog:
    """One served request (status 0 = connection reset by a fault)."""

    tracker: str
    method: str
    path: str
    query: dict[str, str]
    status: int
    started: float
    headers_in: dict[str, str]


@dataclass(slots=True)
class Outcome:
    """A response plus how to send it: `cut` bytes only, `reset` = no response at all."""

    response: Response | None
    cut: int | None = None
    claim_full: bool = True


def _error_body(tracker: str, status: int, message: str) -> Response:
    if tracker in metrics.TRACKERS:
        return metrics.error(tracker, status, message)
    if tracker in ("jira", "jira_dc"):
        return _jira.error(status, message)
    if tracker == "asana":
        return _asana.error(status, message)
    return _github.error(status, message)


class App:
    """Routes a parsed request to its vendor, applying transport faults first."""

    def __init__(self, env: Env, admin: Callable[[Request], Response]) -> None:
        self.env = env
        self.admin = admin
        self.rate = _github.RateCounter()
        self.github = _github.Options()
        self.log: list[RequestLog] = []
        self.log_lock = threading.Lock()

    def vendor(self, req: Request) -> Response:
        if req.tracker in metrics.TRACKERS:
            return metrics.handle(req, self.env)
        if req.tracker in ("jira", "jira_dc"):
            return _jira.handle(req, self.env)
        if req.tracker == "asana":
            return _asana.handle(req, self.env)
        return _github.handle(req, self.env, self.rate, self.github)

    def serve(self, req: Request) -> Outcome:
        fault = self.env.faults.take(req.tracker, req.path, TRANSPORT_FAULTS)
        if fault is None:
            return Outcome(self.vendor(req))
        return self.faulted(req, fault)

    def faulted(self, req: Request, fault: Fault) -> Outcome:
        kind, params = fault.kind, fault.params
        if kind == "slow":
            time.sleep(float(params.get("delay", 1.0)))
            return Outcome(self.vendor(req))
        if kind == "reset":
            return Outcome(None)
        if kind == "429":
            return Outcome(self.rate_limited(req.tracker, params))
        if kind in ("500", "502", "503"):
            return Outcome(_error_body(req.tracker, int(kind), "Sandbox injected server error"))
        if kind in ("403", "404"):
            return Outcome(_error_body(req.tracker, int(kind), "Sandbox injected: no access"))
        if kind == "expire_token":
            return Outcome(_error_body(req.tracker, 401, "Unauthorized (token expired)"))
        resp = self.vendor(req)
        if kind == "invalid_json":
            return Outcome(Response(resp.status, b'{"sandbox": "invalid json', resp.headers))
        short = params.get("mode", "long") == "short"
        return Outcome(resp, cut=max(len(resp.body) // 2, 1), claim_full=not short)

    def rate_limited(self, tracker: str, params: dict[str, Any]) -> Response:
        """`retry_after` seconds (None: no Retry-After header); Jira's X-RateLimit-Reset is
        `reset_after` seconds ahead (default `retry_after`), rounded up to its whole minute."""
        after = params.get("retry_after", 1)
        if tracker == "github":
            return _github.rate_limited(params, self.rate)
        resp = _error_body(tracker, 429, "Rate limit exceeded")
        if after is not None:
            resp.headers.append(("Retry-After", str(int(after))))
        if tracker != "asana":
            at = time.time() + int(params.get("reset_after", after or 1))
            reset = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(-(-at // 60) * 60))
            resp.headers.append(("X-RateLimit-Reset", reset))
        return resp

    def record(self, entry: RequestLog) -> None:
        with self.log_lock:
            self.log.append(entry)


def _tracker_of(path: str) -> tuple[str, str]:
    for prefix, tracker in (*PREFIXES, ("/_sandbox", "_sandbox")):
        if path == prefix or path.startswith(prefix + "/"):
            return tracker, path[len(prefix) :] or "/"
    return "", path


def dispatch(
    app: App, method: str, target: str, headers: dict[str, str], body: bytes, origin: str
) -> tuple[Request, Outcome]:
    """Parse one request (`target` = path and query) and serve it; the socket server and the
    in-process transport (`_transport.py`) both come through here, so they cannot differ."""
    split = urllib.parse.urlsplit(target)
    query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    tracker, rest = _tracker_of(split.path)
    req = Request(
        tracker,
        method,
        rest,
        query,
        headers,
        body,
        origin + PREFIX_OF.get(tracker, ""),
        split.query,
    )
    try:
        if tracker == "_sandbox":
            return req, Outcome(app.admin(req))
        if not tracker:
            return req, Outcome(json_response(404, {"message": f"no tracker at {req.path}"}))
        return req, app.serve(req)
    except Exception as exc:
        return req, Outcome(json_response(500, {"message": f"sandbox error: {exc!r}"}))


class Handler(BaseHTTPRequestHandler):
    """Parses, dispatches and writes; never lets an exception kill the connection silently."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header: the server's clock, `Settings.clock_skew_s` ahead of ours."""
        if timestamp is None:
            timestamp = time.time() + self.server.app.env.settings.clock_skew_s
        return super().date_time_string(timestamp)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        req, outcome = dispatch(
            self.server.app, self.command, self.path, headers, body, self.server.base
        )
        status = self._write(outcome)
        if req.tracker != "_sandbox":
            self.server.app.record(
                RequestLog(req.tracker, req.method, req.path, req.query, status, started, headers)
            )

    def _write(self, outcome: Outcome) -> int:
        resp = outcome.response
        if resp is None:
            self.close_connection = True
            return 0
        body = resp.body if outcome.cut is None else resp.body[: outcome.cut]
        declared = len(resp.body) if outcome.claim_full else len(body)
        self.send_response(resp.status)
        if resp.status != 304:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(declared))
        for name, value in resp.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        if outcome.cut is not None:
            self.close_connection = True
        return resp.status


class SandboxServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its App and its own base URL."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, app: App) -> None:
        super().__init__((host, port), Handler)
        self.app = app
        self.base = f"http://{host}:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout, reset) is normal here; anything else is printed."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


# --- the witness: where off-origin links point ----------------------------------------------

_EMPTY_PAGES = {
    "/jira-dc": b'{"startAt":0,"maxResults":0,"total":0,"issues":[]}',
    "/jira": b'{"issues":[],"isLast":true}',
    "/asana": b'{"data":[],"next_page":null}',
    "/github": b"[]",
}


@dataclass(frozen=True, slots=True)
class Visit:
    """One request that reached the witness (headers lower-cased, as sent)."""

    method: str
    path: str
    headers: dict[str, str]


class _WitnessHandler(BaseHTTPRequestHandler):
    """Records the request, answers an empty page of the tracker its path names."""

    protocol_version = "HTTP/1.1"
    server: WitnessServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.witness.record(Visit(self.command, self.path, headers))
        prefix = next((p for p in _EMPTY_PAGES if self.path.startswith(p + "/")), "")
        body = _EMPTY_PAGES.get(prefix, b"{}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class WitnessServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, witness: Witness) -> None:
        super().__init__((host, 0), _WitnessHandler)
        self.witness = witness


class Witness:
    """A second listener on another port of the same host: hostile faults point links at it,
    and a test checks that nothing (above all no `Authorization` header) ever reached it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._visits: list[Visit] = []
        self._server = WitnessServer(host, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="okrsync-sandbox-witness",
            daemon=True,
        )
        self._thread.start()
        self.origin = f"http://{host}:{self._server.server_address[1]}"

    def record(self, visit: Visit) -> None:
        with self._lock:
            self._visits.append(visit)

    @property
    def visits(self) -> list[Visit]:
        with self._lock:
            return list(self._visits)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def admin_json(req: Request) -> dict[str, Any]:
    if req.method == "GET":
        return dict(req.query)
    value = json.loads(req.body or b"{}")
    if not isinstance(value, dict):
        raise TypeError("admin body must be a JSON object")
    return value
