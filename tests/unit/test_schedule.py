"""The daemon's scheduler wiring: every configured schedule actually fires."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from okrsync.config import ConnectorConfig, Settings
from okrsync.service import open_service
from tests.helpers import TREE, write


def connector(name: str, schedule: str) -> ConnectorConfig:
    return ConnectorConfig(
        name=name,
        type="github",
        base_url="http://127.0.0.1:9",
        scope=["o/r"],
        token_env="NO_SUCH_TOKEN",
        schedule=schedule,
        jitter_s=0,
    )


@pytest.mark.parametrize("schedule", ["every 15m", "*/5 * * * *", "0 6 * * mon-fri"])
def test_every_schedule_kind_gets_a_next_run_time(tmp_path: Path, schedule: str) -> None:
    """A cron job is scheduled, not added paused (APScheduler 3 pauses on next_run_time=None)."""
    write(tmp_path / "mappings" / "okrs.toml", TREE)
    settings = Settings(
        store={"url": f"sqlite:///{tmp_path / 'o.db'}"},
        connectors=[connector("gh", schedule)],
        base_dir=tmp_path,
    )
    service = open_service(settings, None)

    async def scheduled() -> object:
        service.scheduler = AsyncIOScheduler()
        service.scheduler.start(paused=True)
        try:
            service.schedule(service.enabled())
            return service.scheduler.get_job("gh").next_run_time
        finally:
            service.scheduler.shutdown(wait=False)

    try:
        assert asyncio.run(scheduled()) is not None
    finally:
        service.store.close()
