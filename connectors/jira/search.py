"""Jira HTTP calls: flavor detection, field discovery and the two search paginators.

- Cloud: `GET /rest/api/3/search/jql` (`jql`, explicit `fields`, `maxResults`,
  `nextPageToken`). Without `fields` only ids come back. The last page says `isLast: true`; a
  short page does not mean the end. The old `/rest/api/3/search` answers 410 on Cloud and is
  never called.
- Cloud: `POST /rest/api/3/search/approximate-count` {"jql"} → {"count"}: the total that token
  paging does not report (approximate: recent changes may lag).
- Server/DC: `GET /rest/api/2/search` with `startAt` / `maxResults`, answered with `total`.
- `GET /rest/api/2/serverInfo` → `deploymentType` ("Cloud", "Server", "DataCenter").
- `GET /rest/api/{3|2}/field` lists fields with `id` and `name` (custom ids differ per site).
- Errors: 400 with `errorMessages` naming the page token → the token expired; 400 "The value
  'KEY' does not exist for the field 'project'." / 403 / 404 / 410 → the project is gone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from okrsync.errors import AuthError, NotFound, PayloadError
from okrsync.http import Http, translate

CLOUD_SEARCH = "/rest/api/3/search/jql"
CLOUD_COUNT = "/rest/api/3/search/approximate-count"
SERVER_SEARCH = "/rest/api/2/search"
ESTIMATE_NAMES = ("Story point estimate", "Story Points")
EPIC_LINK_NAME = "Epic Link"
_PROJECT_MISSING = "does not exist for the field 'project'"


class TokenExpired(Exception):
    """Jira refused a page token: restart the scope's query from its window."""


class ScopeLost(Exception):
    """The project itself is gone or no longer visible."""


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One search response, reduced to what paging needs."""

    issues: list[dict[str, Any]]
    last: bool
    date_ms: int
    next_token: str | None = None
    next_start: int = 0
    total: int | None = None

    @property
    def cursor(self) -> str | int | None:
        """What asks for the next page: a token (Cloud) or an offset (DC); None when last."""
        if self.last:
            return None
        return self.next_token if self.next_token is not None else self.next_start

    def ids(self) -> Iterator[Any]:
        """The page's issue ids, for the loop guard."""
        for issue in self.issues:
            if isinstance(issue, dict) and isinstance(i := issue.get("id"), str | int):
                yield i


@dataclass
class JiraApi:
    """The Jira REST calls one connector makes; `cloud` selects the API flavour."""

    http: Http
    base_url: str
    cloud: bool

    async def search(
        self,
        jql: str,
        fields: list[str],
        max_results: int,
        *,
        token: str | None = None,
        start_at: int = 0,
    ) -> SearchPage:
        """One page of `jql`; Cloud pages by token, Server/DC by offset."""
        params: dict[str, Any] = {"jql": jql, "fields": ",".join(fields), "maxResults": max_results}
        if self.cloud and token:
            params["nextPageToken"] = token
        elif not self.cloud:
            params["startAt"] = start_at
        path = CLOUD_SEARCH if self.cloud else SERVER_SEARCH
        resp, body = await self._get(path, params, token_sent=bool(token))
        if not isinstance(body, Mapping) or not isinstance(body.get("issues"), list):
            raise PayloadError("search answer without an 'issues' list", url=path)
        date_ms = _date_ms(resp)
        if self.cloud:
            return _cloud_page(body, date_ms)
        return _server_page(body, start_at, date_ms)

    async def count(self, jql: str) -> int | None:
        """Cloud only: how many issues match `jql` now (`POST .../approximate-count`).

        Token paging reports no total, so this is how a run notices that rows moved under its
        pages. None when the site does not offer it (404/400/405): the run goes on unchecked.
        """
        url = self.base_url + CLOUD_COUNT
        try:
            _, body = await self.http.request(
                "POST", url, json_body={"jql": jql}, accept=(400, 404, 405)
            )
        except AuthError as exc:
            if exc.status == 403:
                raise ScopeLost from None
            raise
        count = body.get("count") if isinstance(body, Mapping) else None
        return count if isinstance(count, int) and not isinstance(count, bool) else None

    async def fields(self) -> list[dict[str, Any]]:
        """Every field the site knows (`id`, `name`)."""
        version = 3 if self.cloud else 2
        _, body = await self.http.get_json(f"{self.base_url}/rest/api/{version}/field")
        return [f for f in body or [] if isinstance(f, dict)]

    async def deployment(self) -> str:
        """`deploymentType` from serverInfo: "Cloud", "Server" or "DataCenter"."""
        _, body = await self.http.get_json(f"{self.base_url}/rest/api/2/serverInfo")
        return str((body or {}).get("deploymentType") or "")

    async def _get(
        self, path: str, params: dict[str, Any], *, token_sent: bool
    ) -> tuple[httpx.Response, Any]:
        try:
            url = self.base_url + path
            resp, body = await self.http.get_json(url, params=params, accept=(400,))
        except NotFound:
            raise ScopeLost from None
        except AuthError as exc:
            if exc.status == 403:
                raise ScopeLost from None
            raise
        if resp.status_code == 400:
            raise _bad_request(resp, self.http.connector, token_sent=token_sent)
        return resp, body


def discover_field(fields: list[dict[str, Any]], names: tuple[str, ...]) -> str | None:
    """The id of the first name in `names` that exists (names case-insensitive; ids accepted)."""
    for wanted in names:
        for f in fields:
            if wanted == f.get("id") or wanted.casefold() == str(f.get("name", "")).casefold():
                return str(f["id"])
    return None


def _cloud_page(body: Mapping[str, Any], date_ms: int) -> SearchPage:
    """A token page; a token handed out twice is the caller's loop guard's business."""
    nxt = body.get("nextPageToken") or None
    last = body.get("isLast") is True or (body.get("isLast") is None and nxt is None)
    if not last and nxt is None:
        raise PayloadError("Jira said isLast=false without a nextPageToken", url=CLOUD_SEARCH)
    return SearchPage(list(body["issues"]), last, date_ms, next_token=None if last else str(nxt))


def _server_page(body: Mapping[str, Any], start_at: int, date_ms: int) -> SearchPage:
    """An offset page. It is the last when it is empty, reaches `total`, or is shorter than the
    `maxResults` the answer reports: Jira fills every page but the last, so a `total` beyond what
    the pages deliver cannot drive more requests (the listing then counts as incomplete).
    """
    issues = list(body["issues"])
    total = _int(body, "total", 0)
    start = _int(body, "startAt", start_at) or start_at
    size = _int(body, "maxResults", 0)
    nxt = start + len(issues)
    last = not issues or nxt >= total or len(issues) < size
    return SearchPage(issues, last, date_ms, next_start=nxt, total=total)


def _int(body: Mapping[str, Any], key: str, default: int) -> int:
    """A whole-number field of a DC answer (absent or null: `default`)."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise PayloadError(f"search answer with a non-integer {key!r}", url=SERVER_SEARCH)


def _bad_request(resp: httpx.Response, connector: str, *, token_sent: bool) -> Exception:
    messages = " ".join(_error_messages(resp))
    if _PROJECT_MISSING in messages:
        return ScopeLost()
    if token_sent and "token" in messages.casefold():
        return TokenExpired()
    return translate(resp, connector)


def _error_messages(resp: httpx.Response) -> list[str]:
    try:
        body = resp.json()
    except ValueError:
        return []
    if not isinstance(body, Mapping):
        return []
    messages = [str(m) for m in body.get("errorMessages") or ()]
    errors = body.get("errors")
    if isinstance(errors, Mapping):
        messages += [str(v) for v in errors.values()]
    return messages


def _date_ms(resp: httpx.Response) -> int:
    """The server's clock (`Date` header), else ours: the run's start for the hold rule."""
    value = resp.headers.get("date")
    moment = None
    if value:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            moment = None
    if moment is None or moment.tzinfo is None:
        moment = datetime.now(UTC)
    return int(moment.timestamp() * 1000)
