"""`okrsync measure` with a prometheus source, through `okrsync.sources.read`'s dispatch, on
the sandbox's fake Prometheus query API on 127.0.0.1: one reading now, a backfill at `step`
recorded once, and a failure that keeps the last good value."""

from __future__ import annotations

from pathlib import Path

from okrsync.sandbox import Sandbox
from okrsync.store import Store
from tests.helpers import run_cli, write

CONFIG = """
[store]
url = "sqlite:///data/okrsync.db"

[mappings]
paths = ["okrs"]
"""
OKRS = """
[[objective]]
id = "grow"
title = "Grow"
period = "2026-Q4"

[[key_result]]
id = "conv"
objective = "grow"
title = "Trial conversion"
start = 0
target = 10
source = { kind = "prometheus", url_env = "PROM_URL", token_env = "PROM_TOKEN", \
query = "kpi_trial_conversion_pct", step = "1d" }
"""


def readings(cwd: Path) -> list[tuple[str | None, float]]:
    store = Store.open(f"sqlite:///{cwd / 'data' / 'okrsync.db'}")
    try:
        return [(c.author, c.value) for c in store.checkins("conv")]
    finally:
        store.close()


def test_measure_reads_prometheus_now_backfills_once_and_keeps_the_last_value(
    tmp_path: Path,
) -> None:
    """A PromQL instant query is recorded by source:prometheus; `--since` records one
    reading a day and a second backfill adds none; an `empty` fault fails the run (exit 1)
    and leaves the check-ins as they were; the token never shows."""
    write(tmp_path / "okrsync.toml", CONFIG)
    write(tmp_path / "okrs" / "main.toml", OKRS)
    assert run_cli("okrs", "sync", cwd=tmp_path).code == 0
    with Sandbox() as sb:
        token = sb.credentials["prometheus_token"]
        env = {"PROM_URL": sb.base_url("prometheus"), "PROM_TOKEN": token}
        now = run_cli("measure", cwd=tmp_path, env=env)
        assert now.code == 0, now.stdout + now.stderr
        assert now.stdout.startswith("conv  prometheus  ")
        assert now.stdout.splitlines()[0].endswith(" UTC (recorded)")
        back = run_cli("measure", "conv", "--since", "2026-11-01", cwd=tmp_path, env=env)
        assert back.code == 0, back.stdout + back.stderr
        first = back.stdout.splitlines()[0]
        assert first.startswith("conv  prometheus  ")
        assert " readings, 2026-11-01 00:00 UTC … " in first
        again = run_cli("measure", "conv", "--since", "2026-11-01", cwd=tmp_path, env=env)
        assert " (0 recorded, " in again.stdout
        before = readings(tmp_path)
        assert len(before) > 30
        assert {a for a, _ in before} == {"source:prometheus"}
        sb.inject("prometheus", "empty")
        failed = run_cli("measure", cwd=tmp_path, env=env)
        assert failed.code == 1
        assert "conv  prometheus  failed: " in failed.stdout
        assert readings(tmp_path) == before
        assert token not in now.stdout + back.stdout + failed.stdout + failed.stderr
