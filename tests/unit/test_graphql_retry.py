"""GitHub's GraphQL `RATE_LIMITED` answers (HTTP 200) are retried by the core `Http`, like a
429: one call of the run's request budget, never retries nested in retries, its log line and
stats; the pacing before a query counts only the wait it sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from okrsync_connectors.github.graphql import GraphQL
from structlog.testing import capture_logs

from okrsync.errors import TransientError
from okrsync.http import Http, RetryPolicy

Json = dict[str, Any]
BASE = "https://api.github.com"
QUERY = "{ rateLimit { remaining resetAt } }"
OK: Json = {"data": {"rateLimit": {"remaining": 4999, "resetAt": "2026-03-02T10:00:00Z"}}}
LIMITED: Json = {"data": None, "errors": [{"type": "RATE_LIMITED", "message": "API rate limit"}]}


def limited(**headers: str) -> httpx.Response:
    return httpx.Response(200, json=LIMITED, headers=headers)


def run(
    answers: list[httpx.Response],
    go: Callable[[GraphQL], Awaitable[Any]],
    **http_kw: Any,
) -> tuple[Http, list[float], list[httpx.Request]]:
    """`go(gql)` against an endpoint serving `answers` in turn (then `OK`); sleeps recorded."""
    sleeps: list[float] = []
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers.pop(0) if answers else httpx.Response(200, json=OK)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def main() -> Http:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            http = Http(client, connector="gh", sleep=sleep, origin=BASE, **http_kw)
            await go(GraphQL(http, BASE))
            return http

    return asyncio.run(main()), sleeps, sent


async def ask(gql: GraphQL) -> Json:
    return await gql.query("the board project:acme/12", QUERY, {})


def test_a_rate_limited_answer_is_one_call_of_the_runs_budget() -> None:
    """Waited out after its Retry-After and retried inside one `Http.request`: with a budget
    of one request a run still gets its answer, and the retry is counted and logged."""
    with capture_logs() as logs:
        http, sleeps, sent = run([limited(**{"retry-after": "3"})], ask, max_requests=1)
    assert len(sent) == 2
    assert http.calls == 1
    assert (http.stats.requests, http.stats.retries) == (2, 1)
    assert 3 <= sleeps[0] < 4
    assert http.stats.rate_limit_wait_s == pytest.approx(sleeps[0])
    (retry,) = [e for e in logs if e["event"] == "http.retry"]
    assert "GitHub GraphQL rate limit exceeded on the board project:acme/12" in retry["error"]


def test_retries_are_never_nested() -> None:
    """Server errors and `RATE_LIMITED` answers in turn: at most `max_attempts` requests in
    all, then one clear error naming the query and the attempts."""
    answers = [limited(), httpx.Response(502)] * 5
    policy = RetryPolicy(max_attempts=3, jitter_s=0.0)
    with pytest.raises(TransientError) as err:
        run(answers, ask, policy=policy)
    assert len(answers) == 10 - 3
    message = str(err.value)
    assert message.startswith("GitHub GraphQL rate limit exceeded on the board project:acme/12")
    assert message.endswith("after 3 attempts")
    assert err.value.rate_limited


def test_without_a_header_the_retry_waits_for_the_last_reset() -> None:
    """No Retry-After and no x-ratelimit-reset: the wait is the last `resetAt` read."""

    async def go(gql: GraphQL) -> None:
        gql.budget.reset_at = time.time() + 30
        await ask(gql)

    http, sleeps, _ = run([limited()], go)
    assert 28 < sleeps[0] <= 31
    assert http.stats.rate_limit_wait_s == pytest.approx(sleeps[0])


def test_pacing_counts_only_the_wait_it_sleeps() -> None:
    """Few points left and a reset past `max_wait_s`: the query sleeps `max_wait_s`, and the
    run's rate-limit wait says the same."""

    async def go(gql: GraphQL) -> None:
        gql.budget.remaining, gql.budget.reset_at = 10, time.time() + 120
        await ask(gql)

    http, sleeps, _ = run([], go, policy=RetryPolicy(max_wait_s=10.0))
    assert sleeps == [10.0]
    assert http.stats.rate_limit_wait_s == 10.0
