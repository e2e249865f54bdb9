"""Honest logs: JSON values (never Python reprs), the version at start, one line per mapping
reload, and an interrupted run's counts equal to what its row in the store records."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import structlog

from okrsync import __version__
from okrsync.config import load_settings
from okrsync.logging import configure
from okrsync.models import Page
from okrsync.redaction import MASK, register_secret
from okrsync.service import open_service
from okrsync.store import Link, PageResult
from okrsync.sync import Limiters, new_client, run_connector
from tests.helpers import TREE, run_cli, write
from tests.integration.sandbox_utils import sandbox_world
from tests.integration.test_service import events, world

# The events whose fields this file holds to JSON values.
CHECKED = {"service.started", "signals.recomputed", "mapping.reloaded", "sync.end"}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """This process's structlog, as JSON lines into a buffer (defaults restored after)."""
    buffer = io.StringIO()
    configure("debug", "json", stream=buffer)
    yield buffer
    structlog.reset_defaults()


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def reprs_in(event: dict[str, Any]) -> list[str]:
    """String values that look like a Python repr (`Name(field=...)`)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and "(" in value:
            found.append(value)

    walk({k: v for k, v in event.items() if k != "event"})
    return found


def test_daemon_logs_its_version_and_json_recompute_fields(tmp_path: Path) -> None:
    """`run --once`: service.started carries the version; signals.recomputed plain fields."""
    with world(tmp_path) as (_sb, cfg, env):
        write(tmp_path / "okrs" / "main.toml", TREE + '\n[[tactic.rule]]\nconnector = "github"\n')
        result = run_cli("-c", str(cfg), "run", "--once", cwd=tmp_path, env=env)
    assert result.code == 0, result.stderr
    logged = events(tmp_path / "okrsync.log")
    (started,) = [e for e in logged if e["event"] == "service.started"]
    assert started["version"] == __version__
    recomputed = [e for e in logged if e["event"] == "signals.recomputed"]
    assert recomputed
    for e in recomputed:
        assert isinstance(e["as_of"], str)
        assert e["as_of"][:2] == "20"
        for key in ("key_results", "objectives", "snapshots_written"):
            assert isinstance(e[key], int), (key, e)
        assert isinstance(e["seconds"], float | int)
    for e in logged:
        if e["event"] in CHECKED:
            assert reprs_in(e) == [], e


def test_a_mapping_edit_is_reloaded_and_logged_once(tmp_path: Path, json_log: io.StringIO) -> None:
    """Every connector's run finds the edited files; they are reloaded (and logged) once."""
    with world(tmp_path) as (_sb, cfg, env), pytest.MonkeyPatch.context() as patch:
        for k, v in env.items():
            patch.setenv(k, v)
        settings = load_settings(cfg)
        service = open_service(settings, cfg)
        edited = write(tmp_path / "okrs" / "new.toml", TREE.replace("Grow", "Grow more"))
        (tmp_path / "okrs" / "main.toml").unlink()
        edited.rename(tmp_path / "okrs" / "main.toml")

        async def once() -> int:
            try:
                return await service.once()
            finally:
                if service.client is not None:
                    await service.client.aclose()

        try:
            assert asyncio.run(once()) == 0
        finally:
            service.locks.close()
            service.store.close()
    reloaded = [e for e in lines(json_log) if e["event"] == "mapping.reloaded"]
    assert len(reloaded) == 1, reloaded
    assert reprs_in(reloaded[0]) == []


def test_an_interrupted_run_logs_the_counts_of_its_run_row(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, json_log: io.StringIO
) -> None:
    """Cancelled while a commit runs in its thread: sync.end counts that commit, as the store."""
    with sandbox_world(monkeypatch, tmp_path, page_size=20) as (_sb, settings, store):
        cc = settings.connector("github")
        real = store.commit_pages
        committed = threading.Event()

        def slow_commit(
            connector: str,
            pages: list[Page],
            links: dict[str, list[Link]] | None = None,
            run_id: int | None = None,
        ) -> list[PageResult]:
            done = real(connector, pages, links, run_id)
            committed.set()
            time.sleep(0.3)  # the transaction is over; the thread has yet to hand back
            return done

        monkeypatch.setattr(store, "commit_pages", slow_commit)

        async def cancelled_run() -> None:
            async with new_client() as client:
                task = asyncio.create_task(run_connector(cc, store, client, Limiters()))
                await asyncio.to_thread(committed.wait, 10)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

        asyncio.run(cancelled_run())
        (end,) = [e for e in lines(json_log) if e["event"] == "sync.end"]
        row = store.run(end["run_id"])
    assert row is not None
    assert end["status"] == row.status == "interrupted"
    assert row.pages >= 1
    logged = (end["pages"], end["created"], end["updated"], end["deleted"])
    assert logged == (row.pages, row.items_created, row.items_updated, row.items_deleted)


@dataclass
class Carrier:
    """A value a log call might pass whole: a dataclass holding a date and a secret."""

    day: date
    token: str


def test_json_log_values_are_json_never_reprs_and_secrets_inside_them_are_masked(
    json_log: io.StringIO,
) -> None:
    """A dataclass, date, path and set become JSON values; a secret inside one is masked."""
    secret = "tok-4f1c-very-secret"
    register_secret(secret)
    structlog.get_logger("okrsync.test").info(
        "ops.values",
        report=Carrier(date(2026, 12, 7), secret),
        where=Path("/var/lib/okrsync"),
        names={"b", "a"},
    )
    (line,) = [e for e in lines(json_log) if e["event"] == "ops.values"]
    assert line["report"] == {"day": "2026-12-07", "token": MASK}
    assert line["where"] == "/var/lib/okrsync"
    assert line["names"] == ["a", "b"]
    assert secret not in json_log.getvalue()
