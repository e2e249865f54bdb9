"""The daemon's side of webhooks in (docs/webhooks.md): coalesced runs, deletions at once.

    hint(connector, deleted)   a verified delivery: delete `deleted` now, and ask for a run
    lane (one per connector)   waits `webhook_coalesce_s` (then, if held, for the connector),
                               then runs it once with trigger "webhook"; a hint that arrives
                               meanwhile joins that run, one during it causes exactly one more
    deletions                  held like a run (`pipeline.holding`): the items are marked
                               deleted and the signals of their tactics recomputed, before
                               the lane's run (both take the lane's gate, first come first)

A run or a deletion that finds the connector held (a scheduled run in flight, here or on
another replica) waits for it: quietly while the store records a run of it as running (a
real attempt at least every RETRY_LOUD_S, which also reaps a crashed owner's run), then
again with a short backoff. A hint is never lost.
`Dispatcher` is the `okrsync.hooks.HookSink` the web routes hand deliveries to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from okrsync.errors import OkrsyncError
from okrsync.pipeline import holding, recompute

if TYPE_CHECKING:
    from okrsync.config import ConnectorConfig, Settings
    from okrsync.locks import RunLocks
    from okrsync.metrics import Metrics
    from okrsync.store import Store

log = structlog.get_logger("okrsync.hooks")
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 2.0
RETRY_QUIET_S = 0.25  # how often a waiting hint looks whether the run in flight ended
RETRY_LOUD_S = 30.0  # a real attempt (logged when skipped) at least this often
Runner = Callable[[str], Awaitable[bool]]  # a webhook run of a connector; False: it was held


@dataclass
class _Lane:
    """One connector's queue: whether a run is wanted, the task that runs it, the gate that
    orders runs and deletions."""

    wanted: bool = False
    task: asyncio.Task[None] | None = None
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)


class Dispatcher:
    """Verified deliveries → deletions now and one coalesced run per burst, per connector."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        run: Runner,
        locks: RunLocks,
        metrics: Metrics | None = None,
    ) -> None:
        self.store, self.settings, self.run, self.locks = store, settings, run, locks
        self.metrics = metrics
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- what the routes ask (okrsync.hooks.HookSink) ---------------------------------------
    def connectors(self) -> Sequence[ConnectorConfig]:
        return [c for c in self.settings().connectors if c.enabled]

    def stored_secrets(self, connector: str) -> Mapping[str, str]:
        return self.store.webhook_secrets(connector)

    def handshake_open(self, connector: str, resource: str) -> bool:
        return self.store.webhook_handshake_open(connector, resource=resource)

    def accept_handshake(self, connector: str, resource: str, secret: str) -> bool:
        return self.store.accept_webhook_handshake(connector, secret, resource=resource)

    def first_delivery(self, connector: str, delivery_id: str) -> bool:
        return self.store.remember_webhook_delivery(connector, delivery_id)

    def count(self, connector: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook(connector, outcome)

    def hint(self, connector: str, deleted: Sequence[str]) -> None:
        """Delete `deleted` at once (in order before the run) and want a run of `connector`."""
        if self._closed:
            return
        lane = self._lanes.setdefault(connector, _Lane())
        if deleted:
            self._spawn(self._delete(connector, lane, tuple(deleted)))
        lane.wanted = True
        if lane.task is None or lane.task.done():
            lane.task = self._spawn(self._drain(connector, lane))

    # -- the daemon ---------------------------------------------------------------------
    async def idle(self) -> None:
        """Wait until every deletion and run asked so far is done (tests, shutdown)."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.wait(pending)

    async def close(self) -> None:
        """Cancel the waiting and running work (shutdown: the runs record "interrupted");
        no hint is taken after."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _window(self, connector: str) -> float:
        found = [c for c in self.settings().connectors if c.name == connector]
        return found[0].webhook_coalesce_s if found else 0.0

    async def _drain(self, connector: str, lane: _Lane) -> None:
        """Runs while wanted: wait the window (hints coalesce), then one run; a hint during
        the run wants one more."""
        while lane.wanted and not self._closed:
            await asyncio.sleep(self._window(connector))
            async with lane.gate:
                await self._until_free(connector, lambda: self._run_wanted(connector, lane))

    async def _run_wanted(self, connector: str, lane: _Lane) -> bool:
        """One attempt at the lane's run. `wanted` is cleared here, as the attempt starts,
        not before the wait for the connector: hints that arrive while a scheduled run holds
        it join this run (it has not pulled yet); only those during the run want another."""
        lane.wanted = False
        return await self.run(connector)

    async def _delete(self, connector: str, lane: _Lane, ids: tuple[str, ...]) -> None:
        async with lane.gate:
            try:
                await self._until_free(connector, lambda: self._held_delete(connector, ids))
            except OkrsyncError as exc:  # the store failed: the census catches up later
                log.error("webhook.delete_failed", connector=connector, error=str(exc))  # noqa: TRY400 - the message is the story

    async def _held_delete(self, connector: str, ids: tuple[str, ...]) -> bool:
        async with holding(self.locks, self.store, connector) as busy:
            if busy is not None:
                return False
            await asyncio.to_thread(self._apply_deletions, connector, ids)
            return True

    def _apply_deletions(self, connector: str, ids: tuple[str, ...]) -> None:
        """Mark the items deleted and recompute the signals of the tactics they counted for."""
        tactics = self.store.linked_tactics(connector, ids)
        gone = self.store.delete_items(connector, ids)
        report = recompute(self.store, self.settings().signals, tactics=tactics) if gone else None
        log.info(
            "webhook.deleted",
            connector=connector,
            items=gone,
            tactics=len(tactics),
            snapshots_written=report.snapshots_written if report else 0,
        )

    async def _until_free(self, connector: str, attempt: Callable[[], Awaitable[bool]]) -> None:
        """Repeat `attempt` until it was not held elsewhere: between attempts, wait quietly
        while a run of `connector` is recorded as running, then back off up to RETRY_MAX_S."""
        delay = RETRY_FIRST_S
        while not await attempt() and not self._closed:
            await self._while_running(connector)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _while_running(self, connector: str) -> None:
        """Return once no run of `connector` is recorded as running, or after RETRY_LOUD_S
        (the store is polled; another replica's run ends there too)."""
        for _ in range(int(RETRY_LOUD_S / RETRY_QUIET_S)):
            if not await asyncio.to_thread(self.store.running_runs, connector):
                return
            await asyncio.sleep(RETRY_QUIET_S)
