"""Asana connector: tasks, milestones and sections of configured projects (scopes = project gids).

Vendor facts relied on (Asana REST API 1.0, `Authorization: Bearer <personal access token>`):

- `GET /projects/{gid}/tasks?modified_since=<ISO UTC>&limit=100&opt_fields=...&offset=<token>`
  lists a project's tasks; `next_page.offset` is followed until `next_page` is null. "Modified"
  includes association changes such as being added to a project. An expired offset answers 400
  with a message about the offset / pagination token: the listing restarts from the window it
  was started with (at most `_scope.MAX_RESTARTS` times, then `CursorRejected`). Other 400s are
  `PayloadError`s carrying Asana's message. An offset (or, below, an events sync token) handed
  out twice in one listing, or pages bringing no new gid (event) while more are promised, fail
  the run with `PagingLoop` (`_guard`); a restarted listing starts a fresh guard.
- `GET /projects/{gid}/sections` lists the project's sections (containers). They are fetched
  only on a scope's full run, on census runs, and after a section event; nothing else is cached.
- `GET /events?resource=<project gid>&sync=<token>`: the first call (no token) and a call with an
  expired token answer 412 with a fresh `sync` token in the body (normal, not an error); a 200
  gives `data` (at most 100 events), a new `sync` and `has_more`. Events are at-most-once, so the
  `modified_since` poll stays the source of truth and the events call is only a cheap "did
  anything change?" probe plus the source of deletions.
- 429 + Retry-After is handled by the core `Http`; 404/403 on a project's events, tasks or
  sections means the scope is lost (reported, never deletions). 401 (`AuthError`) propagates.

One run, per scope: (1) the events call (loop while `has_more`); `deleted` task/section events
become `Page.deleted`. (2) If events arrived, the token was refused (412), a poll is still pending
from an interrupted run, or this is a census run, the tasks are polled with `modified_since` =
the stored window (no window yet: a full listing, which also lists sections and emits a census).
Otherwise the project is unchanged and the run cost one request. (3) After every scope's poll,
scopes whose census is due (every `census_every` runs, after a `removed` event, or when a full
listing was interrupted) list their sections and all task gids (`opt_fields=gid`) and emit
`Page(census={project: [task gids + "section:<gid>"]})` on the last page.

Moves: a `removed` event for project A only says the task left A; it may have moved to another
configured project B (where it shows up through B's own `added` event and poll) or be multi-homed.
So `removed` is never reported as a deletion: it triggers a poll of A and a census of A, and the
census pass runs after every scope's poll, so a task that moved into B is already stored under
container B when A's census (which only flags A's stored items) runs. A task that left every
configured project is then flagged by A's census in the same run.

Watermarks: the window advances to the highest `modified_at` seen; if any task seen has
`modified_at` at or after the run's start (first response's `Date` header), the starting window
is kept and a re-poll of it is left pending, so a task hidden by an offset shift is caught.

Cursor (`{"v": 1, "scopes": {project_gid: state}}`), per scope:
`window` (ISO UTC or null: full listing next), `sync` (events token), `runs` (runs since the last
census), `census_due`, `sections_due`, and `pending` (a poll to run or resume:
`{"since", "offset", "high", "keep"}`). A pending poll resumes at its stored offset (at most one
page replayed) unless new events arrived, in which case it restarts from its window.

Normalisation: tasks → external_id = key = gid, kind = milestone for `resource_subtype`
"milestone" (a container) else task, item_type = resource_subtype, container = the scope project
gid, section = the section name in that project, parent_key = parent gid, labels = tag names,
estimate = the number custom field named `estimate_field` (default "Estimate"), custom =
{"project", "section"}. Sections → external_id = key = "section:<gid>", kind = section,
container = project gid; having no modification time, their `updated` is the listing's server
time, so a rename is stored on the next census. Status: completed → done (dropped if the section
is a dropped name); open → dropped if the section is a dropped name, in_progress for "In
Progress" / "Doing" / "In Review", else todo. completed_at is set for every completed task.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
import structlog

from okrsync.config import ConnectorConfig
from okrsync.errors import AuthError, NotFound, PayloadError
from okrsync.http import Http
from okrsync.models import Cursor, IdList, Page, StatusCategory, WorkItem

from .._guard import PageGuard
from .._scope import Restarts, census_due, lost_scope, out_of_reach
from .config import AsanaConfig
from .cursor import AsanaCursor, Poll, ScopeState
from .normalise import STATUS_VOCABULARY, Normaliser
from .normalise import json_list as _list
from .normalise import json_obj as _obj
from .normalise import parse_time as _parse_dt

log = structlog.get_logger("okrsync.connectors.asana")

MAX_LIMIT = 100
TASK_FIELDS = ",".join(
    (
        "name",
        "resource_subtype",
        "completed",
        "completed_at",
        "created_at",
        "modified_at",
        "due_on",
        "assignee.name",
        "assignee.email",
        "tags.name",
        "parent.gid",
        "memberships.project.gid",
        "memberships.project.name",
        "memberships.section.gid",
        "memberships.section.name",
        "permalink_url",
        "custom_fields.name",
        "custom_fields.number_value",
        "custom_fields.type",
    )
)
SECTION_FIELDS = "name,created_at"
# The census asks for full tasks: Asana pages by 100 whatever the fields, so it costs no extra
# request, and it re-reads any task an offset shift hid from a poll (a deletion on an
# already-read page moves every later task one place earlier).
CENSUS_FIELDS = TASK_FIELDS

JSON = dict[str, Any]


@dataclass
class _Census:
    """Ids gathered by a listing that started at its first page in this run."""

    sections: list[str] = field(default_factory=list)
    tasks: IdList = field(default_factory=IdList)

    def ids(self) -> IdList:
        self.tasks.extend(self.sections)
        self.sections = []
        return self.tasks


class AsanaConnector:
    """Pulls tasks, milestones and sections of the configured Asana projects."""

    kind: ClassVar[str] = "asana"
    Config: ClassVar[type[AsanaConfig]] = AsanaConfig
    # Asana allows 50 reads in flight per token; a page holds at most 100 tasks.
    default_in_flight: ClassVar[int] = 50
    status_vocabulary: ClassVar[Mapping[str, StatusCategory]] = STATUS_VOCABULARY
    largest_page: ClassVar[int] = MAX_LIMIT
    items_per_record: ClassVar[int] = 1

    def __init__(self, config: ConnectorConfig, http: Http) -> None:
        self.config = AsanaConfig.of(config)
        if self.config.workspace is not None:
            log.warning(
                "asana.workspace_ignored",
                connector=config.name,
                hint="workspace never did anything (projects are named by gid in scope); "
                "remove it from the [[connectors]] section",
            )
        self.http = http
        http.headers["Authorization"] = f"Bearer {config.secret()}"
        self._base = config.base_url.rstrip("/")
        self._norm = Normaliser.build(
            config.name, config.dropped_statuses, config.estimate_field, config.status_map
        )
        self._limit = min(config.page_size or MAX_LIMIT, MAX_LIMIT)
        self._cursor = AsanaCursor()
        self._run_start: datetime | None = None

    async def pull(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        """Events probe + poll per scope, then the census pass for scopes that are due."""
        self._cursor = AsanaCursor.load(cursor, self.config.scope)
        self._run_start = None
        lost: set[str] = set()
        for gid in self.config.scope:
            async for page in self._guarded(gid, self._sync_scope(gid)):
                lost.update(page.lost_scopes)
                yield page
        for gid in self.config.scope:
            if gid not in lost and self._census_due(self._state(gid)):
                async for page in self._guarded(gid, self._census(gid)):
                    yield page

    # -- per-scope flow ---------------------------------------------------------------------

    async def _guarded(self, gid: str, pages: AsyncIterator[Page]) -> AsyncIterator[Page]:
        """Turn 403/404/410 on a scope into a lost-scope page; 401 still propagates."""
        try:
            async for page in pages:
                yield page
        except (NotFound, AuthError) as exc:
            if not out_of_reach(exc):
                raise
            yield lost_scope("asana", self.config.name, gid, self._snapshot(), status=exc.status)

    async def _sync_scope(self, gid: str) -> AsyncIterator[Page]:
        st = self._state(gid)
        st.runs += 1
        census_run = self._census_due(st)
        async for page in self._events(gid, st):
            yield page
        if st.pending is None and census_run:
            st.pending = Poll(st.window)
        if st.pending is None:
            return  # unchanged: this scope cost one request
        async for page in self._poll(gid, st, st.pending):
            yield page

    def _census_due(self, st: ScopeState) -> bool:
        return st.census_due or census_due(st.runs, self.config.census_every)

    # -- events -----------------------------------------------------------------------------

    async def _events(self, gid: str, st: ScopeState) -> AsyncIterator[Page]:
        """Drain the events while `has_more`; the guard refuses a sync token handed out twice."""
        guard = PageGuard(self.config.name, f"project {gid}", "events", first=st.sync)
        while True:
            params = {"resource": gid, **({"sync": st.sync} if st.sync else {})}
            resp, body = await self._get("/events", params, accept=(412,))
            if resp.status_code == 412:
                st.sync = _sync_token(_body(resp), resp, self.config.name)
                st.mark_changed()
                yield Page(items=[], cursor=self._snapshot(), scope=gid)
                return
            events = _list(body, "data")
            token = _sync_token(body, resp, self.config.name)
            more = bool(body.get("has_more")) and bool(events)
            guard.step(map(_event_key, events), token if more else None)
            deleted = self._read_events(gid, st, events)
            st.sync = token
            page = Page(items=[], cursor=self._snapshot(), scope=gid, deleted=deleted)
            for ready in guard.hold(page):
                yield ready
            if not more:
                return

    def _read_events(self, gid: str, st: ScopeState, events: list[JSON]) -> list[str]:
        """Deleted ids from `events`; any event at all means the project must be polled."""
        deleted: list[str] = []
        for ev in events:
            resource = _obj(ev, "resource")
            rtype = resource.get("resource_type") or ev.get("type")
            rid = resource.get("gid")
            action = ev.get("action")
            parent = _obj(ev, "parent")
            if rtype == "task" and action == "deleted" and rid:
                deleted.append(str(rid))
            elif rtype == "section" and rid:
                if action == "deleted":
                    deleted.append(f"section:{rid}")
                else:
                    st.sections_due = True
            elif rtype == "task" and action == "removed" and parent.get("gid") == gid:
                st.census_due = True  # left this project: the census settles it
        if events:
            st.mark_changed()
        return deleted

    # -- the modified_since poll ------------------------------------------------------------

    async def _poll(self, gid: str, st: ScopeState, p: Poll) -> AsyncIterator[Page]:
        fresh = p.offset is None
        census = _Census() if fresh and p.since is None else None
        if fresh and (p.since is None or st.sections_due):
            async for page in self._sections(gid, st, census):
                yield page
        params = {"limit": self._limit, "opt_fields": TASK_FIELDS}
        if p.since is not None:
            params["modified_since"] = p.since
        path = f"/projects/{gid}/tasks"
        async for data, nxt, restarted in self._pages(path, params, p.offset):
            if restarted and census is not None:
                census.tasks.clear()
            items = self._tasks(gid, data, p)
            if census is not None:
                census.tasks.extend([str(t["gid"]) for t in data if t.get("gid")])
            p.offset = nxt
            ids: dict[str, IdList] = {}
            if nxt is None:
                self._finish_poll(st, p, census)
                ids = {gid: census.ids()} if census is not None else {}
            yield Page(items=items, cursor=self._snapshot(), scope=gid, census=ids)

    def _tasks(self, gid: str, data: list[JSON], p: Poll) -> list[WorkItem]:
        items = [it for raw in data if (it := self._task_or_skip(raw, gid)) is not None]
        if items:
            newest = max(it.updated for it in items)
            if p.high is None or newest > _parse_dt(p.high):
                p.high = _iso(newest)
            if self._run_start is not None and newest >= self._run_start:
                p.keep = True
        return items

    def _finish_poll(self, st: ScopeState, p: Poll, census: _Census | None) -> None:
        if p.keep:
            # Something changed while we paged: keep the window and re-poll it next run.
            st.pending = Poll(p.since)
        else:
            st.window = p.high or p.since
            st.pending = None
        if census is not None:
            st.census_done()

    # -- census -----------------------------------------------------------------------------

    async def _census(self, gid: str) -> AsyncIterator[Page]:
        st = self._state(gid)
        census = _Census()
        async for page in self._sections(gid, st, census):
            yield page
        params = {"limit": self._limit, "opt_fields": CENSUS_FIELDS}
        async for data, nxt, restarted in self._pages(f"/projects/{gid}/tasks", params, None):
            if restarted:
                census.tasks.clear()
            census.tasks.extend([str(t["gid"]) for t in data if t.get("gid")])
            items = [it for raw in data if (it := self._task_or_skip(raw, gid)) is not None]
            done = nxt is None
            if done:
                st.census_done()
            ids = {gid: census.ids()} if done else {}
            yield Page(items=items, cursor=self._snapshot(), scope=gid, census=ids)

    async def _sections(
        self, gid: str, st: ScopeState, census: _Census | None
    ) -> AsyncIterator[Page]:
        params = {"limit": self._limit, "opt_fields": SECTION_FIELDS}
        async for data, nxt, restarted in self._pages(f"/projects/{gid}/sections", params, None):
            if restarted and census is not None:
                census.sections.clear()
            seen = self._run_start or datetime.now(UTC)
            items = [self._norm.section(raw, gid, seen) for raw in data if raw.get("gid")]
            if census is not None:
                census.sections.extend(it.external_id for it in items)
            if nxt is None:
                st.sections_due = False
            yield Page(items=items, cursor=self._snapshot(), scope=gid)

    # -- HTTP -------------------------------------------------------------------------------

    async def _pages(
        self, path: str, params: dict[str, Any], offset: str | None
    ) -> AsyncIterator[tuple[list[JSON], str | None, bool]]:
        """Follow `next_page.offset`; an expired offset restarts the listing (flag `restarted`)."""
        restarted = False
        restarts = Restarts("asana", self.config.name, path, f"the offset of {path}")
        guard = self._guard(path, offset)
        while True:
            query = {**params, **({"offset": offset} if offset else {})}
            resp, body = await self._get(path, query, accept=(400,))
            if resp.status_code == 400:
                message = _error_message(_body(resp))
                if offset is None or not _is_offset_error(message):
                    raise PayloadError(
                        f"HTTP 400: {message}", connector=self.config.name, url=path, status=400
                    )
                restarts.again("offset_expired", message, url=path, status=400)
                offset, restarted = None, True
                guard = self._guard(path, None)  # a new listing: a fresh guard
                continue
            data, nxt = _list(body, "data"), _next_offset(body)
            guard.step(_gids(data), nxt)
            for ready in guard.hold((data, nxt, restarted)):
                yield ready
            if nxt is None:
                return
            offset, restarted = nxt, False

    def _guard(self, path: str, offset: str | None) -> PageGuard:
        """The loop guard of one listing of `/projects/{gid}/{tasks|sections}`."""
        _, gid, listing = path.rsplit("/", 2)
        return PageGuard(
            self.config.name, f"project {gid}", listing, first=offset, limit=self._limit
        )

    async def _get(
        self, path: str, params: dict[str, Any], accept: tuple[int, ...] = ()
    ) -> tuple[httpx.Response, JSON]:
        resp, body = await self.http.get_json(self._base + path, params=params, accept=accept)
        if self._run_start is None:
            self._run_start = _server_time(resp)
        return resp, body if isinstance(body, dict) else {}

    # -- cursor -----------------------------------------------------------------------------

    def _state(self, gid: str) -> ScopeState:
        return self._cursor.scopes[gid]

    def _snapshot(self) -> Cursor:
        return self._cursor.dump()

    # -- normalisation ----------------------------------------------------------------------

    def _task_or_skip(self, raw: JSON, gid: str) -> WorkItem | None:
        try:
            return self._norm.task(raw, gid)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("asana.item_skipped", scope=gid, gid=raw.get("gid"), error=repr(exc))
            return None


# -- small pure helpers -------------------------------------------------------------------------


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _server_time(resp: httpx.Response) -> datetime:
    value = resp.headers.get("date")
    if value:
        try:
            return parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def _body(resp: httpx.Response) -> JSON:
    try:
        body = json.loads(resp.content) if resp.content else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _sync_token(body: JSON, resp: httpx.Response, connector: str) -> str:
    token = body.get("sync")
    if not isinstance(token, str) or not token:
        raise PayloadError(
            f"HTTP {resp.status_code} from /events without a sync token",
            connector=connector,
            url="/events",
            status=resp.status_code,
        )
    return token


def _gids(data: list[JSON]) -> Iterator[Any]:
    """A page's gids, for the loop guard."""
    return (g for raw in data if isinstance(g := raw.get("gid"), str | int))


def _event_key(ev: JSON) -> str:
    """Events carry no id: what, on which resource, by whom and when tells them apart."""
    parts = (
        ev.get("created_at"),
        ev.get("action"),
        ev.get("type"),
        _obj(ev, "resource").get("gid"),
        _obj(ev, "parent").get("gid"),
        _obj(ev, "user").get("gid"),
        _obj(ev, "change").get("field"),
    )
    return "|".join(map(str, parts))


def _next_offset(body: JSON) -> str | None:
    offset = _obj(body, "next_page").get("offset")
    return str(offset) if offset else None


def _error_message(body: JSON) -> str:
    return "; ".join(str(e.get("message", "")) for e in _list(body, "errors")) or "bad request"


def _is_offset_error(message: str) -> bool:
    text = message.casefold()
    return "offset" in text or "pagination" in text
