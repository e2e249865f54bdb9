"""GitHub's GraphQL API through the core `Http`: one POST per query, its rate limit honoured.

Vendor facts relied on (GitHub GraphQL API; GitHub Enterprise Server the same under
`https://<host>/api/graphql`):

- The endpoint is `POST <api>/graphql` with `{"query", "variables"}`; from a REST base_url
  `https://api.github.com` it is `https://api.github.com/graphql`, from an Enterprise
  `https://<host>/api/v3` it is `https://<host>/api/graphql` (`endpoint`).
- Every query asks `rateLimit { remaining resetAt }`: when `remaining` falls below
  `LOW_REMAINING` points the next query waits until `resetAt` (counted as rate-limit wait).
- A secondary limit answers 403 with `Retry-After` (or 429): the core `Http` waits and
  retries it like REST. A primary limit answers 200 (or 403) with an error of type
  `RATE_LIMITED` and no data: `_rate_limited` (the `check` given to `Http.request`) makes it a
  rate-limited TransientError, which the core `Http` retries with the rest (after
  `Retry-After` / `x-ratelimit-reset` / the last `resetAt`), at most `RetryPolicy.max_attempts`
  requests in all, one call of the run's budget.
- Any other entry in `errors`, even beside `data`, fails the page: `GraphQLFailed` names the
  query and the error (type, message, path); nothing is ever dropped silently. A `NOT_FOUND`
  error is `GraphQLNotFound`, so a caller can try another owner type or report a lost scope.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from okrsync.errors import ConnectorError, TransientError
from okrsync.http import Check, Http, retry_after
from okrsync.redaction import redact_url, scrub

Json = dict[str, Any]

# Below this many points left, wait for the reset before the next query (a page of project
# items with field values costs a few points; the hourly budget is 5,000).
LOW_REMAINING = 50
RATE_LIMIT_SELECTION = "rateLimit { remaining resetAt }"


class GraphQLFailed(ConnectorError):
    """The GraphQL answer carried `errors`: the page (and the run) fails, naming them."""

    def __init__(self, message: str, *, kinds: tuple[str, ...], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.kinds = kinds


class GraphQLNotFound(GraphQLFailed):
    """Every error of the answer is `NOT_FOUND` (an owner or project that does not exist)."""


def endpoint(base_url: str) -> str:
    """The GraphQL URL for a REST base_url (GitHub.com, Enterprise `/api/v3`, the sandbox)."""
    base = base_url.rstrip("/")
    if base.endswith("/api/v3"):
        return base[: -len("/v3")] + "/graphql"
    return base + "/graphql"


@dataclass
class Budget:
    """The last `rateLimit` read: points left and when they refill (epoch seconds)."""

    remaining: int | None = None
    reset_at: float | None = None

    def read(self, data: Any) -> None:
        rate = data.get("rateLimit") if isinstance(data, dict) else None
        if not isinstance(rate, dict):
            return
        if isinstance(rate.get("remaining"), int):
            self.remaining = rate["remaining"]
        reset = rate.get("resetAt")
        if isinstance(reset, str):
            try:
                self.reset_at = datetime.fromisoformat(reset).timestamp()
            except ValueError:
                self.reset_at = None

    def wait_s(self, now: float) -> float:
        """Seconds to wait before the next query (0 while enough points are left)."""
        if self.remaining is None or self.remaining >= LOW_REMAINING or self.reset_at is None:
            return 0.0
        return max(0.0, self.reset_at - now)


class GraphQL:
    """Queries one GitHub's GraphQL endpoint through `http` (its headers carry the token)."""

    def __init__(self, http: Http, base_url: str) -> None:
        self.http = http
        self.url = redact_url(endpoint(base_url))
        self.budget = Budget()

    async def query(self, what: str, query: str, variables: Json) -> Json:
        """`data` of one query; `what` names it in errors ("the items of project:acme/12")."""
        await self._pace()
        resp, body = await self.http.request(
            "POST",
            self.url,
            json_body={"query": query, "variables": variables},
            check=self._rate_limited(what),
        )
        if not isinstance(body, dict):
            raise self._failed(what, f"HTTP {resp.status_code} without a GraphQL answer")
        self.budget.read(body.get("data"))
        errors = _errors(body)
        if errors:
            raise self._error(what, errors)
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._failed(what, "an answer without data")
        return data

    def _rate_limited(self, what: str) -> Check:
        """A `RATE_LIMITED` answer (every error of that type) as a TransientError, so `Http`
        waits and retries it like a 429: its own retries, log line and stats."""

        def check(resp: httpx.Response, body: Any) -> None:
            errors = _errors(body) if isinstance(body, dict) else []
            if errors and all(e.get("type") == "RATE_LIMITED" for e in errors):
                raise TransientError(
                    f"GitHub GraphQL rate limit exceeded on {what}",
                    connector=self.http.connector,
                    url=self.url,
                    status=resp.status_code,
                    retry_after=retry_after(resp.headers) or self._reset_wait(),
                    rate_limited=True,
                )

        return check

    async def _pace(self) -> None:
        """Wait for the reset when the last answer left fewer than `LOW_REMAINING` points
        (at most `max_wait_s`, which is also all that is counted as waited)."""
        wait = min(self.budget.wait_s(time.time()), self.http.policy.max_wait_s)
        if wait > 0:
            self.http.stats.rate_limit_wait_s += wait
            await self.http.sleep(wait)
            self.budget.remaining = None

    def _reset_wait(self) -> float | None:
        reset = self.budget.reset_at
        return None if reset is None else max(0.0, reset - time.time())

    def _error(self, what: str, errors: list[Json]) -> GraphQLFailed:
        kinds = tuple(str(e.get("type") or "ERROR") for e in errors)
        first = errors[0]
        path = ".".join(str(p) for p in first.get("path") or [])
        said = scrub(" ".join(str(first.get("message") or "").split()))[:300]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        where = f" at {path}" if path else ""
        message = f"GitHub GraphQL error on {what}: {kinds[0]}{where}: {said}{more}"
        cls = GraphQLNotFound if all(k == "NOT_FOUND" for k in kinds) else GraphQLFailed
        return cls(message, kinds=kinds, connector=self.http.connector, url=self.url)

    def _failed(self, what: str, why: str) -> GraphQLFailed:
        return GraphQLFailed(
            f"GitHub GraphQL error on {what}: {why}",
            kinds=(),
            connector=self.http.connector,
            url=self.url,
        )


def _errors(body: Json) -> list[Json]:
    errors = body.get("errors")
    if not isinstance(errors, list):
        return []
    out = [e if isinstance(e, dict) else {"message": str(e)} for e in errors]
    for e in out:  # GitHub states the kind as `type`; some servers in `extensions`
        ext = e.get("extensions")
        if "type" not in e and isinstance(ext, dict) and isinstance(ext.get("type"), str):
            e["type"] = ext["type"]
    return out
