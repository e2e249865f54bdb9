"""`Http` bounds every call: credentials only to base_url's origin, no redirect followed,
bodies read as a stream up to `max_response_bytes`, at most `max_requests` calls a run; a 403
is a rate limit only when it says so."""

from __future__ import annotations

import asyncio
import gc
import gzip
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from okrsync.errors import (
    AuthError,
    NotFound,
    OffOriginError,
    PayloadError,
    RunLimitExceeded,
    TransientError,
)
from okrsync.http import SECONDARY_LIMIT_WAIT_S, Http, translate

BASE = "https://api.github.com"
TOKEN = "ghp_secret_token_value"
MB = 2**20


def call(
    url: str,
    *,
    origin: str | None = BASE,
    client_kw: dict[str, Any] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **http_kw: Any,
) -> tuple[httpx.Response, Any]:
    """One GET through an `Http` with a bearer token, as a connector would send it."""

    async def go() -> tuple[httpx.Response, Any]:
        async with httpx.AsyncClient(transport=transport, **(client_kw or {})) as client:
            http = Http(client, connector="gh", origin=origin, **http_kw)
            http.headers["Authorization"] = f"Bearer {TOKEN}"
            return await http.get_json(url)

    return asyncio.run(go())


# --- origin --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://other:1234/repos/o/r/issues?page=2",
        "http://api.github.com/repos/o/r/issues",  # scheme
        "https://api.github.com:8443/repos/o/r/issues",  # port
        "https://api.github.com.evil.example/repos/o/r/issues",  # host
    ],
)
def test_a_url_off_the_configured_origin_is_refused_before_anything_is_sent(url: str) -> None:
    """A URL with another scheme, host or port raises OffOriginError; no request leaves."""
    with respx.mock(assert_all_called=False) as mock:
        anywhere = mock.route().respond(200, json=[])
        with pytest.raises(OffOriginError) as err:
            call(url)
        assert not anywhere.called
    message = str(err.value)
    assert "which is not the configured base_url https://api.github.com" in message
    assert "refusing to send credentials there" in message


def test_the_refusal_names_the_url_redacted() -> None:
    """Credentials in the refused URL (userinfo, token parameters) are masked in the message."""
    with respx.mock(assert_all_called=False) as mock:
        mock.route().respond(200, json=[])
        with pytest.raises(OffOriginError) as err:
            call("http://user:pw@other:1234/x?access_token=leaked")
    message = str(err.value)
    assert "http://other:1234/x?access_token=%2A%2A%2A" in message
    assert "leaked" not in message
    assert "pw@" not in message


@pytest.mark.parametrize(
    ("origin", "url", "sent"),
    [
        (BASE, "https://API.github.com:443/repos/o/r", "https://api.github.com/repos/o/r"),
        (BASE, "/repos/o/r", "https://api.github.com/repos/o/r"),
        (
            "https://ghe.example.com/api/v3",
            "repos/o/r",
            "https://ghe.example.com/api/v3/repos/o/r",
        ),
        # A protocol-relative "link" stays on the configured host.
        (BASE, "//evil.example/x", "https://api.github.com/evil.example/x"),
    ],
)
def test_same_origin_and_relative_urls_are_sent(origin: str, url: str, sent: str) -> None:
    """Default ports and host case are normalised; relative URLs resolve on the origin."""
    with respx.mock as mock:
        route = mock.get(sent).respond(200, json={"ok": True})
        _, body = call(url, origin=origin)
    assert body == {"ok": True}
    assert route.call_count == 1


def test_a_redirect_is_never_followed_even_by_a_client_built_to_follow() -> None:
    """A 302 to another host is answered as NotFound; the other host gets nothing."""
    with respx.mock as mock:
        mock.get(f"{BASE}/x").respond(302, headers={"Location": "http://other:1234/x"})
        other = mock.get("http://other:1234/x").respond(200, json=[])
        with pytest.raises(NotFound):
            call(f"{BASE}/x", client_kw={"follow_redirects": True})
    assert not other.called


# --- response size ---------------------------------------------------------------------------


class Drip:
    """A body of `total` bytes, generated in 64 KB chunks, counting what was consumed."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        chunk = b"x" * (64 * 1024)
        while self.sent < self.total:
            self.sent += len(chunk)
            yield chunk


def test_a_body_over_the_cap_is_refused_after_reading_just_past_it() -> None:
    """A 200 MB streamed body with a 1 MB cap: PayloadError, and only ~1 MB is ever read."""
    drip = Drip(200 * MB)
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content=drip.chunks()))
    with pytest.raises(PayloadError, match=r"response larger than 1 MB from https://api"):
        call(f"{BASE}/x", transport=transport, max_response_bytes=1 * MB)
    assert 1 * MB < drip.sent <= 1 * MB + 64 * 1024


def test_a_declared_length_over_the_cap_is_refused_without_reading_the_body() -> None:
    """A Content-Length over the cap fails at once: none of the body is consumed."""
    drip = Drip(200 * MB)
    transport = httpx.MockTransport(
        lambda _: httpx.Response(
            200, content=drip.chunks(), headers={"Content-Length": str(200 * MB)}
        )
    )
    with pytest.raises(PayloadError, match="response larger than 1 MB"):
        call(f"{BASE}/x", transport=transport, max_response_bytes=1 * MB)
    assert drip.sent == 0


def test_the_cap_applies_to_the_decoded_body() -> None:
    """A gzip body that is small on the wire but inflates past the cap is refused."""
    bomb = gzip.compress(b"[" + b" " * (8 * MB) + b"]")
    transport = httpx.MockTransport(
        lambda _: httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})
    )
    assert len(bomb) < MB
    with pytest.raises(PayloadError, match="response larger than 1 MB"):
        call(f"{BASE}/x", transport=transport, max_response_bytes=1 * MB)


def test_a_body_under_the_cap_is_parsed_and_kept_on_the_response() -> None:
    """Streaming changes nothing for a normal page: parsed body, `resp.content` readable."""
    payload = b'[{"id": 1}]'
    transport = httpx.MockTransport(
        lambda _: httpx.Response(200, content=payload, headers={"Content-Type": "json"})
    )
    resp, body = call(f"{BASE}/x", transport=transport, max_response_bytes=1 * MB)
    assert body == [{"id": 1}]
    assert resp.content == payload


# --- requests per run ------------------------------------------------------------------------


def test_calls_past_max_requests_are_refused() -> None:
    """With max_requests=2 the third call raises RunLimitExceeded and is not sent."""

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            http = Http(client, connector="gh", origin=BASE, max_requests=2)
            await http.get_json(f"{BASE}/a")
            await http.get_json(f"{BASE}/b")
            with pytest.raises(RunLimitExceeded, match="more than 2 requests in one run"):
                await http.get_json(f"{BASE}/c")

    with respx.mock as mock:
        route = mock.route(host="api.github.com").respond(200, json=[])
        asyncio.run(go())
    assert route.call_count == 2


def test_a_response_is_freed_as_soon_as_the_caller_drops_it() -> None:
    """No reference cycle keeps a read response (and its body) alive until the cyclic GC
    runs: dropping the last reference frees it."""
    with respx.mock:
        respx.get(f"{BASE}/issues").respond(200, json=[{"id": n} for n in range(100)])
        gc.disable()
        try:
            resp, body = call(f"{BASE}/issues")
            gone = weakref.ref(resp)
            del resp
            assert gone() is None
        finally:
            gc.enable()
    assert len(body) == 100


# --- a 403 is a rate limit only when it says so ---------------------------------------------


def forbidden(body: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(403, content=body, headers=headers, request=httpx.Request("GET", BASE))


def test_a_403_saying_secondary_rate_limit_waits_a_minute() -> None:
    """No header says how long: GitHub asks for at least a minute."""
    err = translate(forbidden(b'{"message": "You have exceeded a secondary rate limit"}'), "gh")
    assert isinstance(err, TransientError)
    assert (err.rate_limited, err.retry_after) == (True, SECONDARY_LIMIT_WAIT_S)


def test_a_403_whose_reset_is_a_minute_away_is_still_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refusal with points left and a reset exactly 60 s away is not a rate limit (the wait
    equal to the secondary limit's minute is no sign of one)."""
    monkeypatch.setattr("okrsync.http.time.time", lambda: 1_000_000.0)
    resp = forbidden(
        b'{"message": "Resource not accessible by integration"}',
        **{"x-ratelimit-remaining": "41", "x-ratelimit-reset": "1000060"},
    )
    assert isinstance(translate(resp, "gh"), AuthError)
