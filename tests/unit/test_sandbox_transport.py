"""The sandbox's in-process transport behaves as the socket server does: faults surface as the
httpx errors a wire would give, requests are logged, admin endpoints answer, no socket is used."""

from __future__ import annotations

import asyncio
import json
from email.utils import parsedate_to_datetime

import httpx
import pytest

from okrsync.sandbox import Sandbox
from okrsync.sandbox._transport import IN_PROCESS_ORIGIN

SIZES = {"github": 30}


def _client(sb: Sandbox) -> httpx.Client:
    return httpx.Client(transport=sb.transport(), headers=_auth(sb))


def _auth(sb: Sandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {sb.credentials['github_token']}"}


def _issues_url(sb: Sandbox) -> str:
    return f"{sb.base_url('github')}/repos/{sb.scopes('github')[0]}/issues"


def test_unstarted_sandbox_serves_in_process_origin() -> None:
    """Without start(), base_url is the never-listening loopback origin and a request succeeds."""
    sb = Sandbox(seed=1, sizes=SIZES)
    assert sb.base_url("github") == f"{IN_PROCESS_ORIGIN}/github"
    with _client(sb) as client:
        resp = client.get(_issues_url(sb), params={"state": "all"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert isinstance(resp.json(), list)
    assert resp.json()


def test_async_client_is_served_too() -> None:
    """The same transport serves an `httpx.AsyncClient`."""
    sb = Sandbox(seed=1, sizes=SIZES)

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=sb.transport(), headers=_auth(sb)) as client:
            return await client.get(_issues_url(sb))

    assert asyncio.run(get()).status_code == 200


def test_reset_fault_raises_read_error() -> None:
    """An injected `reset` raises httpx.ReadError, then the next request is served."""
    sb = Sandbox(seed=1, sizes=SIZES)
    sb.inject("github", "reset")
    with _client(sb) as client:
        with pytest.raises(httpx.ReadError):
            client.get(_issues_url(sb))
        assert client.get(_issues_url(sb)).status_code == 200
    assert [r.status for r in sb.requests] == [0, 200]


def test_truncate_fault_raises_remote_protocol_error() -> None:
    """A `truncate` that claims the full length raises httpx.RemoteProtocolError."""
    sb = Sandbox(seed=1, sizes=SIZES)
    sb.inject("github", "truncate")
    with _client(sb) as client, pytest.raises(httpx.RemoteProtocolError, match="received"):
        client.get(_issues_url(sb))


def test_truncate_short_mode_returns_the_cut_body() -> None:
    """`truncate` with mode=short answers 200 with about half the body, which is not JSON."""
    sb = Sandbox(seed=1, sizes=SIZES)
    with _client(sb) as client:
        full = client.get(_issues_url(sb)).content
        sb.inject("github", "truncate", mode="short")
        cut = client.get(_issues_url(sb))
    assert cut.status_code == 200
    assert cut.content == full[: len(full) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)


def test_request_log_records_vendor_requests_not_admin_ones() -> None:
    """Each vendor request is logged with tracker, method, path, query, status and headers."""
    sb = Sandbox(seed=1, sizes=SIZES)
    with _client(sb) as client:
        client.get(_issues_url(sb), params={"per_page": "5"})
        client.get(f"{IN_PROCESS_ORIGIN}/_sandbox/stats")
    (entry,) = sb.requests
    assert (entry.tracker, entry.method, entry.status) == ("github", "GET", 200)
    assert entry.path == f"/repos/{sb.scopes('github')[0]}/issues"
    assert entry.query == {"per_page": "5"}
    assert entry.headers_in["authorization"].startswith("Bearer ")


def test_admin_endpoints_work_in_process() -> None:
    """Admin calls through the transport act on the sandbox: truth, revoke/restore, 404."""
    sb = Sandbox(seed=1, sizes=SIZES)
    admin = f"{IN_PROCESS_ORIGIN}/_sandbox"
    with _client(sb) as client:
        truth = client.get(f"{admin}/truth", params={"tracker": "github"}).json()
        assert {t["external_id"] for t in truth} == set(sb.truth("github"))
        assert client.post(f"{admin}/revoke", json={"tracker": "github"}).json() == {"ok": True}
        assert client.get(_issues_url(sb)).status_code == 401
        client.post(f"{admin}/restore", json={"tracker": "github"})
        assert client.get(_issues_url(sb)).status_code == 200
        assert client.post(f"{admin}/nonsense", json={}).status_code == 404
        assert client.post(f"{admin}/inject", json={"tracker": "github"}).status_code == 400


def test_every_answer_carries_a_date_header_like_the_socket_server() -> None:
    """Each answer has an HTTP `Date` (connectors read the run's start from it)."""
    sb = Sandbox(seed=1, sizes=SIZES)
    with _client(sb) as client:
        resp = client.get(_issues_url(sb))
    assert parsedate_to_datetime(resp.headers["date"]).tzinfo is not None
