"""The sender: claim due outbox rows, send each on its channel, mark it sent, or schedule a
retry with exponential backoff, and give up (failed) after `max_attempts`.

A row is claimed with a lease (one conditional UPDATE in the store), so two replicas never
send one row at the same time; a sender that dies mid-send leaves the row to be taken again
once its lease lapses (at least once, never twice at once). Channels are sent to side by
side, each with its own timeout: a slow or failing channel delays only its own rows, and
nothing here ever raises into the scheduler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import structlog

from okrsync.config import Settings
from okrsync.config_notify import NotifyDefaults
from okrsync.notify.channels import SendFailed, http_client, send
from okrsync.notify.events import Event
from okrsync.store import OutboxRow, Store

log = structlog.get_logger("okrsync.notify")
MAX_BACKOFF_S = 6 * 3600
Observe = Callable[[str, str], None]  # (channel, outcome: sent | retry | failed)


def backoff(defaults: NotifyDefaults, attempts: int) -> timedelta:
    """The wait before the next attempt after `attempts` failed ones: base × 2^(n−1), capped."""
    seconds = defaults.retry_base_s * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, MAX_BACKOFF_S))


def lease_s(defaults: NotifyDefaults) -> float:
    """How long a claimed row is this sender's: longer than any one send may take."""
    return defaults.timeout_s * 3 + 30


@dataclass
class Sender:
    """Sends the due rows of the store's outbox; `settings` is read at every pass (reloads)."""

    store: Store
    settings: Callable[[], Settings]
    owner: str
    transport: httpx.AsyncBaseTransport | None = None
    observe: Observe | None = None

    async def run_once(self, limit: int = 50) -> int:
        """Claim the due rows and send them, channels side by side; the rows handled."""
        defaults = self.settings().notify_defaults
        rows = await asyncio.to_thread(
            self.store.notify_claim, self.owner, lease_s(defaults), limit
        )
        if not rows:
            return 0
        by_channel: dict[str, list[OutboxRow]] = {}
        for row in rows:
            by_channel.setdefault(row.channel, []).append(row)
        async with http_client(self.transport) as client:  # one pass, one connection pool
            await asyncio.gather(*(self._channel(rs, client) for rs in by_channel.values()))
        return len(rows)

    async def _channel(self, rows: list[OutboxRow], client: httpx.AsyncClient) -> None:
        for row in rows:
            await self._deliver(row, client)

    async def _deliver(self, row: OutboxRow, client: httpx.AsyncClient) -> None:
        settings = self.settings()
        channel = next((c for c in settings.notify if c.name == row.channel), None)
        if channel is None or not channel.enabled:
            await self._settle(row, "failed", "the channel is no longer configured (or disabled)")
            return
        try:
            await send(
                channel,
                Event.of(row.event),
                settings.web.public_url,
                timeout_s=settings.notify_defaults.timeout_s,
                client=client,
            )
        except SendFailed as exc:
            await self._failed(row, settings.notify_defaults, str(exc))
        else:
            await self._settle(row, "sent", None)

    async def _failed(self, row: OutboxRow, defaults: NotifyDefaults, error: str) -> None:
        if row.attempts >= defaults.max_attempts:
            await self._settle(row, "failed", error)
            return
        wait = backoff(defaults, row.attempts)
        await self._settle(row, "retry", error, datetime.now(UTC) + wait)

    async def _settle(
        self, row: OutboxRow, outcome: str, error: str | None, next_at: datetime | None = None
    ) -> None:
        status = "pending" if outcome == "retry" else outcome
        kept = await asyncio.to_thread(
            self.store.notify_settle, row.id, self.owner, status, next_at=next_at, error=error
        )
        fields = {"channel": row.channel, "kind": row.kind, "key": row.event_key}
        if outcome == "sent":
            log.info("notify.sent", **fields, attempt=row.attempts)
        else:
            log.warning(f"notify.{outcome}", **fields, attempt=row.attempts, error=error)
        if not kept:
            log.warning("notify.lease_lost", **fields)
        if self.observe is not None:
            self.observe(row.channel, outcome)
