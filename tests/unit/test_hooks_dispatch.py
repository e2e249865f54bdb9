"""The dispatcher's lanes: hints that arrive while a webhook run waits for the connector join
that run; hints during a run cause exactly one more (docs/webhooks.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from okrsync.hooks.dispatch import Dispatcher
from okrsync.locks import NoRunLocks
from okrsync.store import Store
from tests.helpers import coalescing_github

HINTS = 4


class _Runner:
    """A webhook runner: refuses (the connector is held elsewhere) while `held`, then runs;
    the first run that goes ahead waits for `release`. Counts the runs that went ahead."""

    def __init__(self) -> None:
        self.held = True
        self.refused = asyncio.Event()
        self.running = asyncio.Event()
        self.release = asyncio.Event()
        self.runs = 0

    async def __call__(self, connector: str) -> bool:
        if self.held:
            self.refused.set()
            return False
        self.runs += 1
        if self.runs == 1:
            self.running.set()
            await self.release.wait()
        return True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")
    try:
        yield opened
    finally:
        opened.close()


def _dispatcher(store: Store, runner: _Runner) -> Dispatcher:
    settings = coalescing_github("sqlite://")
    return Dispatcher(store, lambda: settings, runner, NoRunLocks())


async def _hints_while_waiting(dispatcher: Dispatcher, runner: _Runner, store: Store) -> None:
    """A scheduled run holds "gh": one hint's run is refused and waits for it, more hints
    arrive meanwhile (GitHub sends several events per change), then the scheduled run ends."""
    scheduled = store.start_run("gh", trigger="schedule")
    dispatcher.hint("gh", ())
    await asyncio.wait_for(runner.refused.wait(), 5)
    for _ in range(HINTS):
        dispatcher.hint("gh", ())
        await asyncio.sleep(0.02)
    runner.held = False
    store.finish_run(scheduled, "ok")


def test_hints_while_the_run_waits_for_the_connector_cause_one_run(store: Store) -> None:
    """The waiting run has not pulled yet, so it covers the hints that came while it waited:
    one run, not a second right after it."""
    runner = _Runner()
    runner.release.set()
    dispatcher = _dispatcher(store, runner)

    async def main() -> None:
        await _hints_while_waiting(dispatcher, runner, store)
        await asyncio.wait_for(dispatcher.idle(), 10)

    asyncio.run(main())
    assert runner.runs == 1


def test_hints_during_the_run_after_a_wait_still_cause_exactly_one_more(store: Store) -> None:
    """Hints while waiting join the run; hints once it runs may have come too late for its
    pull, so they want exactly one more run, however many they are."""
    runner = _Runner()
    dispatcher = _dispatcher(store, runner)

    async def main() -> None:
        await _hints_while_waiting(dispatcher, runner, store)
        await asyncio.wait_for(runner.running.wait(), 10)
        for _ in range(HINTS):
            dispatcher.hint("gh", ())
        runner.release.set()
        await asyncio.wait_for(dispatcher.idle(), 10)

    asyncio.run(main())
    assert runner.runs == 2
