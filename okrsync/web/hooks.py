"""Webhooks in: `POST /hooks/<type>` and `/hooks/<type>/<connector>` (docs/webhooks.md).

    resolve    the enabled connectors of that type (or the one named) with webhooks on
    read       the body, streamed and refused (413) past `[service] webhook_max_body_kb`
    handshake  Asana's `X-Hook-Secret`: stored under the URL's `resource` (the project gid
               the webhook watches) and echoed, only while one is expected for it
    verify     the HMAC-SHA256 signature against each connector's secret (okrsync.hooks.verify):
               the configured one, else (Asana) the handshake's for `resource`, or without
               `resource` each the connector holds
    meaning    okrsync.hooks.events: ping, ignored, or a sync hint with its scope and deletions
    hand over  each verifying connector whose scope covers the delivery, once per delivery id
               (a replay within a day: 200 duplicate), to the daemon's `HookSink`

The routes need no user (the signature is their authentication: okrsync.web.access lets
/hooks/ through) and are answered by the daemon only: under `okrsync web` (no sink) every
one is 404. Every answer logs one line, `webhook.received` or `webhook.refused` with its
reason, and counts in `okrsync_webhook_deliveries_total`: never the body, never a secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from okrsync.errors import ConfigError, OkrsyncError
from okrsync.hooks import KINDS, HookSink
from okrsync.hooks.events import BadPayload, Delivery, parse
from okrsync.hooks.verify import BAD, MISSING, check, signature_of

if TYPE_CHECKING:
    from okrsync.config import ConnectorConfig

log = structlog.get_logger("okrsync.web.hooks")
NO_CONNECTOR = "-"


@dataclass
class Refused(Exception):
    """A delivery turned away: the status, the reason (log and metric) and the message."""

    status: int
    reason: str
    message: str
    connector: str = NO_CONNECTOR


@dataclass
class _Seen:
    """What one delivery's log line and metric say about it."""

    kind: str
    connector: str = NO_CONNECTOR
    event: str | None = None
    delivery: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def receive(request: Request) -> Response:
    """One delivery, answered as docs/webhooks.md says; never a 500 for bad input."""
    seen = _Seen(str(request.path_params["kind"]))
    sink: HookSink | None = getattr(request.app.state.ctx, "hooks", None)
    try:
        outcome, answer = await _stored(_handle(request, sink, seen))
    except Refused as refused:
        seen.connector = refused.connector if refused.connector != NO_CONNECTOR else seen.connector
        _log("webhook.refused", seen, reason=refused.reason, status=refused.status)
        if sink is not None:
            sink.count(seen.connector, refused.reason)
        return JSONResponse({"error": refused.message}, refused.status)
    _log("webhook.received", seen, outcome=outcome)
    if sink is not None:
        for name in seen.connector.split(","):  # a delivery several connectors took
            sink.count(name, outcome)
    return answer


async def _stored(handled: Awaitable[tuple[str, Response]]) -> tuple[str, Response]:
    """`handled`, with a store that cannot be reached answered 503 (the tracker retries or
    the next scheduled run catches up), never a 500."""
    try:
        return await handled
    except OkrsyncError as exc:
        log.error("webhook.store_failed", error=str(exc))  # noqa: TRY400 - the message is the story
        raise Refused(503, "store_error", "the store cannot be reached; retry later") from None


def _log(event: str, seen: _Seen, **more: object) -> None:
    fields = {"kind": seen.kind, "connector": seen.connector, **seen.extra, **more}
    if seen.event:
        fields["hook_event"] = seen.event
    if seen.delivery:
        fields["delivery"] = seen.delivery
    (log.warning if event == "webhook.refused" else log.info)(event, **fields)


async def _handle(request: Request, sink: HookSink | None, seen: _Seen) -> tuple[str, Response]:
    name = request.path_params.get("name")
    configs = _candidates(sink, seen.kind, name)
    assert sink is not None  # noqa: S101 - _candidates refuses without one
    if name:
        seen.connector = name
    limit = request.app.state.ctx.settings.service.webhook_max_body_kb * 1024
    body = await _read(request, limit)
    resource = _resource(seen, request)
    handshake = request.headers.get("x-hook-secret")
    if seen.kind == "asana" and handshake is not None:
        return await _handshake(sink, configs, handshake, resource or "", seen)
    verified = await _verified(sink, configs, request, body, resource)
    delivery = _meaning(seen.kind, request, body, resource)
    seen.event, seen.delivery = delivery.event, delivery.delivery_id
    seen.connector = ",".join(c.name for c in verified)
    if delivery.action != "sync":
        status = "pong" if delivery.action == "ping" else "ignored"
        return status, JSONResponse({"status": status})
    return await _hand_over(sink, verified, delivery, seen)


def _resource(seen: _Seen, request: Request) -> str | None:
    """Asana: the `resource` query parameter `hooks register` puts in each webhook's URL (the
    project gid it watches); None when absent, and for the other trackers."""
    resource = request.query_params.get("resource") if seen.kind == "asana" else None
    if resource is not None:
        seen.extra["resource"] = resource
    return resource


def _candidates(sink: HookSink | None, kind: str, name: str | None) -> list[ConnectorConfig]:
    if kind not in KINDS:
        routes = ", ".join(f"/hooks/{k}" for k in KINDS)
        raise Refused(404, "unknown_type", f"no webhook route /hooks/{kind}: use {routes}")
    if sink is None:
        raise Refused(404, "webhooks_off", "webhooks are received by the daemon (okrsync run)")
    configs = [c for c in sink.connectors() if c.type == kind and name in (None, c.name)]
    if not configs:
        what = (
            f"no enabled {kind} connector named {name!r}"
            if name
            else f"no enabled {kind} connector"
        )
        raise Refused(404, "unknown_connector", what, name or NO_CONNECTOR)
    return configs


async def _read(request: Request, limit: int) -> bytes:
    """The body, read no further than `limit` bytes (a larger one: 413)."""
    too_large = Refused(
        413, "too_large", f"the body is over {limit // 1024} KiB ([service] webhook_max_body_kb)"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise Refused(400, "disconnected", "the client went away mid-body") from None
    return b"".join(chunks)


async def _handshake(
    sink: HookSink, configs: list[ConnectorConfig], secret: str, resource: str, seen: _Seen
) -> tuple[str, Response]:
    """Asana's `X-Hook-Secret`: stored under `resource` and echoed, for the one connector
    expecting a handshake for it."""
    waiting = [c for c in configs if await asyncio.to_thread(sink.handshake_open, c.name, resource)]
    if len(waiting) > 1:
        names = ", ".join(f"/hooks/asana/{c.name}" for c in waiting)
        raise Refused(
            409, "handshake_ambiguous", f"several connectors wait for a handshake: use {names}"
        )
    what = f"for resource {resource}" if resource else "without ?resource= in the URL"
    unexpected = Refused(
        401,
        "handshake_unexpected",
        f"no Asana handshake is expected {what}: `okrsync hooks register` opens a window "
        "for each project's webhook",
        seen.connector,
    )
    if not waiting or not secret.strip():
        raise unexpected
    cc = waiting[0]
    seen.connector = cc.name
    if not await asyncio.to_thread(sink.accept_handshake, cc.name, resource, secret.strip()):
        raise unexpected
    answer = JSONResponse({"status": "handshake", "connector": cc.name})
    answer.headers["X-Hook-Secret"] = secret.strip()
    return "handshake", answer


async def _verified(
    sink: HookSink,
    configs: list[ConnectorConfig],
    request: Request,
    body: bytes,
    resource: str | None,
) -> list[ConnectorConfig]:
    """The connectors with a secret that signs `body` (401 when none does, 404 when none has
    one)."""
    kind = configs[0].type
    keyed = [(c, s) for c in configs if (s := await asyncio.to_thread(_secrets, sink, c, resource))]
    if not keyed:
        one = configs[0].name if len(configs) == 1 else NO_CONNECTOR
        raise Refused(404, "webhooks_off", _off_message(kind, resource), one)
    signature = signature_of(kind, request.headers)
    refusals = [(c, _signs(kind, secrets, body, signature)) for c, secrets in keyed]
    verified = [c for c, refused in refusals if refused is None]
    if not verified:
        reason = MISSING if any(refused == MISSING for _, refused in refusals) else BAD
        one = keyed[0][0].name if len(keyed) == 1 else NO_CONNECTOR
        raise Refused(401, reason, f"the {kind} webhook signature is missing or wrong", one)
    return verified


def _signs(kind: str, secrets: list[str], body: bytes, signature: str | None) -> str | None:
    """None when `signature` signs `body` with one of `secrets` (each compared in constant
    time, and every one compared), else why not: MISSING if a check found no signature,
    else BAD."""
    reasons = [check(kind, secret, body, signature) for secret in secrets]
    if None in reasons:
        return None
    return MISSING if MISSING in reasons else BAD


def _off_message(kind: str, resource: str | None) -> str:
    if resource is not None:
        return (
            f"no webhook secret for {kind} resource {resource} here: `okrsync hooks register` "
            "creates the project's webhook and its handshake stores one"
        )
    return f"webhooks are off for {kind} connectors here"


def _secrets(sink: HookSink, cc: ConnectorConfig, resource: str | None) -> list[str]:
    """The connector's configured webhook secret, else (Asana) the handshake's for
    `resource`, or each the connector holds when the delivery names none."""
    try:
        configured = cc.webhook_secret()
    except ConfigError as exc:
        log.error("webhook.secret_unreadable", connector=cc.name, error=str(exc))  # noqa: TRY400 - config problem: the message is the story
        return []
    if configured or cc.type != "asana":
        return [configured] if configured else []
    stored = sink.stored_secrets(cc.name)
    if resource is None:
        return list(stored.values())
    return [stored[resource]] if resource in stored else []


def _meaning(kind: str, request: Request, body: bytes, resource: str | None) -> Delivery:
    """The delivery's meaning; one that names no scope is about its `resource` (Asana's
    project), if the URL gives one."""
    try:
        delivery = parse(kind, request.headers, body)
    except BadPayload as exc:
        raise Refused(400, "bad_payload", f"not a {kind} webhook body: {exc}") from None
    if delivery.scope is None and resource is not None:
        return replace(delivery, scope=resource)
    return delivery


async def _hand_over(
    sink: HookSink, verified: list[ConnectorConfig], delivery: Delivery, seen: _Seen
) -> tuple[str, Response]:
    covered = [c for c in verified if _covers(c, delivery.scope)]
    if not covered:
        one = verified[0].name if len(verified) == 1 else NO_CONNECTOR
        raise Refused(
            404, "scope_not_covered", f"no connector's scope covers {delivery.scope}", one
        )
    seen.connector = ",".join(c.name for c in covered)
    fresh = [
        c
        for c in covered
        if await asyncio.to_thread(sink.first_delivery, c.name, delivery.delivery_id)
    ]
    if not fresh:
        return "duplicate", JSONResponse({"status": "duplicate"})
    for cc in fresh:
        sink.hint(cc.name, delivery.deleted)
    seen.extra["deleted"] = len(delivery.deleted)
    names = [c.name for c in fresh]
    return "accepted", JSONResponse({"status": "accepted", "connectors": names}, 202)


def _covers(cc: ConnectorConfig, scope: str | None) -> bool:
    """Whether `cc` syncs `scope` (None: the delivery names none; names compare ignoring case)."""
    return scope is None or scope.casefold() in {s.casefold() for s in cc.scope}


routes = [
    Route("/hooks/{kind}", receive, methods=["POST"]),
    Route("/hooks/{kind}/{name}", receive, methods=["POST"]),
]
