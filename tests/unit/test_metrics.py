"""Metric names and labels of the daemon, and the web server that serves them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TypedDict, Unpack

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from okrsync import __version__
from okrsync.metrics import Metrics
from okrsync.sync import RunResult
from okrsync.web.server import WebServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(m: Metrics) -> Samples:
    text = m.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


class Costs(TypedDict, total=False):
    """The counters and timings of a `RunResult`."""

    pages: int
    created: int
    updated: int
    deleted: int
    requests: int
    retries: int
    rate_limit_wait_s: float
    duration_s: float


def run(status: str = "ok", **kw: Unpack[Costs]) -> RunResult:
    return RunResult("gh", 1, status=status, **kw)


def test_declared_connectors_expose_zero_series_before_any_run() -> None:
    """Every per-connector series exists at 0 once the connector is declared."""
    m = Metrics()
    m.declare(["gh"])
    got = samples(m)
    for status in ("ok", "failed", "interrupted"):
        assert got[("okrsync_sync_runs_total", (("connector", "gh"), ("status", status)))] == 0
    for change in ("created", "updated", "deleted"):
        assert got[("okrsync_sync_items_total", (("change", change), ("connector", "gh")))] == 0
    for name in ("pages", "requests", "retries", "rate_limit_wait_seconds", "skipped"):
        assert got[(f"okrsync_sync_{name}_total", (("connector", "gh"),))] == 0


def test_observe_counts_a_run_by_outcome_and_its_costs() -> None:
    """A run adds to its outcome, items by change, requests, retries, waits and duration."""
    m = Metrics()
    m.observe(
        run(
            pages=3,
            created=5,
            updated=2,
            deleted=1,
            requests=7,
            retries=2,
            rate_limit_wait_s=1.5,
            duration_s=0.7,
        )
    )
    m.observe(run("failed", requests=1, duration_s=0.1))
    got = samples(m)
    gh = (("connector", "gh"),)
    assert got[("okrsync_sync_runs_total", (("connector", "gh"), ("status", "ok")))] == 1
    assert got[("okrsync_sync_runs_total", (("connector", "gh"), ("status", "failed")))] == 1
    assert got[("okrsync_sync_items_total", (("change", "created"), ("connector", "gh")))] == 5
    assert got[("okrsync_sync_items_total", (("change", "deleted"), ("connector", "gh")))] == 1
    assert got[("okrsync_sync_requests_total", gh)] == 8
    assert got[("okrsync_sync_retries_total", gh)] == 2
    assert got[("okrsync_sync_rate_limit_wait_seconds_total", gh)] == 1.5
    assert got[("okrsync_sync_run_duration_seconds_count", gh)] == 2
    assert 0 <= got[("okrsync_sync_seconds_since_last_success", gh)] < 5


def test_ages_are_computed_at_scrape_time() -> None:
    """Seconds since last success and cursor lag are measured when rendered."""
    m = Metrics()
    m.last_success("gh", datetime.now(UTC).timestamp() - 120)
    m.newest_updated("gh", datetime.now(UTC) - timedelta(hours=1))
    got = samples(m)
    assert 119 <= got[("okrsync_sync_seconds_since_last_success", (("connector", "gh"),))] < 130
    assert 3599 <= got[("okrsync_sync_cursor_lag_seconds", (("connector", "gh"),))] < 3610


def test_each_daemon_has_its_own_registry() -> None:
    """Two Metrics objects never share series (no process-global registry)."""
    a, b = Metrics(), Metrics()
    a.observe(run())
    assert ("okrsync_sync_runs_total", (("connector", "gh"), ("status", "ok"))) not in samples(b)


async def _http(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


async def _ok(_request: Request) -> Response:
    return JSONResponse({"ok": True})


async def _exchange(requests: list[bytes]) -> list[bytes]:
    server = WebServer(Starlette(routes=[Route("/healthz", _ok)]), "127.0.0.1", 0)
    port = await server.start()
    try:
        return [await _http(port, r) for r in requests]
    finally:
        await server.stop()


def test_web_server_answers_with_length_and_closes() -> None:
    """GET answers with Content-Length and closes when asked; HEAD has no body; 404/405/400."""
    close = b"Host: x\r\nConnection: close\r\n\r\n"
    get, head, missing, post, junk = asyncio.run(
        _exchange(
            [
                b"GET /healthz?x=1 HTTP/1.1\r\n" + close,
                b"HEAD /healthz HTTP/1.1\r\n" + close,
                b"GET /nope HTTP/1.1\r\n" + close,
                b"POST /healthz HTTP/1.1\r\n" + close,
                b"hello\r\n\r\n",
            ]
        )
    )
    body = b'{"ok":true}'
    assert get.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"content-length: {len(body)}\r\n".encode() in get.lower()
    assert b"connection: close\r\n" in get.lower()
    assert get.endswith(b"\r\n\r\n" + body)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert missing.startswith(b"HTTP/1.1 404 ")
    assert post.startswith(b"HTTP/1.1 405 ")
    assert junk.startswith(b"HTTP/1.1 400 ")


def test_build_info_names_the_version_and_no_created_series_are_exposed() -> None:
    """/metrics carries okrsync_build_info{version} 1 and no `_created` timestamp series."""
    m = Metrics()
    m.declare(["gh"])
    m.observe(run(created=2, duration_s=1.0))
    text = m.render().decode()
    assert f'okrsync_build_info{{version="{__version__}"}} 1.0' in text.splitlines()
    created = [line for line in text.splitlines() if "_created" in line.split("{")[0]]
    assert created == []
