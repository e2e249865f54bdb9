"""The daemon reads key results' sources on their schedules (docs/sources.md "In the
daemon"): `okrsync run` in a subprocess against the sandbox, with `file` sources."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from okrsync.config import load_settings
from okrsync.service import Service, open_service
from okrsync.store import Store
from tests.helpers import TREE, run_cli, write
from tests.integration.test_service import (
    all_runs,
    daemon,
    events,
    metric_values,
    ok_runs,
    wait_for,
    world,
)

NPS = """
[[key_result]]
id = "nps"
objective = "grow"
title = "NPS"
start = 0
target = 50
source = { kind = "file", path = "nps.csv", schedule = "every 1h" }
"""
BROKEN = """
[[key_result]]
id = "broken"
objective = "grow"
title = "Broken export"
start = 0
target = 10
source = { kind = "file", path = "missing.csv", schedule = "every 1h" }
"""
UNSET = """
[[key_result]]
id = "kpi"
objective = "grow"
title = "KPI from a database whose URL is not set here"
start = 0
target = 10
source = { kind = "sql", url_env = "OKRSYNC_TEST_KPI_UNSET", query = "select 1" }
"""


def mapping(tmp_path: Path, text: str) -> None:
    write(tmp_path / "okrs" / "main.toml", text)
    write(tmp_path / "okrs" / "nps.csv", "date,value\n2026-10-05,31\n2026-11-05,35\n")
    write(tmp_path / "okrs" / "latency.csv", "date,value\n2026-11-20,22\n")


def checkins(url: str, kr: str) -> list[tuple[str | None, float]]:
    store = Store.open(url, upgrade=False)
    try:
        return [(c.author, c.value) for c in store.checkins(kr)]
    finally:
        store.close()


def source_runs(url: str, kr: str) -> list[tuple[str, str | None]]:
    return [(r.status, r.error) for r in all_runs(url) if r.connector == f"source:{kr}"]


def test_daemon_reads_sources_at_start_and_a_broken_one_stops_nothing(tmp_path: Path) -> None:
    """Without `measure`, the daemon records the file source's reading as a check-in by
    source:file and recomputes signals; the broken source records a failed run and logs
    source.failed while connectors keep syncing and /readyz stays 200; metrics count both.
    A source whose variable is unset warns at start (file:line) and fails its reading."""
    log = tmp_path / "okrsync.log"
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    with world(tmp_path, schedule="every 2s") as (_sb, cfg, env):
        mapping(tmp_path, TREE + NPS + BROKEN + UNSET)
        with daemon(cfg, env, log) as d:
            d.port()  # listening: the store is upgraded
            wait_for(lambda: checkins(url, "nps") == [("source:file", 35.0)], "nps's reading")
            failed = wait_for(lambda: source_runs(url, "broken"), "broken's failed run")
            assert failed[0][0] == "failed"
            assert "missing.csv does not exist" in (failed[0][1] or "")
            assert [e for e in events(log) if e["event"] == "source.failed"]
            warned = [e["problem"] for e in events(log) if e["event"] == "source.env_missing"]
            assert len(warned) == 1
            assert "main.toml:" in warned[0]
            assert "OKRSYNC_TEST_KPI_UNSET" in warned[0]
            unset = wait_for(lambda: source_runs(url, "kpi"), "kpi's failed run")
            assert unset[0][0] == "failed"
            assert "OKRSYNC_TEST_KPI_UNSET" in (unset[0][1] or "")
            synced = len(ok_runs(url, "jira"))
            wait_for(lambda: len(ok_runs(url, "jira")) > synced + 1, "jira to keep syncing")
            assert d.proc.poll() is None
            assert d.get("/readyz").status_code == 200
            values = metric_values(d.get("/metrics").text)
            counter = "okrsync_source_readings_total"
            assert values[(counter, (("key_result", "nps"), ("status", "ok")))] == 1
            assert values[(counter, (("key_result", "broken"), ("status", "failed")))] == 1
            last = ("okrsync_source_last_success_timestamp_seconds", (("key_result", "nps"),))
            assert values[last] > 0
            history = run_cli("-c", str(cfg), "history", "nps", cwd=tmp_path)
            assert "outcome.progress 0.7" in history.stdout, history.stdout
            assert d.stop() == 0
    assert source_runs(url, "nps") == [("ok", None)]  # every 1h: one reading


def test_reload_adds_and_removes_source_jobs(tmp_path: Path) -> None:
    """SIGHUP with a source moved from nps to latency: latency is read soon after the
    reload, nps's job is gone (sources.planned names it removed)."""
    log = tmp_path / "okrsync.log"
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    with world(tmp_path) as (_sb, cfg, env):
        mapping(tmp_path, TREE + NPS)
        with daemon(cfg, env, log) as d:
            d.port()  # listening: the store is upgraded
            wait_for(lambda: checkins(url, "nps"), "nps's reading")
            moved = TREE.replace(
                "direction = ",
                'source = { kind = "file", path = "latency.csv", schedule = "every 1h" }\n'
                "direction = ",
            )
            write(tmp_path / "okrs" / "main.toml", moved + NPS.replace("source = ", "# "))
            d.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: checkins(url, "latency") == [("source:file", 22.0)], "latency")
            planned = [e for e in events(log) if e["event"] == "sources.planned"]
            assert planned[-1]["removed"] == ["nps"]
            assert planned[-1]["jobs"] == {"latency": 3600}
            assert d.stop() == 0
    assert checkins(url, "nps") == [("source:file", 35.0)]


def test_a_config_reload_keeps_the_source_jobs(tmp_path: Path) -> None:
    """The config half of SIGHUP drops the jobs of connectors no longer enabled, never the
    jobs of key results' sources."""
    with world(tmp_path) as (_sb, cfg, _env):
        mapping(tmp_path, TREE + NPS)
        service = open_service(load_settings(cfg), cfg)
        try:
            jobs = asyncio.run(jobs_after_config_reload(service, cfg))
        finally:
            service.locks.close()
            service.store.close()
    assert "source:nps" in jobs
    assert "jira" in jobs


async def jobs_after_config_reload(service: Service, cfg: Path) -> list[str]:
    service.scheduler = AsyncIOScheduler(timezone=UTC)
    service.scheduler.start(paused=True)
    service.schedule(service.enabled())
    service.plan_sources()
    service._adopt(load_settings(cfg))  # the config reload prunes jobs here
    jobs = [j.id for j in service.scheduler.get_jobs()]
    service.scheduler.shutdown(wait=False)
    return jobs


@pytest.mark.postgres
def test_two_replicas_on_postgres_read_a_source_once_per_interval(
    tmp_path: Path, pg_url: str
) -> None:
    """Two daemons on one PostgreSQL, both planning nps at start: one run row, and the
    other replica logs source.skipped (held, or read within half the interval)."""
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    with world(tmp_path, pg_url) as (_sb, cfg, env):
        mapping(tmp_path, TREE + NPS)
        cfg_b = write(
            tmp_path / "b.toml", cfg.read_text().replace(str(tmp_path / "okrsync.log"), str(log_b))
        )
        cfg.write_text(cfg.read_text().replace(str(tmp_path / "okrsync.log"), str(log_a)))
        with daemon(cfg, env, log_a) as a, daemon(cfg_b, env, log_b) as b:
            a.port(), b.port()  # both listening: both planned nps
            wait_for(
                lambda: [
                    e for e in events(log_a) + events(log_b) if e["event"] == "source.skipped"
                ],
                "one replica to skip nps",
            )
            assert a.stop() == 0
            assert b.stop() == 0
    assert source_runs(pg_url, "nps") == [("ok", None)]
    assert checkins(pg_url, "nps") == [("source:file", 35.0)]
