"""Jira Cloud and Jira Server/Data Center in one connector (`kind = "jira"`).

`config.flavor` picks the API: "cloud" (REST v3 enhanced search, token paging, Basic
email:API-token), "server" (REST v2 search, offset paging, `Bearer <PAT>`), or "auto" (one
`GET /rest/api/2/serverInfo`, `deploymentType` "Cloud" vs "Server"/"DataCenter", cached in the
cursor). Scopes are project keys. Vendor facts this module relies on:

- JQL `project = "KEY" AND updated >= <epoch ms> ORDER BY updated ASC, key ASC`. Epoch
  milliseconds are timezone-safe (a date literal is read in the Jira user's timezone); JQL
  compares at minute granularity, so the window starts at the high-water mark floored to the
  minute minus `lookback_minutes`. Items re-returned at the boundary are skipped when their
  exact (id, updated) was stored already (ids near the boundary are kept in the cursor).
- Only the used `fields` are requested; story points and (DC) "Epic Link" are custom fields
  whose ids are discovered once by name from `/field` and cached in the cursor.
- Offsets run over live data: when an item seen during a run was updated at or after the
  run's start (server `Date` header), the run keeps its starting window for the next run. So
  it does when rows left the results while paging (they shift the rest and can hide one): DC
  says so by `total`; on Cloud, `approximate-count` before and after a multi-page listing.
- Jira has no deletion feed: the first (full) run's listing, and a periodic census every
  `census_every` runs (`project = KEY ORDER BY key`, ids only), yield `Page.census`.
- Moves keep the issue `id` and change the key; the item just arrives under its new key.
- `self` URLs in Jira answers are never followed.
- Every search listing walks through a loop guard (`_guard`): a page token or offset handed out
  twice, or pages without a new issue id while more are promised, fail the run (`PagingLoop`);
  a DC page shorter than its reported `maxResults` is the last, whatever `total` claims.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import structlog

from okrsync.config import ConnectorConfig
from okrsync.errors import ConfigError
from okrsync.http import Http
from okrsync.models import Cursor, Page, StatusCategory, WorkItem
from okrsync.redaction import register_secret

from .._guard import PageGuard
from .._scope import Restarts, lost_scope
from .config import JiraConfig
from .cursor import JiraCursor, RunState, ScopeState
from .normalise import STATUS_VOCABULARY, IssueShapeError, Normaliser, epoch_ms
from .search import (
    EPIC_LINK_NAME,
    ESTIMATE_NAMES,
    JiraApi,
    ScopeLost,
    SearchPage,
    TokenExpired,
    discover_field,
)

log = structlog.get_logger("okrsync.connectors.jira")
PAGE_SIZE = {True: 100, False: 1000}  # cloud?, default maxResults for the incremental query
CENSUS_SIZE = {True: 5000, False: 1000}


class JiraConnector:
    """Pulls issues (epics included, as containers) from Jira Cloud or Server/DC projects."""

    kind: ClassVar[str] = "jira"
    Config: ClassVar[type[JiraConfig]] = JiraConfig
    # Jira allows a few requests in flight; Data Center pages up to 1,000 issues (Cloud 100).
    default_in_flight: ClassVar[int] = 4
    status_vocabulary: ClassVar[Mapping[str, StatusCategory]] = STATUS_VOCABULARY
    largest_page: ClassVar[int] = PAGE_SIZE[False]
    items_per_record: ClassVar[int] = 1

    def __init__(self, config: ConnectorConfig, http: Http) -> None:
        self.config = JiraConfig.of(config)
        self.http = http
        http.headers.update(auth_headers(self.config))

    async def pull(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        """Yield one page per search response, project after project (then any census)."""
        state = JiraCursor.load(cursor)
        api = JiraApi(self.http, self.config.base_url, cloud=await self._is_cloud(state))
        norm = await self._normaliser(api, state)
        for scope in self.config.scope:
            async for page in _ScopeRun(self.config, api, norm, state, scope).pages():
                yield page

    async def _is_cloud(self, state: JiraCursor) -> bool:
        if self.config.flavor != "auto":
            state.flavor = self.config.flavor
        elif state.flavor not in ("cloud", "server"):
            probe = JiraApi(self.http, self.config.base_url, cloud=False)
            deployment = await probe.deployment()
            state.flavor = "cloud" if deployment.casefold() == "cloud" else "server"
            log.info("jira.flavor", connector=self.config.name, deployment=deployment)
        return state.flavor == "cloud"

    async def _normaliser(self, api: JiraApi, state: JiraCursor) -> Normaliser:
        wanted = self.config.estimate_field
        cached = state.fields
        if cached is None or cached.get("for") != wanted or "epic_link" not in cached:
            cached = await _discover_fields(api, wanted)
            state.fields = cached
        return Normaliser.build(
            self.config.name,
            self.config.base_url,
            self.config.dropped_statuses,
            estimate_field=cached.get("estimate"),
            epic_link_field=cached.get("epic_link"),
            status_map=self.config.status_map,
        )


def auth_headers(config: JiraConfig) -> dict[str, str]:
    """Cloud: Basic e-mail:API token. Server/DC: Bearer PAT. Auto: Basic when an e-mail is set."""
    token = config.secret()
    email = config.email()
    if config.flavor == "cloud" and not email:
        raise ConfigError(
            f"connector {config.name!r}: Jira Cloud needs the account e-mail; set email_env"
        )
    headers = {"Accept": "application/json"}
    if email and config.flavor != "server":
        basic = base64.b64encode(f"{email}:{token}".encode()).decode()
        register_secret(basic)
        headers["Authorization"] = f"Basic {basic}"
    else:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def scope_jql(project: str, since_ms: int | None) -> str:
    """The incremental JQL; `since_ms` None lists the whole project."""
    jql = f'project = "{_jql_quote(project)}"'
    if since_ms is not None:
        jql += f" AND updated >= {since_ms}"
    return jql + " ORDER BY updated ASC, key ASC"


def census_jql(project: str) -> str:
    return f'project = "{_jql_quote(project)}" ORDER BY key ASC'


def _jql_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


async def _discover_fields(api: JiraApi, wanted: str | None) -> dict[str, Any]:
    fields = await api.fields()
    names = (wanted,) if wanted else ESTIMATE_NAMES
    epic = None if api.cloud else discover_field(fields, (EPIC_LINK_NAME,))
    found = {"for": wanted, "estimate": discover_field(fields, names), "epic_link": epic}
    log.info("jira.fields", estimate=found["estimate"], epic_link=epic)
    return found


class _ScopeRun:
    """One pass over one project: the incremental query, then a census when one is due."""

    def __init__(
        self,
        config: ConnectorConfig,
        api: JiraApi,
        norm: Normaliser,
        state: JiraCursor,
        scope: str,
    ) -> None:
        self.config, self.api, self.norm, self.state, self.scope = config, api, norm, state, scope
        self.st: ScopeState = state.scope(scope)
        self.resumed = self.st.run is not None
        self.run: RunState = self.st.run or RunState(window=self.st.since)
        self.st.run = self.run
        self.full = self.run.window is None
        self.census_due = self.st.census_pending or (
            self.st.runs > 0 and self.st.runs % config.census_every == 0
        )
        self.ids: set[str] = set()
        self.first_total: int | None = None

    async def pages(self) -> AsyncIterator[Page]:
        try:
            async for page in self._incremental():
                yield page
            if self.st.census_pending and not self.full:
                async for page in self._census():
                    yield page
        except ScopeLost:
            self.st.run = None
            yield lost_scope("jira", self.config.name, self.scope, self.state.dump())

    async def _incremental(self) -> AsyncIterator[Page]:
        what = f"the page tokens of project {self.scope}"
        restarts = Restarts("jira", self.config.name, self.scope, what)
        while True:
            try:
                async for page in self._query():
                    yield page
            except TokenExpired:
                restarts.again("token_expired", "page token expired")
                self.run.rewind()
            else:
                return

    async def _query(self) -> AsyncIterator[Page]:
        jql = scope_jql(self.scope, self.run.window)
        size = self.config.page_size or PAGE_SIZE[self.api.cloud]
        cloud, first = self.api.cloud, True
        # Cloud reports no total: count around the pages instead (a full listing is long, so
        # count before its first page; an incremental one only once it spans pages).
        before = await self.api.count(jql) if cloud and self.full and not self.run.token else None
        guard = self._guard("search", self.run.token if cloud else self.run.start_at, size)
        while True:
            page = await self.api.search(
                jql, self.norm.fields(), size, token=self.run.token, start_at=self.run.start_at
            )
            guard.step(page.ids(), page.cursor)
            if self.run.started is None:
                self.run.started = page.date_ms
            if self.first_total is None:
                self.first_total = page.total
            if cloud and first and before is None and not page.last:
                before = await self.api.count(jql)
            if cloud and page.last and not first and before is not None:
                await self._check_moved(jql, before)
            first = False
            items = self._take(page.issues)
            self.run.token, self.run.start_at = page.next_token, page.next_start
            census = self._finish(page) if page.last else {}
            ready = Page(items, self.state.dump(), scope=self.scope, census=census)
            for held in guard.hold(ready):
                yield held
            if page.last:
                return

    def _guard(self, listing: str, first: str | int | None, limit: int) -> PageGuard:
        """The loop guard of one listing (a restart after an expired token takes a new one)."""
        scope = f"project {self.scope}"
        return PageGuard(self.config.name, scope, listing, first=first, limit=limit)

    async def _check_moved(self, jql: str, before: int) -> None:
        """Token pages are offsets too: a row that left the results while we paged (deleted,
        moved, no longer matching) shifted the rest and may have hidden one. The count moved:
        keep this run's window, so the next run reads it again (DC does the same by `total`).
        """
        after = await self.api.count(jql)
        if after is not None and after != before:
            self.run.hold = True
            log.warning(
                "jira.rows_moved",
                connector=self.config.name,
                scope=self.scope,
                count_before=before,
                count_after=after,
                hint="window kept: the next run re-reads it",
            )

    def _take(self, issues: list[dict[str, Any]]) -> list[WorkItem]:
        """Normalise a page, note the hold signal, drop items stored at the boundary."""
        items: list[WorkItem] = []
        for issue in issues:
            if issue.get("id"):
                self.ids.add(str(issue["id"]))
            item = self._normalise(issue)
            if item is None:
                continue
            updated = epoch_ms(item.updated)
            if self.run.started is not None and updated >= self.run.started:
                self.run.hold = True
            if not self.st.stored_already(item.external_id, updated):
                self.st.record(item.external_id, updated)
                items.append(item)
        self.st.prune(self.config.lookback_minutes)
        return items

    def _normalise(self, issue: dict[str, Any]) -> WorkItem | None:
        try:
            return self.norm.item(issue)
        except IssueShapeError as exc:
            log.warning("jira.item_skipped", scope=self.scope, id=issue.get("id"), error=str(exc))
            return None

    def _finish(self, last: SearchPage) -> dict[str, list[str]]:
        """Close the run; a clean full listing doubles as the census."""
        complete = self._complete(last)
        if not complete:
            # DC's total moved while paging: offsets shifted and may have hidden an issue, so
            # the next run re-reads this run's window instead of moving past it.
            self.run.hold = True
        clean = not self.resumed and not self.run.hold and complete
        self.st.finish(self.config.lookback_minutes)
        if self.full and clean:
            self.st.census_pending = False
            return {self.scope: sorted(self.ids)}
        if self.full or self.census_due:
            self.st.census_pending = True
        return {}

    def _complete(self, last: SearchPage) -> bool:
        """Offset paging (DC) can skip rows when the total moved while paging."""
        if last.total is None:
            return True
        return last.total == self.first_total == len(self.ids)

    async def _census(self) -> AsyncIterator[Page]:
        ids = await self._census_ids()
        if ids is None:
            log.warning("jira.census_incomplete", scope=self.scope)
            return
        self.st.census_pending = False
        yield Page([], self.state.dump(), scope=self.scope, census={self.scope: ids})

    async def _census_ids(self) -> list[str] | None:
        """Every issue id of the project, or None when the listing cannot be trusted."""
        cloud = self.api.cloud
        fields, size = (["updated"] if cloud else ["id"]), CENSUS_SIZE[cloud]
        ids: list[str] = []
        token, start, totals = None, 0, set()
        jql = census_jql(self.scope)
        # Cloud has no total: count before the first page and, if it spans pages, after the
        # last. A census is periodic, so its extra request is cheap next to a wrong deletion.
        before = await self.api.count(jql) if cloud else None
        pages, guard = 0, self._guard("census", None if cloud else 0, size)
        while True:
            try:
                page = await self.api.search(jql, fields, size, token=token, start_at=start)
            except TokenExpired:
                return None
            guard.step(page.ids(), page.cursor)
            totals.add(page.total)
            ids += [str(i["id"]) for i in page.issues if i.get("id")]
            token, start, pages = page.next_token, page.next_start, pages + 1
            if page.last:
                break
        if before is not None and pages > 1 and await self.api.count(jql) != before:
            return None  # rows moved under the token offsets: a live id may be missing
        if page.total is not None and (len(totals) > 1 or page.total != len(set(ids))):
            return None  # rows moved under the offsets: an id may be missing
        return ids
