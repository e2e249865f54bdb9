"""The shared HTTP layer: pacing, the one retry policy, status → error, redaction, counting.

Connectors never talk to `httpx` directly; they call `Http.get_json` / `Http.request`, so every
tracker call is paced by a limiter per credential, retried only for `TransientError`, never
before the server's `Retry-After` / reset time, with positive jitter and a cap on attempts.

Every call is also bounded: its URL must be on the configured origin (base_url's scheme, host
and port; checked before anything is sent, so credentials never leave for another host, and
redirects are never followed), its body is read as a stream and refused past
`max_response_bytes`, and a run makes at most `max_requests` calls.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from okrsync.errors import (
    AuthError,
    ConnectorError,
    NotFound,
    OffOriginError,
    PayloadError,
    RunLimitExceeded,
    TransientError,
)
from okrsync.redaction import redact_url, scrub

log = structlog.get_logger("okrsync.http")
Sleep = Callable[[float], Awaitable[None]]
# How a response body becomes Python values: `orjson.loads` unless a connector hands its own
# (GitHub's decodes only the fields it reads: `connectors/github/shapes.py`). It raises
# ValueError on a body that is not JSON, which is retried as a cut or garbled transfer.
Decode = Callable[[bytes], Any]
# A look at a 2xx answer and its parsed body before it is returned: raising TransientError
# retries it like a 429 (GitHub's GraphQL says "RATE_LIMITED" in a 200's body).
Check = Callable[[httpx.Response, Any], None]

# The largest response body read (`max_response_mb` in a connector section): a page of 1,000
# Jira DC issues is a few MB.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 2**20


@dataclass
class HttpStats:
    """What one run cost; read by the orchestrator into the sync-run record and metrics."""

    requests: int = 0
    retries: int = 0
    rate_limit_wait_s: float = 0.0
    not_modified: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_s: float = 0.5
    max_backoff_s: float = 60.0
    jitter_s: float = 0.25
    max_wait_s: float = 900.0

    def wait_s(self, attempt: int, server: float | None) -> float:
        """The wait before retry `attempt` (1 = the first): the server's stated wait or the
        exponential backoff, whichever is longer, capped; plus positive jitter only, so
        never earlier than the server asked."""
        backoff: float = min(self.max_backoff_s, self.base_s * 2 ** (attempt - 1))
        base = min(max(server or 0.0, backoff), self.max_wait_s)
        return base + random.uniform(0, self.jitter_s)


class Http:
    """An `httpx.AsyncClient` with the okrsync policies; one per connector run."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        connector: str,
        limiter: asyncio.Semaphore | None = None,
        policy: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
        sleep: Sleep = asyncio.sleep,
        timeout: float | None = None,
        origin: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_requests: int | None = None,
    ) -> None:
        """`origin` is the connector's base_url: every URL must have its scheme, host and port
        (None: not checked, for tests that build an `Http` by hand)."""
        self.client = client
        self.connector = connector
        self.limiter = limiter or asyncio.Semaphore(1)
        self.policy = policy or RetryPolicy()
        self.headers = headers or {}
        self.auth = auth
        self.sleep = sleep
        self.timeout: float | httpx.Timeout | httpx._client.UseClientDefault = (
            httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        )
        self.stats = HttpStats()
        self.origin = origin.rstrip("/") if origin is not None else None
        self._origin_key = _origin_key(httpx.URL(origin)) if origin is not None else None
        self.max_response_bytes = max_response_bytes
        self.max_requests = max_requests
        self.calls = 0  # calls made, not counting retries

    async def get_json(
        self,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        accept: Iterable[int] = (),
        decode: Decode = orjson.loads,
    ) -> tuple[httpx.Response, Any]:
        """GET and parse JSON (with `decode`); statuses in `accept` are returned, not raised
        (body None)."""
        return await self.request(
            "GET", url, params=params, headers=headers, accept=accept, decode=decode
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        accept: Iterable[int] = (),
        decode: Decode = orjson.loads,
        check: Check | None = None,
    ) -> tuple[httpx.Response, Any]:
        """Send with retries; returns the response and its parsed JSON body (None if empty).
        `check` sees each 2xx answer first; its TransientError is retried with the rest."""
        accepted = frozenset(accept)
        url = self.check_origin(url)
        self._count_call(url)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(TransientError),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(
                        method, url, params, headers, json_body, accepted, decode, check
                    )
        except TransientError as exc:
            raise gave_up(exc, retrying.statistics.get("attempt_number", 1)) from None
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _once(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        json_body: Any,
        accepted: frozenset[int],
        decode: Decode,
        check: Check | None,
    ) -> tuple[httpx.Response, Any]:
        safe = redact_url(url)
        async with self.limiter:
            self.stats.requests += 1
            try:
                req = self.client.build_request(
                    method,
                    url,
                    params=params,
                    headers={**self.headers, **(headers or {})},
                    json=json_body,
                    timeout=self.timeout,
                )
                resp = await self.client.send(
                    req,
                    auth=self.auth if self.auth is not None else httpx.USE_CLIENT_DEFAULT,
                    follow_redirects=False,  # a redirect is answered, never followed
                    stream=True,
                )
                try:
                    await self._read(resp, safe)
                finally:
                    await resp.aclose()
                    _unbind(resp)
            except httpx.TimeoutException as exc:
                raise TransientError(
                    f"timeout ({type(exc).__name__})", connector=self.connector, url=safe
                ) from None
            except httpx.TransportError as exc:
                raise TransientError(
                    f"network error ({transport_detail(exc)})", connector=self.connector, url=safe
                ) from None
        status = resp.status_code
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        if status == 304:
            self.stats.not_modified += 1
        if status == 304:
            return resp, None
        if status in accepted:
            # An expected non-2xx (Asana's 412 with a new sync token, say) carries a body the
            # caller needs: a cut or garbled one is a transient fault like any other.
            if resp.content and "json" in resp.headers.get("content-type", ""):
                return resp, self._parse(resp, safe, decode)
            return resp, None
        if status >= 300:
            raise translate(resp, self.connector)
        body = self._parse(resp, safe, decode)
        if check is not None:
            check(resp, body)
        return resp, body

    def check_origin(self, url: str) -> str:
        """`url` made absolute on the configured origin; OffOriginError when it points
        elsewhere. Every call checks its URL; a connector also checks a URL it takes from a
        response before storing it in a cursor, so a refused link is never committed."""
        if self._origin_key is None or self.origin is None:
            return url
        target = httpx.URL(url)
        if target.is_relative_url:
            if self.client.base_url.host:  # httpx resolves it against the client's base
                target = self.client.base_url
            else:
                return f"{self.origin}/{url.lstrip('/')}"
        if _origin_key(target) != self._origin_key:
            raise OffOriginError(
                f"the tracker pointed at {redact_url(str(target))}, which is not the configured "
                f"base_url {redact_url(self.origin)}; refusing to send credentials there",
                connector=self.connector,
                url=redact_url(str(target)),
            )
        return url

    def _count_call(self, url: str) -> None:
        self.calls += 1
        if self.max_requests is not None and self.calls > self.max_requests:
            raise RunLimitExceeded(
                f"run stopped: more than {self.max_requests} requests in one run (twice its "
                "page cap; max_pages in the connector section sets it); the pages stored so "
                "far are kept and the next run resumes from them",
                connector=self.connector,
                url=redact_url(url),
            )

    async def _read(self, resp: httpx.Response, safe_url: str) -> None:
        """Read the (decoded) body into `resp.content`, refusing more than the cap."""
        cap = self.max_response_bytes
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise self._too_large(safe_url)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise self._too_large(safe_url)
            chunks.append(chunk)
        # What `Response.aread()` does, with the cap: later `resp.content` reads this.
        resp._content = b"".join(chunks)

    def _too_large(self, safe_url: str) -> PayloadError:
        limit = self.max_response_bytes / 2**20
        return PayloadError(
            f"response larger than {limit:g} MB from {safe_url}; refused (raise "
            f"max_response_mb in the connector section if the tracker really sends pages "
            "this large)",
            connector=self.connector,
            url=safe_url,
        )

    def _parse(self, resp: httpx.Response, safe_url: str, decode: Decode) -> Any:
        if not resp.content:
            return None
        try:
            return decode(resp.content)  # orjson: ~3x the stdlib on 100-item pages
        except ValueError:
            # A cut or garbled body is a transport fault far more often than an API change.
            raise TransientError(
                f"invalid or truncated JSON body ({len(resp.content)} bytes)",
                connector=self.connector,
                url=safe_url,
                status=resp.status_code,
            ) from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        server = None
        if isinstance(exc, TransientError) and exc.retry_after:
            server = float(exc.retry_after)
        return self.policy.wait_s(state.attempt_number, server)

    async def _sleep(self, seconds: float) -> None:
        await self.sleep(seconds)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.upcoming_sleep
        self.stats.retries += 1
        if isinstance(exc, TransientError) and exc.rate_limited:
            self.stats.rate_limit_wait_s += wait
        log.warning(
            "http.retry",
            connector=self.connector,
            attempt=state.attempt_number,
            max_attempts=self.policy.max_attempts,
            wait_s=round(wait, 3),
            error=str(exc),
            status=getattr(exc, "status", None),
            url=getattr(exc, "url", ""),
        )


def transport_detail(exc: httpx.TransportError) -> str:
    """The error's type and what the OS said ("ConnectError: [Errno 111] Connection
    refused"), scrubbed of registered secrets; only the type when it says nothing."""
    said = scrub(" ".join(str(exc).split()))[:200]
    return f"{type(exc).__name__}: {said}" if said else type(exc).__name__


def gave_up(exc: TransientError, attempts: int) -> TransientError:
    """The last transient error, its message naming the (redacted) URL and the attempts:
    "network error (...) from https://host/path after 6 attempts"."""
    tried = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
    where = f" from {exc.url}" if exc.url and exc.url not in str(exc) else ""
    return TransientError(
        f"{exc}{where} {tried}",
        connector=exc.connector,
        url=exc.url,
        status=exc.status,
        retry_after=exc.retry_after,
        rate_limited=exc.rate_limited,
    )


def _unbind(resp: httpx.Response) -> None:
    """Break the cycle httpx leaves between a response and its stream (`BoundAsyncStream`
    refers back to the response): once closed, the response is freed as soon as the caller
    drops it, not at the next full collection of the cyclic GC. Held in that cycle, every
    page's body (~0.6 MB for 100 GitHub issues) outlived its page until then: ~10 MB of them
    during a sync, and a heap that never shrank back."""
    resp.stream = httpx.ByteStream(b"")


def _origin_key(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port (None for the scheme's default port), as httpx normalises them."""
    return url.scheme, url.host, url.port


SECONDARY_LIMIT_WAIT_S = 60.0  # a 403 that says "rate limit" and not how long to wait
_RATE_LIMIT_WORDS = (b"secondary rate limit", b"rate limit exceeded", b"abuse detection")


def _says_rate_limit(resp: httpx.Response) -> bool:
    """A 403 whose body says it is a rate limit, not a refusal. The body is always read:
    `translate` only sees responses of `Http`, which reads (and caps) every body first."""
    head = resp.content[:2048].lower()
    return any(words in head for words in _RATE_LIMIT_WORDS)


def translate(resp: httpx.Response, connector: str) -> ConnectorError:
    """Map an error response to the exception that says what the caller should do."""
    status = resp.status_code
    url = redact_url(str(resp.request.url))
    wait = retry_after(resp.headers, use_reset=status in (403, 429))
    remaining = resp.headers.get("x-ratelimit-remaining")
    # GitHub's secondary limits may come with no header saying how long: "wait at least one
    # minute" (docs.github.com, "Rate limits for the REST API").
    secondary = status == 403 and wait is None and _says_rate_limit(resp)
    if secondary:
        wait = SECONDARY_LIMIT_WAIT_S
    if status == 429 or (
        status == 403 and (remaining == "0" or "retry-after" in resp.headers or secondary)
    ):
        return TransientError(
            f"rate limited (HTTP {status})",
            connector=connector,
            url=url,
            status=status,
            retry_after=wait,
            rate_limited=True,
        )
    if status >= 500:
        return TransientError(
            f"server error HTTP {status}",
            connector=connector,
            url=url,
            status=status,
            retry_after=wait,
        )
    if status in (401, 403):
        return AuthError(
            f"HTTP {status}: the tracker refused the credentials of connector {connector!r} "
            "(token missing, wrong, expired or revoked, or lacking permission)",
            connector=connector,
            url=url,
            status=status,
        )
    if status in (404, 410):
        return NotFound(f"HTTP {status} for {url}", connector=connector, url=url, status=status)
    if 300 <= status < 400:
        return NotFound(
            f"HTTP {status}: moved to {redact_url(resp.headers.get('location', '?'))}",
            connector=connector,
            url=url,
            status=status,
        )
    return PayloadError(f"HTTP {status} for {url}", connector=connector, url=url, status=status)


def retry_after(
    headers: httpx.Headers, now: float | None = None, *, use_reset: bool = True
) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date) or a reset header.

    `x-ratelimit-reset` is epoch seconds on GitHub and an ISO-8601 time on Jira; it only counts
    when the remaining quota is 0 or the response is a 429.
    """
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("x-ratelimit-reset")
    if reset and use_reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            try:
                return max(0.0, datetime.fromisoformat(reset).astimezone(UTC).timestamp() - now)
            except ValueError:
                return None
    return None
