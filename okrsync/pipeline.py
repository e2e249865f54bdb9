"""The one pipeline: pull pages → commit each with its cursor → link → recompute signals.

    sync_and_recompute   each connector (or one) once, under its run lock (`holding`):
                         `sync.run_connector` pulls pages and commits them with their cursor
                         and links; then the signals of the tactics they touched are recomputed

The daemon's jobs, `run --once`, `sync --once` and the demo all call `sync_and_recompute`, so
every path behaves alike; `remap` and a reload go through `MappingState.apply`. `MappingState`
is the last good mapping: a broken file never replaces it.

Rules with an iteration keyword ("@current", ...) link by the day. Every process applies its
mapping when it starts (all links derived as of that day); a long-lived one (the daemon)
re-derives every link once the day has changed, before its next run links a page
(`MappingState.new_day`, from `_Step.run`) and at the daemon's daily `new_day` job, then
recomputes the signals. A mapping without such rules never pays for it.

`check_load` guards the OKR tree in the store against a mis-mounted volume or a bad
checkout: an empty mapping set is refused unless `allow_empty`, and a load that would
archive more than half of the stored objectives, key results and tactics together is
refused unless `yes`. The CLI takes `--allow-empty` / `--yes`; the daemon never passes
`yes`, so it never archives most of the tree on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import structlog

from okrsync import signals
from okrsync.config import Settings, SignalsConfig
from okrsync.connector import status_names
from okrsync.errors import ConfigError, OkrsyncError
from okrsync.linking import Linker, RemapReport, derive, link_page, tactic_counts
from okrsync.locks import NoRunLocks, RunLocks, owner_alive
from okrsync.mapping import Link, Matcher
from okrsync.models import RunResult, StoredItem, WorkItem
from okrsync.okrfile import OkrTree, discover, load_tree, no_cycle_collection
from okrsync.store import LinkRow, RunOwner, Store
from okrsync.sync import (
    Limiters,
    Watch,
    needs_tls,
    new_client,
    run_connector,
    selected,
    settle_heap,
)

log = structlog.get_logger("okrsync.pipeline")
ABANDONED = "abandoned: the process running it stopped without finishing (crash or kill)"
CLI_OVERRIDE = "run the command again with --yes"
DAEMON_OVERRIDE = (
    "the daemon never archives that much on its own: run `okrsync okrs sync --yes` once to "
    "accept it, then start the daemon or send it SIGHUP"
)


class MappingRefused(ConfigError):
    """A mapping that would empty the OKR tree, or archive most of it, without a flag."""


def check_load(
    store: Store,
    tree: OkrTree,
    paths: Sequence[Path],
    *,
    allow_empty: bool = False,
    yes: bool = False,
    override: str = CLI_OVERRIDE,
) -> None:
    """Refuse an empty mapping set (unless `allow_empty`) and a load that would archive
    more than half of the stored tree (unless `yes`); raises MappingRefused, changes
    nothing."""
    shown = _shown(paths)
    if tree.size() == 0 and not allow_empty:
        raise MappingRefused(empty_message(paths))
    if tree.size() == 0:
        log.warning("mapping.empty", paths=shown)
    gone, stored = would_archive(store, tree)
    if 2 * len(gone) > stored and not yes:
        sample = ", ".join(gone[:5]) + (", ..." if len(gone) > 5 else "")
        raise MappingRefused(
            f"this load would archive {len(gone)} of the {stored} objectives, key results "
            f"and tactics in the store ({sample}): more than half of the tree in one go, "
            f"so nothing was changed. If the files in {shown} are right, {override}; "
            "otherwise check [mappings].paths and the files"
        )


def empty_message(paths: Sequence[Path]) -> str:
    """Why an empty mapping set is refused, naming the configured paths, and the fix."""
    return (
        "the mapping files define no objectives, key results or tactics ([mappings].paths = "
        f"{_shown(paths)}); loading them would archive the whole OKR tree. Fix "
        "[mappings].paths in the config (or the mounted folder), or pass --allow-empty if an "
        "empty tree is what you want"
    )


def _shown(paths: Sequence[Path]) -> str:
    return ", ".join(str(p) for p in paths) or "(none configured)"


def would_archive(store: Store, tree: OkrTree) -> tuple[list[str], int]:
    """The stored, active ids that `tree` leaves out (as `kind:id`), and how many are active."""
    wanted: dict[str, Collection[str]] = {
        "objective": tree.objectives,
        "key_result": tree.key_results,
        "tactic": tree.tactics,
    }
    gone: list[str] = []
    stored = 0
    for kind, active in store.active_okr_ids().items():
        stored += len(active)
        gone += [f"{kind}:{ident}" for ident in active if ident not in wanted[kind]]
    return gone, stored


def files_digest(settings: Settings) -> str:
    """A fingerprint of the mapping files (names, sizes, mtimes): changes trigger a reload."""
    h = hashlib.sha256()
    try:
        for path in discover(settings.mapping_paths()):
            st = Path(path).stat()
            h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    except (OSError, ConfigError):
        h.update(b"unreadable")
    return h.hexdigest()


@dataclass(frozen=True)
class Applied:
    """What applying a mapping did: the links re-derived and the signals recomputed."""

    links: RemapReport
    signals: signals.RecomputeReport


class _Day:
    """The matcher of the day a mapping's links were last derived on (date-relative rules
    change links when the day does); the lock lets one caller re-derive them."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.lock = threading.Lock()


@dataclass(frozen=True)
class MappingState:
    """A validated mapping (OKR tree + compiled rules) and the files it came from."""

    tree: OkrTree
    matcher: Matcher
    digest: str
    loaded_at: datetime
    paths: tuple[Path, ...] = ()
    _day: _Day = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_day", _Day(self.matcher))

    @classmethod
    def load(cls, settings: Settings) -> MappingState:
        """Read and validate the mapping files; raises ConfigError listing every problem."""
        digest = files_digest(settings)
        names = [c.name for c in settings.connectors] or None
        with no_cycle_collection():  # one pause over loading and compiling: see okrfile
            tree = load_tree(settings.mapping_paths())
            matcher = Matcher.from_tree(tree, names, signals.today())
        paths = tuple(settings.mapping_paths())
        return cls(tree, matcher, digest, datetime.now(UTC), paths)

    @property
    def today_matcher(self) -> Matcher:
        """The matcher of the day the stored links were derived on (the latest)."""
        return self._day.matcher

    def apply(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        as_of: date | None = None,
        allow_empty: bool = False,
        yes: bool = False,
        override: str = CLI_OVERRIDE,
    ) -> Applied:
        """Load the tree, re-derive every link from stored items, recompute all signals.

        The one way a mapping reaches the store: `okrs sync`, `remap`, `run --once`, the
        demo, the daemon's start and its reloads. Raises MappingRefused (nothing changed) as
        `check_load` says.
        """
        check_load(
            store, self.tree, self.paths, allow_empty=allow_empty, yes=yes, override=override
        )
        store.apply_okr_tree(self.tree)
        if settings is not None:
            restatus(store, settings)
        links = self._relink(store, signals.today(), always=True)
        assert links is not None  # noqa: S101 - `always` derives them
        return Applied(links, recompute(store, settings.signals if settings else None, as_of))

    def new_day(self, store: Store, today: date | None = None) -> RemapReport | None:
        """Re-derive every link as of `today` (default: today, UTC) when some rule is
        date-relative (`iteration = "@current"`, ...) and the links were derived on another
        day; once, whoever asks first. None when there was nothing to do."""
        day = today or signals.today()
        if not self.matcher.dated or self._day.matcher.today == day:
            return None
        report = self._relink(store, day)
        if report is None:
            return None
        log.info("links.new_day", day=day.isoformat(), added=report.added, removed=report.removed)
        return report

    def _relink(self, store: Store, day: date, *, always: bool = False) -> RemapReport | None:
        """Every link re-derived as of `day` under the lock, unless (without `always`) another
        caller got there first. The day's matcher links pages from before the remap starts, so
        a page linked during it is not committed with the previous day's links; a page linked
        before the swap and committed after the remap still is, until the item changes."""
        with self._day.lock:
            previous = self._day.matcher
            if not always and previous.today == day:
                return None
            self._day.matcher = matcher = previous.on(day)
            try:
                return remap(store, matcher)
            except BaseException:
                self._day.matcher = previous  # links not re-derived: the next caller retries
                raise

    def linker(self, store: Store) -> Linker:
        """The per-page linker for sync runs under this mapping: each page is linked with
        the matcher of the day the stored links were derived on."""
        day = self._day
        return page_linker(store, lambda: day.matcher)

    def stale(self, settings: Settings) -> bool:
        """True when the mapping files changed on disk since this state was loaded."""
        return files_digest(settings) != self.digest


def page_linker(store: Store, matcher: Callable[[], Matcher]) -> Linker:
    """Links of each synced page: the store reads what they depend on (`Store.lineage`),
    `linking.link_page` derives them with the matcher current when the page is linked."""

    def link(items: Sequence[WorkItem]) -> dict[str, list[Link]]:
        return link_page(items, store.lineage(items), matcher()) if items else {}

    return link


def remap(store: Store, matcher: Matcher) -> RemapReport:
    """Re-derive every link from the stored items (`linking.derive`) in one store
    transaction, which writes only the changes."""
    links: dict[tuple[str, str], list[Link]] = {}

    def wanted_of(items: list[StoredItem]) -> set[LinkRow]:
        links.update(derive(items, matcher))
        return {(c, e, t, r) for (c, e), pairs in links.items() for t, r in pairs}

    done = store.relink(wanted_of)
    report = RemapReport(len(done.items), done.links, done.added, done.removed)
    report.per_tactic = tactic_counts(done.items, links)
    return report


def restatus(store: Store, settings: Settings) -> dict[str, int]:
    """Re-apply each connector's status names (`status_map`, `dropped_statuses`, its plug-in's
    vocabulary) to its stored items; returns how many changed per connector."""
    changed: dict[str, int] = {}
    for cc in settings.connectors:
        names = status_names(cc)
        changed[cc.name] = n = store.restatus(cc.name, names.categorise)
        if n:
            log.info("statuses.reapplied", connector=cc.name, items=n)
    return changed


def new_day(store: Store, settings: Settings, mapping: MappingState) -> RemapReport | None:
    """The daemon's daily job: re-derive date-relative links (`MappingState.new_day`) and,
    when they changed, recompute every signal."""
    report = mapping.new_day(store)
    if report is not None and (report.added or report.removed):
        recompute(store, settings.signals)
    return report


def after_sync(store: Store, settings: Settings, results: Sequence[RunResult]) -> None:
    """Recompute signals for the tactics whose items changed (all of them after deletions)."""
    touched: set[str] = set().union(*(r.touched_tactics for r in results))
    if any(r.deleted for r in results):
        report = recompute(store, settings.signals)
    elif touched:
        report = recompute(store, settings.signals, tactics=touched)
    else:
        return
    log.info(
        "signals.recomputed",
        touched=len(touched) or "all",
        as_of=report.as_of.isoformat(),
        tactics=report.tactics,
        key_results=report.key_results,
        objectives=report.objectives,
        snapshots_written=report.snapshots_written,
        seconds=round(report.seconds, 3),
    )


def signals_of(
    store: Store,
    cfg: SignalsConfig | None = None,
    as_of: date | None = None,
    tactics: Collection[str] | None = None,
) -> signals.SignalSet:
    """Signals of the whole tree, or (with `tactics`) of the objectives those tactics roll up
    into: the store reads the inputs, `signals.compute` derives the values."""
    as_of = as_of or signals.today()
    cfg = cfg or SignalsConfig()
    structure, counts, checkins = store.signal_inputs(as_of, cfg, tactics)
    return signals.compute(structure, counts, checkins, as_of, cfg)


def recompute(
    store: Store,
    cfg: SignalsConfig | None = None,
    as_of: date | None = None,
    tactics: Collection[str] | None = None,
) -> signals.RecomputeReport:
    """Compute (everything, or what the changed `tactics` affect) and have the store
    snapshot each subject whose values changed."""
    started = time.perf_counter()
    as_of = as_of or signals.today()
    if tactics is not None and not tactics:
        return signals.RecomputeReport(as_of, 0, 0, 0, 0, time.perf_counter() - started)
    computed = signals_of(store, cfg, as_of, tactics)
    subjects = signals.snapshot_subjects(computed)
    full = signals.reads_every_digest(computed)
    written = store.add_changed_snapshots(as_of, subjects, full=full)
    return signals.RecomputeReport(
        as_of,
        len(computed.tactics),
        len(computed.key_results),
        len(computed.objectives),
        written,
        time.perf_counter() - started,
    )


@dataclass
class Synced:
    """What one pass of the pipeline did: the runs it made, the connectors it skipped (why)."""

    results: list[RunResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


MappingSource = Callable[[], Awaitable[MappingState]]
Observer = Callable[[RunResult], Awaitable[None]]


async def sync_and_recompute(
    settings: Settings,
    store: Store,
    mapping: MappingState | MappingSource,
    only: str | None = None,
    *,
    role: str = "sync --once",
    locks: RunLocks | None = None,
    client: httpx.AsyncClient | None = None,
    limiters: Limiters | None = None,
    observe: Observer | None = None,
    keep_going: bool = False,
    watch: Watch | None = None,
    trigger: str = "manual",
) -> Synced:
    """Each connector (`only`, else every enabled one) once, concurrently, then the signals.

    A connector runs only while holding its run lock (`holding`; `locks` defaults to
    `run_locks(store, role)`, closed at the end); one held elsewhere is skipped, named in
    `skipped`. On SQLite the caller holds the store lock (`locks.store_lock`). `mapping` is
    the one to link with, or a coroutine function returning it, awaited inside the lock
    before each run (the daemon picks up edited files there); `observe` sees each result
    while the lock is still held. Signals are recomputed after the runs, outside the locks;
    with `keep_going` a failed recompute is logged (`after_sync.failed`), not raised. `watch`
    sees each run's live result and HTTP statistics as it starts (`okrsync.progress`).
    `trigger` is recorded with each run: "schedule" (the daemon's timer), "manual" (`sync
    --once`, `run --once`, the demo) or "webhook" (okrsync.hooks).
    """
    configs = selected(settings, only)
    settle_heap()
    held = locks if locks is not None else run_locks(store, role)
    step = _Step(settings, store, mapping, limiters or Limiters(), observe, watch, trigger)
    done = Synced()
    try:
        async with _client(client, needs_tls(configs)) as http:
            runs = await asyncio.gather(*(step.held(held, cc.name, http, done) for cc in configs))
    finally:
        if locks is None:
            held.close()
    done.results = [r for r in runs if r is not None]  # gather keeps config order
    await _recompute(store, settings, done.results, keep_going=keep_going)
    return done


@dataclass(frozen=True)
class _Step:
    """One connector's run inside the pipeline: hold it, link with the mapping, commit."""

    settings: Settings
    store: Store
    mapping: MappingState | MappingSource
    limiters: Limiters
    observe: Observer | None
    watch: Watch | None = None
    trigger: str = "manual"

    async def held(
        self, locks: RunLocks, name: str, client: httpx.AsyncClient, done: Synced
    ) -> RunResult | None:
        """The run, made while holding the connector; None (reason in `done.skipped`) when
        another process holds it."""
        async with holding(locks, self.store, name) as skip:
            if skip is not None:
                done.skipped[name] = skip
                return None
            return await self.run(name, client)

    async def run(self, name: str, client: httpx.AsyncClient) -> RunResult:
        mapping = self.mapping
        current = mapping if isinstance(mapping, MappingState) else await mapping()
        cc = self.settings.connector(name)
        relinked = await asyncio.to_thread(current.new_day, self.store)
        linker = current.linker(self.store)
        commit_items = self.settings.store.commit_items
        result = await run_connector(
            cc, self.store, client, self.limiters, linker, commit_items, self.watch, self.trigger
        )
        if relinked is not None and (relinked.added or relinked.removed):
            result.touched_tactics |= set(current.tree.tactics)  # a new day's links
        if self.observe is not None:
            await self.observe(result)
        return result


@asynccontextmanager
async def _client(client: httpx.AsyncClient | None, tls: bool) -> AsyncIterator[httpx.AsyncClient]:
    """The caller's HTTP client, else a new one (trusting CAs if `tls`) closed at the end."""
    if client is not None:
        yield client
        return
    async with new_client(tls=tls) as own:
        yield own


async def _recompute(
    store: Store, settings: Settings, results: Sequence[RunResult], *, keep_going: bool
) -> None:
    try:
        await asyncio.to_thread(after_sync, store, settings, results)
    except OkrsyncError as exc:
        if not keep_going:
            raise
        log.error(  # noqa: TRY400 - an expected error: the message is the story
            "after_sync.failed", connectors=[r.connector for r in results], error=str(exc)
        )


def run_locks(store: Store, role: str) -> RunLocks:
    """Per-connector locks: advisory locks on PostgreSQL; none needed under SQLite's."""
    return store.advisory_locks(role) if store.dialect == "postgresql" else NoRunLocks()


# (id(store), connector) held by this process now: a scheduled run and a webhook's run or
# deletion (okrsync.hooks.dispatch) of one connector never overlap here, whatever the locks
# (SQLite's NoRunLocks grant everything), so `reap_stale_runs` may take a run this process
# recorded as "running" for a dead one.
_HELD_HERE: set[tuple[int, str]] = set()
IN_FLIGHT_HERE = "a run of it is in flight in this process"


@asynccontextmanager
async def holding(locks: RunLocks, store: Store, connector: str) -> AsyncIterator[str | None]:
    """Hold `connector` for a run: yields None to go ahead, else why the run must skip.

    Every writer (daemon, replica, `sync --once`, demo, a webhook's deletion) runs a
    connector only inside this; within one process, one at a time per store.
    """
    here = (id(store), connector)
    if here in _HELD_HERE:
        yield IN_FLIGHT_HERE
        return
    _HELD_HERE.add(here)
    try:
        async with locks.hold(connector) as got:
            if not got:
                holder = await asyncio.to_thread(locks.holder, connector)
                yield f"held by {holder or 'another okrsync process'}"
                return
            live = await asyncio.to_thread(reap_stale_runs, store, connector)
            yield None if live is None else f"a run by {live} is still in flight"
    finally:
        _HELD_HERE.discard(here)


def reap_stale_runs(store: Store, connector: str) -> RunOwner | None:
    """Mark `connector`'s runs whose owner is gone as interrupted (`ABANDONED`).

    Called while holding the connector (advisory lock or the SQLite store lock): a run's
    owner is gone when it no longer holds that lock — on this host, when its pid is dead or
    belongs to another process (`locks.owner_alive`). Returns the owner of a run that is
    still alive (an okrsync that takes no lock), which the caller must not run beside.
    """
    gone: dict[int, str] = {}
    live: RunOwner | None = None
    for run_id, owner in store.running_runs(connector):
        if owner_alive(owner):
            live = owner
        else:
            gone[run_id] = f"{ABANDONED}; its owner was {owner}" if owner else ABANDONED
    n = store.abandon_runs(gone) if gone else 0
    if n:
        log.warning("sync.reaped_stale_runs", connector=connector, runs=n)
    if live is not None:
        log.warning("sync.owner_alive", connector=connector, owner=str(live))
    return live
