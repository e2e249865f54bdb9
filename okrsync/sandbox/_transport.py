"""The sandbox in process: an `httpx` transport that serves requests from the same `App` as the
socket server, with no socket. Unit and contract tests drive real connectors through it:

    sb = Sandbox(seed=3, sizes={"github": 60})
    async with httpx.AsyncClient(transport=sb.transport()) as client: ...

Requests go to `sb.base_url(tracker)`, which without a started server is the never-listening
loopback origin `IN_PROCESS_ORIGIN`. Faults behave as on the wire: `reset` raises
`httpx.ReadError`, a `truncate` that claims the full length raises `httpx.RemoteProtocolError`
(what httpx raises for a short body), `mode=short` returns the cut body with its true length.
"""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx

from okrsync.sandbox._server import App, Outcome, RequestLog, dispatch

# Port 9 (discard) on loopback: nothing listens there, so a request that escaped the transport
# would fail at once instead of reaching anything.
IN_PROCESS_ORIGIN = "http://127.0.0.1:9"


def transport(app: App) -> httpx.MockTransport:
    """An `httpx.MockTransport` over `app` (works for sync and async clients)."""

    def handle(request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        target = request.url.raw_path.decode("ascii")
        headers = {k.lower(): v for k, v in request.headers.items()}
        req, outcome = dispatch(app, request.method, target, headers, request.read(), origin)
        status = 0 if outcome.response is None else outcome.response.status
        if req.tracker != "_sandbox":
            app.record(
                RequestLog(req.tracker, req.method, req.path, req.query, status, started, headers)
            )
        return _response(outcome, request, app.env.settings.clock_skew_s)

    return httpx.MockTransport(handle)


def _response(outcome: Outcome, request: httpx.Request, skew_s: float = 0.0) -> httpx.Response:
    resp = outcome.response
    if resp is None:
        raise httpx.ReadError("sandbox: connection reset by peer", request=request)
    if outcome.cut is not None and outcome.claim_full:
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            f"(received {outcome.cut} bytes, expected {len(resp.body)})",
            request=request,
        )
    body = resp.body if outcome.cut is None else resp.body[: outcome.cut]
    # Like the socket server (BaseHTTPRequestHandler.send_response), every answer has a Date.
    headers = [("Date", formatdate(time.time() + skew_s, usegmt=True)), *resp.headers]
    if resp.status != 304:
        headers.append(("Content-Type", resp.content_type))
    return httpx.Response(resp.status, headers=headers, content=body, request=request)
