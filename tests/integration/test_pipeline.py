"""The one pipeline (`pipeline.sync_and_recompute`): locks, linking, recompute, order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from okrsync.config import Settings
from okrsync.demo import MAPPINGS, sandbox_connectors, sandbox_env
from okrsync.locks import Holder
from okrsync.pipeline import MappingState, sync_and_recompute
from okrsync.sandbox import Sandbox
from okrsync.store import Store

SIZES = {"jira": 40, "jira_dc": 30, "asana": 40, "github": 40}
TACTIC = "checkout-revamp"  # a tactic of the example mappings with rules on every tracker


class HeldElsewhere:
    """Run locks where `busy` is held by another process and every other connector is free."""

    def __init__(self, busy: str) -> None:
        self.busy = busy
        self.held: list[str] = []
        self.closed = False

    @asynccontextmanager
    async def hold(self, connector: str) -> AsyncIterator[bool]:
        self.held.append(connector)
        yield connector != self.busy

    def holder(self, connector: str) -> Holder | None:
        return None

    def close(self) -> None:
        self.closed = True


@contextmanager
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    with Sandbox(seed=5, sizes=SIZES) as sb:
        for k, v in sandbox_env(sb).items():
            monkeypatch.setenv(k, v)
        settings = Settings(
            store={"url": f"sqlite:///{tmp_path / 'okrsync.db'}"},
            mappings={"paths": [str(MAPPINGS)]},
            connectors=sandbox_connectors(sb),
        )
        store = Store.open(settings.store_url())
        try:
            yield settings, store
        finally:
            store.close()


def test_pipeline_links_items_and_recomputes_signals_in_config_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One call pulls every connector, links its items and leaves fresh signal snapshots."""
    with world(monkeypatch, tmp_path) as (settings, store):
        mapping = MappingState.load(settings)
        mapping.apply(store, settings)
        before = store.snapshot_history(TACTIC)[-1].values
        done = asyncio.run(sync_and_recompute(settings, store, mapping))
        assert [r.connector for r in done.results] == [c.name for c in settings.connectors]
        assert all(r.status == "ok" and r.created for r in done.results)
        assert not done.skipped
        after = store.snapshot_history(TACTIC)[-1].values
        assert after != before  # recomputed from the items just linked


def test_pipeline_skips_a_connector_held_elsewhere_and_runs_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A connector whose run lock is taken is skipped and named; the caller's locks stay open."""
    with world(monkeypatch, tmp_path) as (settings, store):
        mapping = MappingState.load(settings)
        mapping.apply(store, settings)
        locks = HeldElsewhere("github")
        done = asyncio.run(sync_and_recompute(settings, store, mapping, locks=locks))
        assert sorted(locks.held) == sorted(c.name for c in settings.connectors)
        assert set(done.skipped) == {"github"}
        assert "held by another okrsync process" in done.skipped["github"]
        assert [r.connector for r in done.results] == ["jira", "jira-dc", "asana"]
        assert store.item_count("github") == 0
        assert not locks.closed


def test_pipeline_asks_a_mapping_source_inside_the_lock_before_each_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A mapping given as a coroutine function is awaited once per run, under the lock."""
    with world(monkeypatch, tmp_path) as (settings, store):
        mapping = MappingState.load(settings)
        mapping.apply(store, settings)
        locks = HeldElsewhere("asana")
        asked: list[int] = []

        async def current() -> MappingState:
            asked.append(len(locks.held))
            return mapping

        done = asyncio.run(sync_and_recompute(settings, store, current, "jira", locks=locks))
        assert asked == [1]  # once, after taking jira's lock
        assert [r.connector for r in done.results] == ["jira"]
