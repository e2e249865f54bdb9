"""The daemon's notification job: scan what changed into the outbox, then send what is due.

    scan  snapshots after the "snapshot" watermark (each with its subject's previous one) →
          status, flag and forecast events; sync runs after the "run" watermark → connector
          failing / recovered; once an hour, key results without a check-in → reminders.
          Each event goes to the channels that route its kind and objective, queued
          insert-if-absent, THEN the watermarks move (a crash in between re-derives the same
          keys). A watermark moves only past rows older than GRACE_S (finished, for runs), so
          a row a slower transaction commits late, with a lower id, is still examined.
    send  okrsync.notify.outbox.Sender: claim, send, settle.

Runs made by `okrsync sync --once` or another replica are seen too: events come from the
store's rows, not from this process's runs. The job never raises into the scheduler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from okrsync.config import Settings
from okrsync.config_notify import NotifyChannel
from okrsync.notify.events import (
    Event,
    RunFact,
    Silence,
    reminder_events,
    run_events,
    snapshot_events,
)
from okrsync.notify.outbox import Observe, Sender
from okrsync.signal_types import Structure
from okrsync.store import Store, SyncRunRow

if TYPE_CHECKING:
    from okrsync.service import Service

log = structlog.get_logger("okrsync.notify")
GRACE_S = 60.0  # how late a row with a lower id may still commit
STUCK_RUN = timedelta(days=1)  # a run "running" this long no longer holds the run watermark
REMINDER_EVERY_S = 3600.0
JOB_ID = "okrsync:notify"  # a colon: never a connector's job id (its name)


def route(events: Iterable[Event], channels: Sequence[NotifyChannel]) -> list[dict[str, Any]]:
    """One outbox row per event and channel that wants it (its events and objectives)."""
    return [
        {"event_key": e.key, "channel": c.name, "kind": e.kind, "event": e.as_json()}
        for e in events
        for c in channels
        if c.wants(e.kind, e.objective_id)
    ]


def _snapshot_pass(store: Store, structure: Structure, cutoff: datetime) -> tuple[list[Event], int]:
    after = store.notify_watermark("snapshot")
    pairs = store.notify_snapshots(after)
    upto = after
    for _, (sid, snap) in pairs:
        if snap.computed_at > cutoff:
            break
        upto = sid
    return snapshot_events(pairs, structure), upto


def _settled(run: SyncRunRow, cutoff: datetime) -> bool:
    if run.status == "running":
        return run.started_at < cutoff - STUCK_RUN
    return (run.ended_at or run.started_at) <= cutoff


def _run_pass(store: Store, failures: int, cutoff: datetime) -> tuple[list[Event], int]:
    after = store.notify_watermark("run")
    rows = store.notify_runs(after, history=max(failures, 100))  # 100: the streak shown
    facts = [
        RunFact(r.id, r.connector, r.status, r.error, r.ended_at, tuple(prev))
        for r, prev in rows
        if r.status in ("ok", "failed") and ":" not in r.connector  # not a source:<kr> run
    ]
    upto = after
    for r, _ in rows:
        if not _settled(r, cutoff):
            break
        upto = r.id
    return run_events(facts, failures), upto


def _reminders(store: Store, structure: Structure, today: date, days: int) -> list[Event]:
    latest = store.latest_checkins()
    silences = []
    for kr in structure.key_results.values():
        obj = structure.objectives[kr.objective_id]
        c = latest.get(kr.id)
        at = c.recorded_at if c else None
        silences.append(Silence(kr.id, c.id if c else None, at, obj.start, obj.end))
    return reminder_events(silences, structure, today, days)


def scan(store: Store, settings: Settings, *, reminders: bool = True) -> int:
    """Derive the events since the watermarks, queue them for their channels, then move the
    watermarks; how many outbox rows were new. Nothing is read without a channel."""
    channels = [c for c in settings.notify if c.enabled]
    if not channels:
        return 0
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=GRACE_S)
    structure = store.structure()
    d = settings.notify_defaults
    snap_events, snap_upto = _snapshot_pass(store, structure, cutoff)
    run_evts, run_upto = _run_pass(store, d.connector_failures, cutoff)
    events = snap_events + run_evts
    if reminders:
        events += _reminders(store, structure, now.date(), d.checkin_reminder_days)
    added = store.notify_enqueue(route(events, channels))
    store.notify_advance("snapshot", snap_upto)
    store.notify_advance("run", run_upto)
    if added:
        log.info("notify.queued", rows=added, events=len(events))
    return added


class Notifier:
    """One process's notification job: `tick()` scans, then sends what is due."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        owner: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        observe: Observe | None = None,
    ) -> None:
        self.store, self.settings = store, settings
        self.sender = Sender(store, settings, owner, transport, observe)
        self._reminded_at = -REMINDER_EVERY_S

    async def tick(self) -> int:
        """Scan, then send; the rows sent (or retried, or failed). Never raises; does
        nothing while no channel is configured."""
        if not self.settings().notify:
            return 0
        queued = handled = 0
        try:
            due = time.monotonic() - self._reminded_at >= REMINDER_EVERY_S
            queued = await asyncio.to_thread(scan, self.store, self.settings(), reminders=due)
            if due:
                self._reminded_at = time.monotonic()
        except Exception as exc:  # a scan must not stop sending, nor the scheduler
            log.warning("notify.scan_failed", error=str(exc), error_type=type(exc).__name__)
        try:
            handled = await self.sender.run_once()
        except Exception as exc:
            log.warning("notify.send_pass_failed", error=str(exc), error_type=type(exc).__name__)
        log.debug("notify.pass", queued=queued, handled=handled)
        return handled


def plan(service: Service) -> Notifier | None:
    """Add the notification job to the daemon's scheduler (every `[notify_defaults]
    every_s`, first soon after start). The job reads the service's current settings at every
    pass, so channels a reload adds or removes apply (a pass without channels does nothing)."""
    from apscheduler.triggers.interval import IntervalTrigger

    from okrsync.service import MISFIRE_GRACE_S, runner_id

    if service.scheduler is None:
        return None
    notifier = Notifier(
        service.store,
        lambda: service.settings,
        runner_id(),
        observe=service.metrics.notification,
    )

    async def job() -> None:
        await service._guarded(notifier.tick(), "notify")

    every = service.settings.notify_defaults.every_s
    service.scheduler.add_job(
        job,
        IntervalTrigger(seconds=every, timezone=UTC),
        id=JOB_ID,
        name=JOB_ID,
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=MISFIRE_GRACE_S,
        next_run_time=datetime.now(UTC) + timedelta(seconds=1),
    )
    log.info("notify.planned", channels=[c.name for c in service.settings.notify], every_s=every)
    return notifier
