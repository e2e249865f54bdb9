"""GitHub connector: issues and pull requests of configured `owner/repo` scopes, and the items
of `project:<owner>/<number>` boards (GitHub Projects, through GraphQL: `project_pull.py`).

Vendor facts relied on (GitHub REST API, version 2022-11-28; same on GitHub Enterprise Server
under `https://<host>/api/v3`):

- `GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&since=<ISO>` lists
  issues AND pull requests (PRs carry a `pull_request` object). `since` is inclusive, so the
  items at the watermark come back on every run (the store de-duplicates them).
- Paging is by the `Link` header; its `rel="next"` URL is followed verbatim (GitHub switches
  to `/repositories/{id}/...` paths and may switch to cursor parameters: never build `page=`).
  A next link already followed in the same listing, or `_guard.STALL_PAGES` pages in a row
  without a new issue id, fail the run with `PagingLoop` (a broken or hostile server).
- An `If-None-Match` carrying the ETag of an earlier identical request is answered
  `304 Not Modified` (no body; not counted against the rate limit). The ETag is stored with the
  exact `since` it was obtained for, and only when that answer was one short page: then any
  change in the window (an updated, added or removed item) changes that page's content.
- `state_reason: "not_planned"` and a PR closed with `pull_request.merged_at: null` mean the
  work was abandoned (dropped); older GHES omit `merged_at` from the issues payload, and such a
  closed PR counts as done (unknown merge, not proven abandoned). `dropped_statuses` also
  match `state_reason` (e.g. "duplicate") and label names (e.g. "wontfix"). Milestones arrive
  embedded in each issue (no extra request).
- A renamed or transferred repo answers `301` with `Location: .../repositories/{id}`; a repo
  out of reach answers 404 (or 403). Both are reported as a lost scope, never as deletions.
- Rate limits (403/429 with `x-ratelimit-remaining: 0` + `x-ratelimit-reset`, or
  `retry-after`) are waited out by the core `Http`; GitHub wants serial requests per
  credential, which the core's limiter enforces, so this module never adds concurrency.

The cursor (`cursor.py`, typed): per repo the `since` watermark, the ETag, runs since the last
census and, while a listing is under way, its pass (next URL, window, newest seen, run start),
so a killed run resumes with at most one page replayed. Normalisation is `normalise.py`.

With project scopes, a run first finds each board (one GraphQL request each: its `updatedAt`),
then pulls the repos (each REST page's issues get their boards through one `nodes(ids:)`
request), then lists the boards that changed, then, every `census_every` runs, takes the
boards' census (every board listed whole).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
import structlog

from okrsync.config import ConnectorConfig
from okrsync.errors import AuthError, ConfigError, NotFound, PayloadError
from okrsync.http import Http
from okrsync.models import Cursor, IdList, Page, StatusCategory, WorkItem

from .._guard import PageGuard
from .._scope import Restarts, census_due, lost_scope
from .config import GitHubConfig, project_of
from .cursor import GitHubCursor, Pass, ScopeState
from .graphql import GraphQL
from .normalise import STATUS_VOCABULARY, Normaliser
from .project_pull import Census, ProjectLost, ProjectsPull, find
from .projects import Board, BoardReader
from .shapes import decode_issues

log = structlog.get_logger("okrsync.github")

API_VERSION = "2022-11-28"
MAX_PAGE = 100
REDIRECTS = (301, 302, 303, 307, 308)

Json = dict[str, Any]


class _ScopeLost(Exception):
    """The scope's own list call answered 404/403/3xx: report it, never delete its items."""


class _PageRejected(Exception):
    """A followed `next` URL was refused (404/410/422): restart the pass from its window."""


class GitHubConnector:
    """Pull issues, pull requests and their milestones from GitHub / GitHub Enterprise."""

    kind: ClassVar[str] = "github"
    Config: ClassVar[type[GitHubConfig]] = GitHubConfig
    # GitHub asks for serial requests per credential; a page holds at most 100 issues, and
    # each may bring its milestone as a second item.
    default_in_flight: ClassVar[int] = 1
    status_vocabulary: ClassVar[Mapping[str, StatusCategory]] = STATUS_VOCABULARY
    largest_page: ClassVar[int] = MAX_PAGE
    items_per_record: ClassVar[int] = 2

    def __init__(self, config: ConnectorConfig, http: Http) -> None:
        _check_scopes(config)
        self.config = GitHubConfig.of(config)
        self.http = http
        http.headers.update(
            {
                "Authorization": f"Bearer {config.secret()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            }
        )
        self._base = config.base_url.rstrip("/")
        self._per_page = min(config.page_size or MAX_PAGE, MAX_PAGE)
        self._norm = Normaliser.build(
            config.name, config.dropped_statuses, config.estimate_field, config.status_map
        )

        self._repos = [s for s in config.scope if project_of(s) is None]
        self._boards_of = [s for s in config.scope if project_of(s) is not None]
        self._projects: ProjectsPull | None = None
        self._gql = GraphQL(http, self._base)  # one budget (rateLimit) for the whole run

    async def pull(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        """Find the boards, yield each repo's changed items page by page (then its census
        when one is due), then each changed board's items, then the boards' census."""
        state = GitHubCursor.load(cursor)
        boards: list[Board] = []
        for scope in self._boards_of:
            try:
                boards.append(await find(self._gql, scope, state.project(scope)))
            except ProjectLost as lost:
                state.project(scope).pending = None
                yield lost_scope("github", self.config.name, scope, state.dump(), reason=str(lost))
        self._projects = self._projects_pull(boards) if boards else None
        for scope in self._repos:
            async for page in self._pull_scope(scope, state):
                yield page
        if self._projects is not None:
            async for page in self._pull_boards(self._projects, boards, state):
                yield page

    def _projects_pull(self, boards: list[Board]) -> ProjectsPull:
        cfg = self.config
        reader = BoardReader.build(
            cfg.name, self._norm, boards, self._repos, cfg.status_field, cfg.estimate_field
        )
        pull = ProjectsPull(cfg.name, self._gql, reader)
        pull.all_boards = len(self._boards_of) > 1
        return pull

    async def _pull_boards(
        self, pull: ProjectsPull, boards: list[Board], state: GitHubCursor
    ) -> AsyncIterator[Page]:
        """Each board's changed items; every `census_every` runs every board whole, then the
        census of the unlisted repos seen on them."""
        if not any(state.project(b.scope).pending for b in boards):
            state.project_runs += 1
        due = census_due(state.project_runs, self.config.census_every)
        census = Census(complete=len(boards) == len(self._boards_of)) if due else None
        for board in boards:
            async for page in pull.listing(board, state, census):
                yield page
        if census is not None and (last := pull.census_page(state, census)) is not None:
            yield last

    # --- one scope -------------------------------------------------------------------

    async def _pull_scope(self, scope: str, state: GitHubCursor) -> AsyncIterator[Page]:
        st = state.scope(scope)
        if st.pending is None:
            st.runs += 1
        try:
            async for page in self._incremental_with_restarts(scope, st, state):
                yield page
            if census_due(st.runs, self.config.census_every):
                async for page in self._census(scope, st, state):
                    yield page
        except _ScopeLost as lost:
            st.pending = None
            yield lost_scope("github", self.config.name, scope, state.dump(), reason=str(lost))

    async def _incremental_with_restarts(
        self, scope: str, st: ScopeState, state: GitHubCursor
    ) -> AsyncIterator[Page]:
        restarts = Restarts("github", self.config.name, scope, f"the paging links of {scope}")
        while True:
            try:
                async for page in self._incremental(scope, st, state):
                    yield page
            except _PageRejected as exc:
                restarts.again("page_rejected", str(exc))
                if st.pending is not None:
                    st.since, st.pending = st.pending.window, None
                st.etag = None
                continue
            return

    async def _incremental(
        self, scope: str, st: ScopeState, state: GitHubCursor
    ) -> AsyncIterator[Page]:
        """One `since` pass: fresh (conditional first request) or resumed from `pass.next`."""
        pending = st.pending
        census = IdList() if pending is None and st.since is None else None
        if pending is not None:
            prog = pending
            resp, body = await self._follow(str(prog.next))
        else:
            resp, body = await self._list(scope, self._issues_params(st.since), st.etag)
            if resp.status_code == 304:
                yield Page(items=[], cursor=state.dump(), scope=scope)
                return
            prog = Pass(window=st.since, start=_server_now(resp).isoformat())
        first = pending is None
        guard = self._guard(scope, "issues", resp)
        while True:
            issues, nxt = self._checked(resp, body, guard)
            prog.observe(issues)
            items = await self._items(issues, scope)
            if census is not None:
                census.extend([i.external_id for i in items])
            prog.next = nxt
            page = Page(items=items, cursor={}, scope=scope)
            if prog.next is None:
                self._finish(st, prog, resp if first and len(issues) < self._per_page else None)
                page.census = self._first_census(scope, st, prog, census)
            else:
                st.pending = prog
            page.cursor = state.dump()
            # The page's JSON is no longer needed: drop it before waiting on the store.
            del resp, body, issues
            for ready in guard.hold(page):
                yield ready
            if prog.next is None:
                return
            first = False
            resp, body = await self._follow(prog.next)

    def _guard(self, scope: str, listing: str, resp: httpx.Response) -> PageGuard:
        """The loop guard of one listing, starting at the URL of its first page."""
        return PageGuard(
            self.config.name, scope, listing, first=str(resp.url), limit=self._per_page
        )

    def _checked(
        self, resp: httpx.Response, body: Any, guard: PageGuard
    ) -> tuple[list[Json], str | None]:
        """A page's issues and next link, past the origin check and the loop guard: an
        off-origin or repeated link fails the run before this page (whose cursor would carry
        it) is stored."""
        issues = _as_list(body, self.config.name)
        nxt = _next_link(resp)
        if nxt is not None:
            self.http.check_origin(nxt)
        guard.step(_ids(issues), nxt)
        return issues, nxt

    def _finish(self, st: ScopeState, prog: Pass, single: httpx.Response | None) -> None:
        """Close a pass: move `since`, keep the ETag only for a short single-page answer."""
        since = prog.final_since()
        st.pending = None
        etag = single.headers.get("etag") if single is not None else None
        st.etag = etag if since == prog.window else None
        st.since = since

    def _first_census(
        self, scope: str, st: ScopeState, prog: Pass, ids: IdList | None
    ) -> dict[str, IdList]:
        """The first full listing doubles as a census unless it was resumed or disturbed."""
        if ids is not None and not prog.hold:
            st.runs = 0
            return {scope: ids}
        if prog.window is None:  # a full listing that could not serve: census right away
            st.runs = self.config.census_every
        return {}

    async def _census(self, scope: str, st: ScopeState, state: GitHubCursor) -> AsyncIterator[Page]:
        """List every issue id of the repo (no `since`); the last page carries the census.

        Not resumable on purpose: the id list is not kept in the cursor, so a killed census
        starts over next run (it re-sends items the store already has, never loses data).
        """
        ids = IdList()
        resp, body = await self._list(scope, {"state": "all", "per_page": self._per_page}, None)
        guard = self._guard(scope, "census", resp)
        while True:
            issues, nxt = self._checked(resp, body, guard)
            items = await self._items(issues, scope)
            ids.extend([i.external_id for i in items])
            page = Page(items=items, cursor={}, scope=scope)
            if nxt is None:
                st.runs = 0
                page.census = {scope: ids}
                log.info(
                    "github.census",
                    connector=self.config.name,
                    scope=scope,
                    ids=len(page.census[scope]),
                )
            page.cursor = state.dump()
            del resp, body, issues  # as in `_incremental`
            for ready in guard.hold(page):
                yield ready
            if nxt is None:
                return
            resp, body = await self._follow(nxt)

    # --- requests --------------------------------------------------------------------

    def _issues_params(self, since: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "state": "all",
            "sort": "updated",
            "direction": "asc",
            "per_page": self._per_page,
        }
        if since is not None:
            params["since"] = since
        return params

    async def _list(
        self, scope: str, params: dict[str, Any], etag: str | None
    ) -> tuple[httpx.Response, Any]:
        """The scope's own list call: 404/410, plain 403 and redirects mean the repo is lost."""
        headers = {"If-None-Match": etag} if etag else None
        url = f"{self._base}/repos/{scope}/issues"
        try:
            resp, body = await self.http.get_json(
                url, params=params, headers=headers, accept=REDIRECTS, decode=decode_issues
            )
        except NotFound as exc:
            raise _ScopeLost(f"HTTP {exc.status}") from None
        except AuthError as exc:
            if exc.status == 403:
                raise _ScopeLost("HTTP 403 (no access to the repository)") from None
            raise
        moved = _redirect(resp)
        if moved is not None:
            raise _ScopeLost(f"HTTP {moved[0]}: moved to {moved[1]}")
        return resp, body

    async def _follow(self, url: str) -> tuple[httpx.Response, Any]:
        """GET a `Link` URL exactly as GitHub gave it."""
        try:
            return await self.http.get_json(url, decode=decode_issues)
        except NotFound as exc:
            raise _PageRejected(f"HTTP {exc.status} on a next link") from None
        except PayloadError as exc:
            if exc.status == 422:
                raise _PageRejected("HTTP 422 on a next link") from None
            raise

    async def _items(self, issues: list[Json], scope: str) -> list[WorkItem]:
        """A REST page's work items, with their boards when project scopes are configured."""
        items = self._normalise(issues, scope)
        if self._projects is not None:
            await self._projects.enrich(scope, issues, items)
        return items

    def _normalise(self, issues: list[Json], scope: str) -> list[WorkItem]:
        items, skipped = self._norm.page(issues, scope)
        for bad in skipped:
            log.warning(
                "github.payload_skipped",
                connector=self.config.name,
                scope=scope,
                id=bad.id,
                error=bad.error,
            )
        return items


# --- helpers (pure) -------------------------------------------------------------------


def _check_scopes(config: ConnectorConfig) -> None:
    """Every scope is a plain `owner/repo` or `project:<owner>/<number>`: nothing else may
    reach a request path."""
    for scope in config.scope:
        if problem := GitHubConfig.scope_problem(scope):
            raise ConfigError(
                f"connector {config.name!r}: {problem}; "
                f"fix `scope` in the [[connectors]] entry named {config.name!r}"
            )


def _ids(issues: list[Json]) -> Iterable[Any]:
    """The ids of a page's issues, for the loop guard (no string conversion)."""
    return (i for raw in issues if isinstance(i := raw.get("id"), int | str))


def _server_now(resp: httpx.Response) -> datetime:
    """The run's start: the server's `Date` header, or local UTC now."""
    header = resp.headers.get("date")
    if header:
        try:
            return parsedate_to_datetime(header).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def _next_link(resp: httpx.Response) -> str | None:
    """The `rel="next"` URL of the `Link` header, untouched."""
    url = resp.links.get("next", {}).get("url")
    return url or None


def _redirect(resp: httpx.Response) -> tuple[int, str] | None:
    """(status, Location) if the list call was redirected (answered or followed by httpx)."""
    for hop in (*resp.history, resp):
        if hop.status_code in REDIRECTS:
            return hop.status_code, hop.headers.get("location", "?")
    return None


def _as_list(body: Any, connector: str) -> list[Json]:
    if not isinstance(body, list):
        raise PayloadError(
            f"expected a JSON array of issues, got {type(body).__name__}", connector=connector
        )
    return [x for x in body if isinstance(x, dict)]
