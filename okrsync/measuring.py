"""Measure a key result and record it: the one place both `okrsync measure` (cli_measure)
and the daemon (service: one job per key result with a source) go through.

    read_one      read a key result's source (okrsync.sources); a failure is an Outcome too
    record        the Outcome in the store: check-ins by `source:<kind>` and a run row
                  (`source:<key result>`), or a failed run row with its reason; logged as
                  `source.read` / `source.failed`
    measure_one   read → record → recompute the signals when a check-in was added (daemon)

Recording never touches earlier check-ins; a failure adds none (okrsync.store._sources).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from okrsync.errors import ConfigError

if TYPE_CHECKING:
    from okrsync.config import SignalsConfig
    from okrsync.okrfile import KeyResult
    from okrsync.sources import Reading
    from okrsync.store import Store

log = structlog.get_logger("okrsync.sources")


@dataclass(frozen=True)
class Outcome:
    """What one key result's source gave: readings, or the reason it gave none."""

    key_result: KeyResult
    readings: list[Reading]
    failure: str | None = None


@dataclass(frozen=True)
class Measured:
    """What recording an Outcome did: check-ins added and skipped (already recorded), or
    why nothing was recorded (`failure`: the source failed or the store refused it)."""

    outcome: Outcome
    added: int = 0
    skipped: int = 0
    failure: str | None = None


def kind_of(kr: KeyResult) -> str:
    return kr.metric_source.kind if kr.metric_source else "?"


async def read_one(
    kr: KeyResult, *, since: datetime | None, now: datetime, own_store_url: str
) -> Outcome:
    """Read `kr`'s source (all readings since `since`, else the current one)."""
    from okrsync.sources import SourceFailure, SourceSpec, read

    src = kr.metric_source
    if src is None:
        return Outcome(kr, [], "the key result has no source")
    spec = SourceSpec(src.kind, src.options, src.every_s, str(src.where))
    try:
        found = await read(spec, since=since, now=now, env=os.environ, own_store_url=own_store_url)
    except SourceFailure as exc:
        return Outcome(kr, [], exc.reason)
    return Outcome(kr, found)


def read_all(
    chosen: Sequence[KeyResult], *, since: datetime | None, now: datetime, own_store_url: str
) -> list[Outcome]:
    """Read every chosen key result's source, all at once (outside an event loop)."""

    async def run() -> list[Outcome]:
        tasks = [read_one(k, since=since, now=now, own_store_url=own_store_url) for k in chosen]
        return list(await asyncio.gather(*tasks))

    return asyncio.run(run())


def record(store: Store, o: Outcome) -> Measured:
    """Record one Outcome: a failed run row, or the readings as check-ins with an ok run."""
    kr, kind = o.key_result, kind_of(o.key_result)
    if o.failure:
        store.record_source_failure(kr.id, o.failure)
        log.warning("source.failed", key_result=kr.id, kind=kind, reason=o.failure)
        return Measured(o, failure=o.failure)
    try:
        done = store.record_readings(kr.id, kind, [(r.measured_at, r.value) for r in o.readings])
    except ConfigError as exc:  # the key result is not (or no longer) in the store
        log.warning("source.failed", key_result=kr.id, kind=kind, reason=f"not recorded: {exc}")
        return Measured(o, failure=f"not recorded: {exc}")
    log.info("source.read", key_result=kr.id, kind=kind,
             readings=len(o.readings), added=done.added)  # fmt: skip
    return Measured(o, done.added, done.skipped)


def recompute_signals(store: Store, cfg: SignalsConfig) -> int:
    """Recompute the signals after new check-ins; the snapshots written."""
    from okrsync.pipeline import recompute

    return recompute(store, cfg).snapshots_written


async def measure_one(
    store: Store, kr: KeyResult, *, signals: SignalsConfig, own_store_url: str
) -> Measured:
    """Read `kr`'s source now, record the outcome, and recompute the signals when a
    check-in was added (the store calls run in threads: the daemon's loop stays free)."""
    outcome = await read_one(kr, since=None, now=datetime.now(UTC), own_store_url=own_store_url)
    measured = await asyncio.to_thread(record, store, outcome)
    if measured.added:
        await asyncio.to_thread(recompute_signals, store, signals)
    return measured
