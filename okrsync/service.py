"""The daemon behind `okrsync run`: scheduler, signals, reload, the web app (probes, API, UI).

    start   lock the SQLite file (one daemon per file) → upgrade the store → load and apply
            the mapping (a broken one at start: exit 2) → web app → one job per connector
    job     pipeline.sync_and_recompute for the connector: hold it (PostgreSQL: advisory
            lock, else skip) → run_connector → metrics → recompute the signals it touched
    source  one job per key result with a source (docs/sources.md "In the daemon"): every
            `schedule`, first soon after start; hold `source:<kr>` like a connector (skip when
            held, or read by another replica within half an interval) → measuring.measure_one
            → metrics. A failing source logs `source.failed`, records a failed run and leaves
            /readyz alone (sources are not connectors); re-planned when the mapping reloads
    SIGHUP  reload config and mapping; a broken file keeps the last good one, says so in the
            log (`*.reload_failed`), in /readyz and in `okrsync runs`
    SIGTERM/SIGINT  stop firing, cancel runs in flight (each records "interrupted"; the store
            commits or rolls back the page in flight whole), stop within
            service.shutdown_timeout_s, exit 0

`--once` runs every enabled connector once, concurrently, and exits 1 if any run failed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from okrsync import __version__, measuring
from okrsync.config import (
    ConnectorConfig,
    Settings,
    cron_fields,
    load_settings,
    parse_schedule,
)
from okrsync.errors import DEADLINE_EXCEEDED, ConfigError
from okrsync.locks import DAEMON, store_lock
from okrsync.logging import configure, quiet_defaults
from okrsync.metrics import Metrics
from okrsync.models import RunResult
from okrsync.okrfile import MetricSource, missing_env
from okrsync.pipeline import ABANDONED as ABANDONED
from okrsync.pipeline import (
    DAEMON_OVERRIDE,
    MappingRefused,
    MappingState,
    Synced,
    holding,
    new_day,
    run_locks,
    sync_and_recompute,
)
from okrsync.pipeline import reap_stale_runs as reap_stale_runs
from okrsync.store import Store, run_name
from okrsync.sync import Limiters, new_client, settle_heap
from okrsync.web.server import WebServer

if TYPE_CHECKING:
    from okrsync.hooks.dispatch import Dispatcher
    from okrsync.web.app import WebContext

log = structlog.get_logger("okrsync.service")
T = TypeVar("T")
MISFIRE_GRACE_S = 300
SOURCE_FIRST_JITTER_S = 5.0  # a source's first reading: within this many seconds of start
# /readyz reason codes, stable for monitoring (the detail text is for loopback callers only).
NOT_READY = (
    "store_unreachable",
    "config_invalid",
    "mapping_invalid",
    "connector_failing",
    "connector_deadline",  # the connector's last run ran past run_deadline_s
)


def runner_id() -> str:
    """`host:pid` of this process, as recorded beside its runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def trigger_for(cc: ConnectorConfig) -> BaseTrigger:
    """The APScheduler trigger of a connector's `schedule`, with its jitter (UTC)."""
    kind, value = parse_schedule(cc.schedule)
    jitter = int(cc.jitter_s) or None
    if kind == "interval":
        return IntervalTrigger(seconds=int(value), jitter=jitter, timezone=UTC)
    return CronTrigger(**cron_fields(str(value)), jitter=jitter, timezone=UTC)


class _ToStructlog(logging.Handler):
    """Route APScheduler's stdlib warnings (missed or skipped runs) into the JSON log."""

    def emit(self, record: logging.LogRecord) -> None:
        log.warning("scheduler.notice", message=record.getMessage(), logger=record.name)


# Fixed jobs' ids hold a colon, which a connector name (its job's id) never does.
NEW_DAY_JOB = "okrsync:new_day"


class Service:
    """One daemon process: the store, the last good mapping, the jobs and their runs."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        mapping: MappingState,
        config_path: Path | None,
        role: str = DAEMON,
    ) -> None:
        self.settings, self.store, self.mapping = settings, store, mapping
        self.config_path = config_path
        self.reload_errors: dict[str, str] = {}
        self.metrics = Metrics()
        self.locks = run_locks(store, role)
        self.limiters = Limiters()
        self.client: httpx.AsyncClient | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.running: set[asyncio.Task[Any]] = set()
        self.stopping = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self.crashed: set[str] = set()
        self.sources: dict[str, MetricSource] = {}  # key result id → its planned source
        self.hooks: Dispatcher | None = None  # webhooks in, with the web app (docs/webhooks.md)
        # Concurrent runs all find edited files stale: one reloads, the others wait for it.
        self._mapping_lock = asyncio.Lock()

    # -- runs ----------------------------------------------------------------------------
    def enabled(self) -> list[ConnectorConfig]:
        return [c for c in self.settings.connectors if c.enabled]

    async def job(self, name: str, trigger: str = "schedule") -> RunResult | None:
        """One run of connector `name` (scheduled unless `trigger` says otherwise); never
        raises (the scheduler must live)."""
        done = await self._run(name, trigger)
        return done.results[0] if done is not None and done.results else None

    async def hinted_run(self, name: str) -> bool:
        """A webhook's run of `name` (okrsync.hooks.dispatch); False when another run held
        the connector, so the dispatcher tries again after it."""
        done = await self._run(name, "webhook")
        return done is None or not done.skipped

    async def _run(self, name: str, trigger: str) -> Synced | None:
        structlog.contextvars.bind_contextvars(connector=name)
        return await self._guarded(self._locked_run(name, trigger), "sync", connector=name)

    async def _guarded(self, work: Awaitable[T], what: str, **ids: str) -> T | None:
        """Await a scheduled job's `work` as a running task (shutdown waits for it); never
        raises: a cancel logs `<what>.interrupted`, a crash `<what>.crashed` (a connector's
        crash also marks it for `/readyz`)."""
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - always inside a task
        self.running.add(task)
        try:
            return await work
        except asyncio.CancelledError:
            log.info(f"{what}.interrupted", **ids)
            return None
        except Exception as exc:
            log.exception(f"{what}.crashed", error=str(exc), **ids)
            if "connector" in ids:
                self.crashed.add(ids["connector"])
            return None
        finally:
            self.running.discard(task)

    async def _locked_run(self, name: str, trigger: str) -> Synced:
        if self.client is None:
            self.client = new_client()
        done = await sync_and_recompute(
            self.settings,
            self.store,
            self._current_mapping,
            name,
            locks=self.locks,
            client=self.client,
            limiters=self.limiters,
            observe=self._observe,
            keep_going=True,  # a failed derivation must not stop the next runs
            trigger=trigger,
        )
        for skipped, why in done.skipped.items():
            self.metrics.skipped.labels(skipped).inc()
            log.info("sync.skipped_locked", connector=skipped, reason=why)
        return done

    async def _current_mapping(self) -> MappingState:
        """The mapping a run links with: edited files apply at the next cycle."""
        async with self._mapping_lock:
            if await asyncio.to_thread(self.mapping.stale, self.settings):
                await self.reload_mapping(self.settings)
        return self.mapping

    async def _observe(self, result: RunResult) -> None:
        """Metrics of a run, taken while it still holds its connector."""
        self.metrics.observe(result)
        newest = await asyncio.to_thread(newest_updated, self.store, result.connector)
        self.metrics.newest_updated(result.connector, newest)

    async def once(self) -> int:
        """Run every enabled connector once, concurrently; 1 if any run failed."""
        names = [c.name for c in self.enabled()]
        results = await asyncio.gather(*(self._tracked(n) for n in names))
        if self.stopping.is_set():
            return 0
        failed = [r.connector for r in results if r is not None and r.status != "ok"]
        failed += sorted(self.crashed)
        log.info("service.once_done", runs=len(results), failed=failed)
        return 1 if failed else 0

    def plan_new_day(self) -> None:
        """The daily job re-deriving date-relative links (`iteration = "@current"`)."""
        assert self.scheduler is not None  # noqa: S101 - started in serve()
        when = CronTrigger(hour=0, minute=0, second=5, timezone=UTC)
        self.scheduler.add_job(self.day_job, when, id=NEW_DAY_JOB, replace_existing=True)

    async def day_job(self) -> None:
        """Re-derive date-relative links once the day has changed (`pipeline.new_day`)."""
        work = asyncio.to_thread(new_day, self.store, self.settings, self.mapping)
        await self._guarded(work, "new_day")

    async def _tracked(self, name: str) -> RunResult | None:
        return await asyncio.create_task(self.job(name, "manual"))

    # -- scheduling ----------------------------------------------------------------------
    def schedule(self, configs: Sequence[ConnectorConfig]) -> None:
        """(Re)create the job of each connector in `configs`."""
        assert self.scheduler is not None  # noqa: S101 - started in serve()
        for cc in configs:
            # APScheduler 3 adds a job paused when `next_run_time=None` is passed: a cron job
            # must leave it out to get its first fire time from its trigger.
            first = _first_run(cc)
            start: dict[str, datetime] = {} if first is None else {"next_run_time": first}
            self.scheduler.add_job(
                self.job,
                trigger_for(cc),
                args=[cc.name],
                id=cc.name,
                name=cc.name,
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=MISFIRE_GRACE_S,
                **start,
            )
        if configs:
            log.info("scheduler.jobs", jobs={c.name: c.schedule for c in configs})

    # -- sources (docs/sources.md "In the daemon") -----------------------------------------
    def plan_sources(self) -> None:
        """One job per key result with a source: add, re-plan (changed) and remove jobs."""
        if self.scheduler is None:
            return
        tree = self.mapping.tree
        want = {k.id: k.metric_source for k in tree.key_results.values() if k.metric_source}
        gone = sorted(self.sources.keys() - want.keys())
        for kr_id in gone:
            if self.scheduler.get_job(run_name(kr_id)) is not None:
                self.scheduler.remove_job(run_name(kr_id))
        new = sorted(
            k for k, s in want.items() if _source_key(self.sources.get(k)) != _source_key(s)
        )
        for kr_id in new:
            self._plan_source(kr_id, want[kr_id])
        self.sources = want
        if new or gone:
            log.info("sources.planned", jobs={k: want[k].every_s for k in new}, removed=gone)
            for problem in missing_env(tree, os.environ):
                log.warning("source.env_missing", problem=problem)

    def _plan_source(self, kr_id: str, src: MetricSource) -> None:
        assert self.scheduler is not None  # noqa: S101 - planned from serve()
        soon = timedelta(seconds=random.uniform(0, SOURCE_FIRST_JITTER_S))
        first = datetime.now(UTC) + soon
        self.scheduler.add_job(
            self.source_job,
            IntervalTrigger(seconds=src.every_s, jitter=src.every_s // 20 or None, timezone=UTC),
            args=[kr_id],
            id=run_name(kr_id),
            name=run_name(kr_id),
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=MISFIRE_GRACE_S,
            next_run_time=first,
        )

    async def source_job(self, kr_id: str) -> measuring.Measured | None:
        """One scheduled reading of key result `kr_id`'s source; never raises."""
        return await self._guarded(self._locked_measure(kr_id), "source", key_result=kr_id)

    async def _locked_measure(self, kr_id: str) -> measuring.Measured | None:
        kr = self.mapping.tree.key_results.get(kr_id)
        if kr is None or kr.metric_source is None:
            return None
        name = run_name(kr_id)
        async with holding(self.locks, self.store, name) as busy:
            if busy is None and await asyncio.to_thread(
                read_lately, self.store, name, kr.metric_source.every_s
            ):
                busy = "read within half its interval (by another replica, or before a restart)"
            if busy is not None:
                log.info("source.skipped", key_result=kr_id, reason=busy)
                return None
            done = await measuring.measure_one(
                self.store,
                kr,
                signals=self.settings.signals,
                own_store_url=self.settings.store_url(),
            )
        self.metrics.source_read(kr_id, ok=done.failure is None)
        return done

    async def serve(self) -> int:
        """Run the jobs until SIGTERM/SIGINT; return the exit code."""
        web = await self._start_web()
        self.scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True})
        self.scheduler.start()
        self.schedule(self.enabled())
        self.plan_sources()
        self.plan_new_day()
        # Always planned: a pass without channels does nothing, and a reload may add some.
        from okrsync.notify.daemon import plan as plan_notify

        plan_notify(self)
        await self.stopping.wait()
        await self.shutdown(web)
        return 0

    async def _start_web(self) -> WebServer | None:
        """The web app (okrsync.web: probes, API, dashboard) on [service] host:port."""
        svc = self.settings.service
        if not svc.enabled:
            return None
        from okrsync.web.access import check_bind
        from okrsync.web.app import create_app

        check_bind(self.settings, svc.host, "service.host")
        server = WebServer(create_app(self.web_context()), svc.host, svc.port)
        try:
            port = await server.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {svc.host}:{svc.port}: {exc.strerror}; "
                "set service.port to a free port (0 = any) or service.enabled = false"
            ) from None
        log.info("service.listening", host=svc.host, port=port, url=server.url)
        return server

    def web_context(self) -> WebContext:
        """What the daemon's web app reads: this service, its store, and the webhook
        receiver (okrsync.hooks.dispatch) whose runs go through `hinted_run`."""
        from okrsync.hooks.dispatch import Dispatcher
        from okrsync.web.app import WebContext

        self.hooks = Dispatcher(
            self.store, lambda: self.settings, self.hinted_run, self.locks, self.metrics
        )
        return WebContext(self.settings, self.store, self, hooks=self.hooks)

    async def shutdown(self, web: WebServer | None) -> None:
        """Stop firing jobs, cancel runs in flight and wait for their records."""
        timeout = self.settings.service.shutdown_timeout_s
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.hooks is not None:
            await self.hooks.close()
        await self.cancel_runs(timeout)
        if web is not None:
            await web.stop()
        if self.client is not None:
            await self.client.aclose()
        log.info("service.stopped")

    async def cancel_runs(self, grace_s: float) -> None:
        """Cancel every run in flight and wait up to `grace_s` for their records."""
        tasks = set(self.running)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            if pending:
                log.error("service.stop_timeout", still_running=len(pending), grace_s=grace_s)

    # -- signals ---------------------------------------------------------------------------
    def install_signals(self, *, reload: bool) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        if reload:
            loop.add_signal_handler(signal.SIGHUP, self._spawn_reload)

    def request_stop(self, sig: signal.Signals) -> None:
        log.info("service.stopping", signal=sig.name)
        self.stopping.set()
        for task in list(self.running):
            task.cancel()

    def _spawn_reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reload(self) -> None:
        """SIGHUP: re-read config and mapping files; keep the last good ones when broken."""
        log.info("service.reloading")
        try:
            settings = await asyncio.to_thread(load_settings, self.config_path)
            await asyncio.to_thread(settings.check_credentials)
        except ConfigError as exc:
            self.reload_errors["config"] = str(exc)
            log.error(  # noqa: TRY400 - a bad file is expected input: the message is the story
                "config.reload_failed", error=str(exc), hint="keeping the last good config"
            )
            settings = self.settings
        else:
            self.reload_errors.pop("config", None)
            self._adopt(settings)
        await self.reload_mapping(settings)

    def _adopt(self, settings: Settings) -> None:
        if settings.store_url() != self.settings.store_url():
            log.warning("config.restart_needed", key="store.url", hint="restart to switch stores")
        changed = [c for c in settings.connectors if c not in self.settings.connectors]
        self.settings = settings
        if self.scheduler is not None:
            keep = {c.name for c in self.enabled()}
            for job in self.scheduler.get_jobs():
                if job.func == self.job and job.id not in keep:  # connector jobs only
                    job.remove()
            self.schedule([c for c in changed if c.enabled])
        log.info("config.reloaded", changed=[c.name for c in changed])

    async def reload_mapping(self, settings: Settings) -> None:
        try:
            mapping = await asyncio.to_thread(MappingState.load, settings)
            await asyncio.to_thread(apply_mapping, mapping, self.store, settings)
        except ConfigError as exc:
            self.reload_errors["mapping"] = str(exc)
            self.metrics.mapping_valid.set(0)
            event = "mapping.reload_refused" if isinstance(exc, MappingRefused) else None
            log.error(  # noqa: TRY400 - a bad file is expected input: the message is the story
                event or "mapping.reload_failed",
                error=str(exc),
                hint="keeping the last good mapping",
            )
            return
        self.mapping = mapping
        self.reload_errors.pop("mapping", None)
        self.metrics.mapping_valid.set(1)
        log.info("mapping.reloaded", files=len(mapping.tree.files))
        self.plan_sources()

    # -- what the probes read (okrsync.web.app: /readyz, /metrics) -------------------------
    def not_ready_reasons(self) -> list[tuple[str, str]]:
        """Why this daemon is not ready, as (code from NOT_READY, detail); empty: ready."""
        if not self.store.ping():
            return [("store_unreachable", "store unreachable")]
        reasons = [
            (f"{what}_invalid", f"{what} reload failed: {msg}")
            for what, msg in self.reload_errors.items()
        ]
        limit = self.settings.service.ready_max_failures
        for cc in self.enabled():
            last = self.store.runs(cc.name, limit=limit)
            finished = [r for r in last if r.status != "running"]
            if len(finished) >= limit and all(r.status == "failed" for r in finished):
                detail = f"connector {cc.name}: last {limit} runs failed: {last[0].error}"
                reasons.append(("connector_failing", detail))
            if finished and (finished[0].error or "").startswith(DEADLINE_EXCEEDED):
                detail = f"connector {cc.name}: last run failed: {finished[0].error}"
                reasons.append(("connector_deadline", detail))
        return reasons

    # -- start-up ------------------------------------------------------------------------
    async def seed_metrics(self) -> None:
        """Declare every connector's series; take last successes and ages from the store."""
        names = [c.name for c in self.enabled()]
        self.metrics.declare(names)
        self.metrics.mapping_valid.set(1)
        for name in names:
            ended = await asyncio.to_thread(last_ok_end, self.store, name)
            if ended is not None:
                self.metrics.last_success(name, ended.timestamp())
            newest = await asyncio.to_thread(newest_updated, self.store, name)
            self.metrics.newest_updated(name, newest)
        for kr in self.mapping.tree.key_results.values():
            if kr.metric_source is not None:
                ended = await asyncio.to_thread(last_ok_end, self.store, run_name(kr.id))
                self.metrics.declare_source(kr.id, ended)


def last_ok_end(store: Store, name: str) -> datetime | None:
    """When the newest successful run of `name` (a connector, or `source:<kr>`) ended,
    among its last 100 runs."""
    rows = store.runs(name, limit=100)
    return next((r.ended_at for r in rows if r.status == "ok" and r.ended_at is not None), None)


def _first_run(cc: ConnectorConfig) -> datetime | None:
    """Interval jobs run at start-up, then on schedule; cron jobs wait for their time."""
    return datetime.now(UTC) if parse_schedule(cc.schedule)[0] == "interval" else None


def _source_key(src: MetricSource | None) -> object:
    """What makes a source's job change: its kind, options and interval (not its line)."""
    return None if src is None else (src.kind, repr(src.options), src.every_s)


def read_lately(store: Store, name: str, every_s: int) -> bool:
    """Whether source run `name` ran within half its interval (so replicas, each firing on
    its own clock, read a source once per interval); asked while holding it."""
    last = store.runs(name, limit=1)
    since = datetime.now(UTC) - timedelta(seconds=every_s / 2)
    return bool(last) and _aware(last[0].started_at) > since


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def newest_updated(store: Store, connector: str) -> datetime | None:
    """The newest stored `updated` of a connector's items."""
    return store.newest_updated(connector)


def configure_logging(settings: Settings) -> None:
    """JSON lines on stdout (or the configured file); APScheduler notices included."""
    s = settings.logging
    configure(s.level, s.format, stream=sys.stdout, file=s.file)
    quiet_defaults()
    sched = logging.getLogger("apscheduler")
    sched.handlers[:] = [_ToStructlog(level=logging.WARNING)]
    sched.propagate = False


def apply_mapping(mapping: MappingState, store: Store, settings: Settings) -> None:
    """Apply a mapping as the daemon does: an empty set is taken (it archives nothing over
    an empty store), but never one that archives more than half of the stored tree."""
    mapping.apply(store, settings, allow_empty=True, override=DAEMON_OVERRIDE)


def open_service(settings: Settings, config_path: Path | None, role: str = DAEMON) -> Service:
    """Upgrade the store and load the mapping (ConfigError → exit 2)."""
    url = settings.store_url()
    store = Store.open(url, upgrade=False, busy_timeout_ms=settings.store.busy_timeout_ms)
    try:
        with store.schema_lock():
            store.upgrade()
        mapping = MappingState.load(settings)
        apply_mapping(mapping, store, settings)
    except BaseException:
        store.close()
        raise
    return Service(settings, store, mapping, config_path, role)


def run(config_path: Path | None, *, once: bool) -> int:
    """`okrsync run [--once]`: the exit code (0 ok, 1 a run failed / lock held, 2 bad input)."""
    settings = load_settings(config_path)
    configure_logging(settings)
    if not [c for c in settings.connectors if c.enabled]:
        raise ConfigError("no enabled connectors; add a [[connectors]] section to the config")
    settings.check_credentials()  # a missing token: exit 2 with file:line, before any lock
    role = f"{DAEMON} --once" if once else DAEMON
    with store_lock(settings.store_url(), role):
        service = open_service(settings, config_path, role)
        try:
            return asyncio.run(_main(service, once=once))
        finally:
            service.locks.close()
            service.store.close()


async def _main(service: Service, *, once: bool) -> int:
    settle_heap()
    service.install_signals(reload=not once)
    await service.seed_metrics()
    log.info(
        "service.started",
        version=__version__,
        pid=os.getpid(),
        runner=runner_id(),
        once=once,
        connectors=[c.name for c in service.enabled()],
        store=service.store.dialect,
    )
    if once:
        return await service.once()
    return await service.serve()
