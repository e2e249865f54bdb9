"""Who may read and who may write: `[web] auth` (docs/web.md, "Access").

    none    reads open, writes refused (403 saying how to enable auth); the server refuses to
            start on any address but loopback (`check_bind`)
    token   every request but the probes and static files needs `Authorization: Bearer T`
            with a token from `tokens_env` / `tokens_file` (`name:token` lines; the name is
            the user a check-in records), compared with hmac.compare_digest
    proxy   every such request needs the `proxy_header` (the signed-in user) set by a reverse
            proxy whose address is in `trusted_proxies`; from anywhere else it is ignored

`AccessMiddleware` puts the user (or None) in `request.state.user`; `require_user` is what a
write asks. `SecurityHeaders` adds the CSP and friends to every answer and `no-store` under
/api/. `ScrubSecrets` masks every registered secret (the connectors' tokens, read when the app
is built, the store password, the web tokens) in every answer but static files: no page or
API answer can carry a tracker token, even one a tracker echoed into a stored error.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from okrsync.errors import ConfigError
from okrsync.redaction import register_secret, scrub

if TYPE_CHECKING:
    from okrsync.config import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# No user needed, any mode; /hooks/ deliveries are authenticated by their HMAC signature.
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/static/", "/hooks/")
MIN_TOKEN = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")
ENABLE_AUTH = (
    'writes need a signed-in user: set [web] auth = "token" (tokens_env or tokens_file with '
    'name:token lines) or auth = "proxy" (proxy_header, trusted_proxies); see docs/web.md'
)
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def is_loopback(client: str | None) -> bool:
    """Whether an address is on this host (127.0.0.0/8, ::1, or ::ffff:127.x)."""
    try:
        addr = ipaddress.ip_address((client or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def is_loopback_host(host: str) -> bool:
    """Whether binding to `host` keeps the server on this machine ("localhost" included)."""
    return host.strip().lower() == "localhost" or is_loopback(host.strip().strip("[]"))


def check_bind(settings: Settings, host: str, option: str) -> None:
    """Refuse (ConfigError, exit 2) to serve on a non-loopback address without auth."""
    if settings.web.auth == "none" and not is_loopback_host(host):
        where = settings.origin("web", "auth")
        raise where.error(
            f'web.auth is "none" ({where}): refusing to serve on {host} ({option}), which '
            'is not loopback; set [web] auth = "token" or "proxy" (docs/web.md), or serve '
            "on 127.0.0.1"
        )


@dataclass(frozen=True)
class Access:
    """The access rule in force: the mode, the tokens by name, the trusted proxies."""

    mode: str = "none"
    tokens: tuple[tuple[str, bytes], ...] = ()
    proxy_header: str = "x-forwarded-user"
    trusted: tuple[Network, ...] = field(default=())

    @classmethod
    def of(cls, settings: Settings) -> Access:
        """The rule of `[web]`; unreadable or malformed tokens are a ConfigError."""
        web = settings.web
        tokens = tuple(_read_tokens(settings)) if web.auth == "token" else ()
        trusted = tuple(ipaddress.ip_network(p, strict=False) for p in web.trusted_proxies)
        return cls(web.auth, tokens, web.proxy_header.lower(), trusted)

    def user(self, headers: Headers, client: str | None) -> str | None:
        """The authenticated user of a request, or None."""
        if self.mode == "token":
            return self._token_user(headers.get("authorization", ""))
        if self.mode == "proxy" and self._trusted(client):
            name = headers.get(self.proxy_header, "").strip()
            return name if _NAME.fullmatch(name) else None
        return None

    def _token_user(self, header: str) -> str | None:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        raw = given.strip().encode()
        found = None
        for name, token in self.tokens:  # every entry compared: the time says nothing
            if hmac.compare_digest(raw, token) and found is None:
                found = name
        return found

    def _trusted(self, client: str | None) -> bool:
        try:
            addr = ipaddress.ip_address((client or "").split("%", 1)[0])
        except ValueError:
            return False
        return any(addr in net for net in self.trusted)


def _read_tokens(settings: Settings) -> Iterable[tuple[str, bytes]]:
    web = settings.web
    if web.tokens_env:
        text = os.environ.get(web.tokens_env, "")
        where = f"environment variable {web.tokens_env} (web.tokens_env)"
        if not text.strip():
            raise settings.origin("web", "tokens_env").error(
                f"{where} is not set or empty; export it as name:token[,name:token]"
            )
        yield from _parse_tokens(text.replace(",", "\n"), where)
    if web.tokens_file:
        path = settings.base_dir / Path(web.tokens_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise settings.origin("web", "tokens_file").error(
                f"cannot read web.tokens_file {path}: {why}; check the path (relative to the "
                "config file's folder) and that okrsync's user can read it"
            ) from None
        yield from _parse_tokens(text, f"{path}")


def _parse_tokens(text: str, where: str) -> Iterable[tuple[str, bytes]]:
    """`name:token` lines (blank lines and # comments skipped); never quotes a token."""
    found = 0
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = (part.strip() for part in line.partition(":"))
        if not sep or not _NAME.fullmatch(name) or len(token) < MIN_TOKEN or " " in token:
            raise ConfigError(
                f"{where}, line {n}: expected name:token (a name of letters, digits, . _ @ + -; "
                f"a token of at least {MIN_TOKEN} characters without spaces)"
            )
        register_secret(token)
        found += 1
        yield name, token.encode()
    if not found:
        raise ConfigError(f"{where} holds no name:token line; add one per user")


def _open(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN_PATHS)


class AccessMiddleware:
    """Sets `request.state.user`; with token or proxy auth, refuses (401) a request without
    a user unless it is a probe or a static file."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        user = self.access.user(Headers(scope=scope), client[0] if client else None)
        scope.setdefault("state", {})["user"] = user
        if user is None and self.access.mode != "none" and not _open(scope["path"]):
            await _unauthorized(self.access.mode, scope, send)
            return
        await self.app(scope, receive, send)


async def _unauthorized(mode: str, scope: Scope, send: Send) -> None:
    how = (
        "send Authorization: Bearer <token> (a token of [web] tokens_env / tokens_file)"
        if mode == "token"
        else "sign in through the reverse proxy (this request did not come from a trusted one)"
    )
    body = json.dumps({"error": f"authentication required: {how}"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if mode == "token":
        headers.append((b"www-authenticate", b'Bearer realm="okrsync"'))
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def require_user(request: Request) -> str:
    """The signed-in user a write is recorded under; 403 (auth = none: how to enable it) or
    401 (no user) otherwise."""
    user = getattr(request.state, "user", None)
    if isinstance(user, str) and user:
        return user
    mode = getattr(request.app.state, "access", Access()).mode
    if mode == "none":
        raise HTTPException(403, ENABLE_AUTH)
    raise HTTPException(401, "authentication required")


class SecurityHeaders:
    """CSP (no inline script), X-Frame-Options, nosniff and Referrer-Policy on every answer;
    `Cache-Control: no-store` under /api/."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if api:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


def register_connector_secrets(settings: Settings) -> None:
    """Read every connector's credentials that can be read, so they are registered for
    redaction (an unreadable one cannot be in an answer through this process's reads)."""
    for cc in settings.connectors:
        for _key, read in cc.credentials():
            try:
                read()
            except ConfigError:
                continue


class ScrubSecrets:
    """Every registered secret masked in every answer's body (static files excepted)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        start: list[Message] = []
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.append(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = _scrubbed(b"".join(chunks))
            headers = MutableHeaders(scope=start[0])
            if "content-length" in headers:
                headers["content-length"] = str(len(body))
            await send(start[0])
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffered)


def _scrubbed(body: bytes) -> bytes:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body
    clean = scrub(text)
    return body if clean is text else clean.encode("utf-8")
