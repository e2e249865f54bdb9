"""One run of one connector: the pull-and-commit step of `pipeline.sync_and_recompute`.

    connector.pull(cursor) → pages → links → store.commit_pages(pages, links, run)

Pages are fetched ahead of the store (up to `commit_items` items), so HTTP and JSON work
overlap with the database write, while memory stays bounded whatever the item count. Pages
already waiting when the store is free are linked as one group and committed together, in
order, in one transaction with the last one's cursor (`Store.commit_pages`).

Every run is bounded, whatever the connector (built-in or plug-in): `Bounds` caps the items on
one page, the pages of one run and its duration (`run_deadline_s`); `Http` caps the requests,
the size of each response and where they may go (base_url's origin only). A run past a bound
fails; what it committed before stays, with its cursor, so the next run resumes there. Item
text is cleaned (control characters out, lengths capped: `textsafe.clean_item`) before it
reaches the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import math
import ssl
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx
import structlog

from okrsync import __version__
from okrsync.config import ConnectorConfig, Settings
from okrsync.connector import DEFAULT_IN_FLIGHT, UNDECLARED_PAGE, declared, load
from okrsync.errors import (
    DEADLINE_EXCEEDED,
    ConfigError,
    ConnectorError,
    OkrsyncError,
    PayloadError,
    RunLimitExceeded,
)
from okrsync.http import Http, HttpStats, RetryPolicy
from okrsync.models import Page, WorkItem
from okrsync.models import RunResult as RunResult  # re-exported: it lives in okrsync.models
from okrsync.redaction import scrub
from okrsync.store import Link, PageResult, Store
from okrsync.textsafe import clean_item

log = structlog.get_logger("okrsync.sync")
Linker = Callable[[Sequence[WorkItem]], Mapping[str, Sequence[Link]]]
Watch = Callable[[RunResult, HttpStats], None]
# Items fetched ahead of the store, and at most how many one transaction takes (the default
# of `[store] commit_items`): when the store is the slower side, the pages already waiting go
# in together (fewer commits, fewer dirty index pages per item, fewer hand-offs of the GIL to
# the store's thread). Memory stays bounded by a few thousand items whatever the item count.
GROUP_ITEMS = 2000

# What a page asks for when `page_size` is unset, and the most `page_size` may ask for: the
# plug-in class's `largest_page` (its tracker's largest page; Jira: DC's 1,000, Cloud gives
# 100), and how many items one tracker record may become, its `items_per_record` (GitHub adds
# each issue's milestone to the page as a container item). A plug-in that fixes its own page
# states the most items one page may carry as a `page_limit` attribute instead. Without
# either, `page_size` or 1,000 (the largest `page_size` accepts) is assumed.
PAGE_SLACK = 10  # items a page may carry beyond what was asked for
# Pages per run, unless `max_pages` is set: 10,000 (a first sync of a million items at 100 per
# page; a loop is caught long before by the connectors' guard, and a slow tracker by
# `run_deadline_s`) plus four times the pages that re-listing every stored item takes (a census
# lists them all again, the scope grows); pages counted as if they held 100 items (Jira
# Cloud's page). A larger first sync stops at the cap and its next run resumes; each run's cap
# grows with the store.
MIN_PAGES = 10_000
PAGES_PER_STORED = 4


@dataclass(frozen=True)
class Bounds:
    """How far one run may go: items per page, pages per run, a deadline (loop time)."""

    page_size: int = 0  # the items a page was asked for (0: not checked)
    page_items: int = 0  # the most items one page may carry (0: not checked)
    max_pages: int = 0  # 0: not checked
    deadline: float = math.inf
    deadline_s: float = math.inf

    def check(self, page: Page, pages: int) -> None:
        """Refuse the `pages`-th page of a run when it is too big or one too many."""
        if self.page_items and len(page.items) > self.page_items:
            raise PayloadError(
                f"tracker returned {len(page.items)} items on one page; asked for "
                f"{self.page_size} (scope {page.scope or '?'}); refused before storing any of it"
            )
        if self.max_pages and pages > self.max_pages:
            raise RunLimitExceeded(
                f"run stopped after {self.max_pages} pages, its page cap (max_pages in the "
                "connector section; by default 10,000 plus four times what the stored items "
                "take); the pages stored so far are kept and the next run resumes from them"
            )

    def past_deadline(self) -> RunLimitExceeded:
        return RunLimitExceeded(
            f"{DEADLINE_EXCEEDED}={self.deadline_s:g}: stopped; the pages stored before are "
            "kept and the next run resumes from them (raise run_deadline_s in the connector "
            "section if runs of this size need longer)"
        )


def page_size_for(cc: ConnectorConfig, connector: object) -> tuple[int, int]:
    """The items a page of this connector asks for, and the most one page may carry."""
    limit = declared(connector, "page_limit", 0)
    if limit:
        return limit, limit + PAGE_SLACK
    largest = declared(connector, "largest_page", UNDECLARED_PAGE)
    size = min(cc.page_size or largest, largest)
    return size, size * declared(connector, "items_per_record", 1) + PAGE_SLACK


def max_pages_for(cc: ConnectorConfig, stored: int, page_size: int) -> int:
    """`max_pages`, else the cap derived from the items this connector has stored."""
    if cc.max_pages:
        return cc.max_pages
    return MIN_PAGES + PAGES_PER_STORED * math.ceil(stored / min(page_size, 100))


class Limiters:
    """One semaphore per tracker credential, shared by every run in this event loop."""

    def __init__(self) -> None:
        self._by_key: dict[str, asyncio.Semaphore] = {}

    def for_connector(
        self, cc: ConnectorConfig, credential: str, plugin: object = None
    ) -> asyncio.Semaphore:
        """The semaphore of `cc`'s credential: `max_in_flight`, else the plug-in class's
        `default_in_flight`, else 4."""
        digest = hashlib.sha256(credential.encode()).hexdigest()[:16]
        key = f"{cc.type}|{cc.base_url}|{digest}"
        if key not in self._by_key:
            size = cc.max_in_flight or declared(plugin, "default_in_flight", DEFAULT_IN_FLIGHT)
            self._by_key[key] = asyncio.Semaphore(size)
        return self._by_key[key]


_heap_settled = False
M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def settle_heap() -> None:
    """Once per process, before the first sync: freeze what start-up allocated, and let the
    threads share one malloc arena.

    Modules, config and the compiled mapping live as long as the process; frozen, the cyclic
    collector stops re-scanning them every time a page's JSON allocates a few thousand dicts
    (about half of its time during a sync). Later garbage is collected as usual.

    glibc gives each thread that allocates its own arena, and each arena keeps its own free
    memory: the store's thread (commits run in `asyncio.to_thread`) and the event loop's
    together held about 4 MB more at the peak of a 100k-item sync than one shared arena does,
    at no measurable speed (`bench_singer`; the GIL serialises most of their allocations
    anyway). Threads started before this keep the arena they have.
    """
    global _heap_settled
    if not _heap_settled:
        gc.collect()
        gc.freeze()
        _one_malloc_arena()
        _heap_settled = True


def _one_malloc_arena() -> None:
    """`mallopt(M_ARENA_MAX, 1)` where the C library is glibc; elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # only here, once per process

    libc = ctypes.CDLL(None)  # the process's own C library
    if hasattr(libc, "gnu_get_libc_version"):  # glibc (musl has its own allocator)
        libc.mallopt(M_ARENA_MAX, 1)


def new_client(*, tls: bool = True) -> httpx.AsyncClient:
    """The shared HTTP client: keep-alive pool, no redirects followed, a plain user agent.

    `tls=False` when no configured tracker origin is https (`needs_tls`): the CA bundle is not
    loaded (≈3 MB and 15 ms); an https request on such a client fails its handshake, since it
    trusts no certificate, and never goes unverified."""
    return httpx.AsyncClient(
        verify=True if tls else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        follow_redirects=False,
        headers={"User-Agent": f"okrsync/{__version__}"},
    )


def needs_tls(configs: Sequence[ConnectorConfig]) -> bool:
    """Whether any of these connectors talks to an https origin."""
    return any(cc.base_url.lower().startswith("https:") for cc in configs)


async def run_connector(
    cc: ConnectorConfig,
    store: Store,
    client: httpx.AsyncClient,
    limiters: Limiters,
    linker: Linker | None = None,
    commit_items: int = GROUP_ITEMS,
    watch: Watch | None = None,
    trigger: str = "manual",
) -> RunResult:
    """Pull one connector to the end, committing pages with their cursor (pages that wait for
    the store go in together, up to `commit_items` items per transaction). `watch` is handed
    the run's live result and HTTP statistics once they exist (a progress display reads them
    while the run goes on). `trigger` is recorded with the run: "schedule", "manual" or
    "webhook"."""
    run_id = await asyncio.to_thread(store.start_run, cc.name, trigger=trigger)
    result = RunResult(cc.name, run_id)
    bound = log.bind(connector=cc.name, run_id=run_id)
    structlog.contextvars.bind_contextvars(connector=cc.name, run_id=run_id)
    started = time.monotonic()
    deadline = asyncio.get_running_loop().time() + cc.run_deadline_s
    http: Http | None = None
    try:
        plugin = load(cc.type)
        http = Http(
            client,
            connector=cc.name,
            limiter=limiters.for_connector(cc, cc.secret(), plugin),
            policy=RetryPolicy(max_attempts=cc.max_attempts),
            timeout=cc.timeout_s,
            origin=cc.base_url,
            max_response_bytes=int(cc.max_response_mb * 2**20),
        )
        connector = plugin(cc, http)
        if watch is not None:
            watch(result, http.stats)
        cursor = await asyncio.to_thread(store.cursor, cc.name)
        bounds = await _bounds(cc, connector, store, deadline)
        http.max_requests = 2 * bounds.max_pages
        bound.info("sync.start", resume=cursor is not None, max_pages=bounds.max_pages)
        await _drain(connector.pull(cursor), store, linker, result, bound, commit_items, bounds)
    except asyncio.CancelledError:
        result.status, result.error = "interrupted", "stopped by signal"
        raise
    except (ConnectorError, ConfigError) as exc:
        result.status, result.error = "failed", scrub(str(exc))
        bound.error("sync.failed", error=result.error, error_type=type(exc).__name__)
    except OkrsyncError as exc:
        result.status, result.error = "failed", scrub(str(exc))
        bound.error("sync.failed", error=result.error, error_type=type(exc).__name__)
    except Exception as exc:
        # A bug in a plug-in fails its own run, recorded as such, never the daemon.
        result.status, result.error = "failed", scrub(f"{type(exc).__name__}: {exc}")
        bound.exception("sync.crashed", error=result.error)
    finally:
        result.duration_s = time.monotonic() - started
        if http is not None:
            s = http.stats
            result.requests, result.retries = s.requests, s.retries
            result.rate_limit_wait_s = s.rate_limit_wait_s
        await asyncio.shield(_finish(store, result))
        bound.info(
            "sync.end",
            status=result.status,
            pages=result.pages,
            created=result.created,
            updated=result.updated,
            deleted=result.deleted,
            requests=result.requests,
            retries=result.retries,
            duration_s=round(result.duration_s, 3),
        )
    return result


async def _bounds(cc: ConnectorConfig, connector: object, store: Store, deadline: float) -> Bounds:
    size, items = page_size_for(cc, connector)
    stored = await asyncio.to_thread(store.item_count, cc.name)
    pages = max_pages_for(cc, stored, size)
    return Bounds(size, items, pages, deadline, cc.run_deadline_s)


async def _finish(store: Store, r: RunResult) -> None:
    await asyncio.to_thread(
        store.finish_run,
        r.run_id,
        r.status,
        requests=r.requests,
        retries=r.retries,
        rate_limit_wait_s=r.rate_limit_wait_s,
        error=r.error,
    )


async def _drain(
    pages: object,
    store: Store,
    linker: Linker | None,
    result: RunResult,
    bound: structlog.typing.FilteringBoundLogger,
    commit_items: int = GROUP_ITEMS,
    bounds: Bounds | None = None,
) -> None:
    """Commit the pages of `pages` as they come, within `bounds`. At the deadline the fetching
    stops; a commit under way finishes (the store never sees half a group)."""
    bounds = bounds or Bounds()
    queue = PageQueue(commit_items)  # with 1, one page waits ahead: strictly page by page
    producer = asyncio.create_task(_produce(_checked(pages, bounds), queue))
    loop = asyncio.get_running_loop()
    try:
        end: Exception | bool | None = False  # False: more pages to come
        while end is False:
            if loop.time() >= bounds.deadline:
                raise bounds.past_deadline()
            try:
                async with asyncio.timeout_at(_finite(bounds.deadline)):
                    group, end = await queue.take(commit_items)
            except TimeoutError:
                raise bounds.past_deadline() from None
            if group:
                await _commit_group(group, store, linker, result, bound)
            if isinstance(end, Exception):
                raise end
        await producer
    finally:
        if not producer.done():
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)


class PageQueue:
    """Pages fetched ahead of the store, bounded by the items they hold (a Jira DC page holds
    1,000 items, an Asana page 100). The stream's end (None) or error follows the last page."""

    def __init__(self, max_items: int) -> None:
        self._entries: deque[Page | Exception | None] = deque()
        self._items = 0
        self._max = max_items
        self._changed = asyncio.Condition()

    async def put(self, entry: Page | Exception | None) -> None:
        """Wait until the queued items are under the bound (an empty queue takes any page)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._items < self._max)
            self._entries.append(entry)
            self._items += _weight(entry)
            self._changed.notify_all()

    async def take(self, max_items: int) -> tuple[list[Page], Exception | bool | None]:
        """The oldest page and the ones queued behind it, up to `max_items` items, and how the
        stream goes on: False (more to come), None (it ended) or the error that ended it."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._entries))
            group: list[Page] = []
            taken = 0
            end: Exception | bool | None = False
            while self._entries:
                entry = self._entries[0]
                if not isinstance(entry, Page):
                    self._entries.popleft()
                    end = entry
                    break
                if group and taken + _weight(entry) > max_items:
                    break
                self._entries.popleft()
                group.append(entry)
                taken += _weight(entry)
            self._items -= taken
            self._changed.notify_all()
            return group, end


def _weight(entry: Page | Exception | None) -> int:
    return max(1, len(entry.items)) if isinstance(entry, Page) else 0


async def _commit_group(
    group: list[Page],
    store: Store,
    linker: Linker | None,
    result: RunResult,
    bound: structlog.typing.FilteringBoundLogger,
) -> None:
    """Store a group of consecutive pages in one transaction (see `Store.commit_pages`).

    The group is linked as one: a page's parents and earlier keys may sit on an earlier page
    of the same group, which the store does not hold yet."""
    name = result.connector
    links = None
    if linker is not None:
        items = _latest_sightings(group)
        links = await asyncio.to_thread(linker, items)
        # Tactics the items leave must be recomputed too: read them first.
        ids = [i.external_id for i in items] + [d for page in group for d in page.deleted]
        result.touched_tactics |= await asyncio.to_thread(store.linked_tactics, name, ids)
        # ... and the tactics they join (memory stays flat: tactics, not item ids).
        result.touched_tactics |= {t for pairs in links.values() for t, _ in pairs}
    results = await _commit_counted(store, group, links, result)
    for page, res in zip(group, results, strict=True):
        if page.lost_scopes:
            await asyncio.to_thread(store.mark_lost, name, page.lost_scopes)
            result.lost_scopes.extend(page.lost_scopes)
            bound.warning(
                "sync.scope_lost",
                scopes=page.lost_scopes,
                hint="access lost: items kept, not deleted",
            )
        bound.debug(
            "sync.page",
            scope=page.scope,
            items=len(page.items),
            created=res.created,
            updated=res.updated,
            deleted=res.deleted,
        )


async def _commit_counted(
    store: Store,
    group: list[Page],
    links: Mapping[str, Sequence[Link]] | None,
    result: RunResult,
) -> list[PageResult]:
    """Commit `group` in a thread and add its counts to `result`, as the same transaction adds
    them to the run's row. Cancelled meanwhile (the daemon stopping), the transaction still
    runs to its end in its thread: it is waited for and counted before the cancellation goes
    on, so the run's `sync.end` line says what `okrsync runs show` says."""
    commit = asyncio.ensure_future(
        asyncio.to_thread(store.commit_pages, result.connector, group, links, result.run_id)
    )
    try:
        results = await asyncio.shield(commit)
    except asyncio.CancelledError:
        _count(await commit, result)
        raise
    _count(results, result)
    return results


def _count(results: Sequence[PageResult], result: RunResult) -> None:
    result.pages += len(results)
    for res in results:
        result.created += res.created
        result.updated += res.updated
        result.deleted += res.deleted


def _latest_sightings(group: list[Page]) -> list[WorkItem]:
    """Each item of the group once, as its last page has it, remembering the keys its earlier
    pages gave it (as the store will after committing them in turn)."""
    latest: dict[str, WorkItem] = {}
    for page in group:
        for item in page.items:
            before = latest.get(item.external_id)
            if before is not None and before.key != item.key:
                earlier = (*item.previous_keys, *before.previous_keys, before.key)
                item = dataclasses.replace(item, previous_keys=tuple(dict.fromkeys(earlier)))
            latest[item.external_id] = item
    return list(latest.values())


def _finite(when: float) -> float | None:
    return None if math.isinf(when) else when


async def _checked(pages: object, bounds: Bounds) -> AsyncIterator[Page]:
    """The connector's pages within `bounds`, their items' text cleaned and capped."""
    count = 0
    async for page in pages:  # type: ignore[attr-defined]
        count += 1
        bounds.check(page, count)
        page.items = [clean_item(item) for item in page.items]
        yield page


async def _produce(pages: object, queue: PageQueue) -> None:
    """Fetch pages ahead of the store; an error travels through the queue in order."""
    try:
        async for page in pages:  # type: ignore[attr-defined]
            await queue.put(page)
    except Exception as exc:
        await queue.put(exc)
        return
    await queue.put(None)


def selected(settings: Settings, only: str | None) -> list[ConnectorConfig]:
    """The connectors one `sync --once` runs: `only`, else every enabled one."""
    configs = [settings.connector(only)] if only else [c for c in settings.connectors if c.enabled]
    if not configs:
        raise ConfigError(
            "no connectors configured; add a [[connectors]] section (see config.example.toml; "
            "`okrsync init --print` prints it)"
        )
    return configs


async def sync_once(
    settings: Settings, store: Store, only: str | None = None, linker: Linker | None = None
) -> list[RunResult]:
    """Pull and commit every enabled connector (or `only`) once, concurrently: no run locks,
    no signals. For tests and benchmarks; callers use `pipeline.sync_and_recompute`."""
    configs = selected(settings, only)
    settle_heap()
    limiters = Limiters()
    async with new_client(tls=needs_tls(configs)) as client:
        return list(
            await asyncio.gather(
                *(
                    run_connector(cc, store, client, limiters, linker, settings.store.commit_items)
                    for cc in configs
                )
            )
        )
