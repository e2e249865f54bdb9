"""The daemon under a careless mapping (issue 12): a backtracking title rule cannot freeze it,
and it never archives most of the OKR tree on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from okrsync.demo import sandbox_env
from okrsync.models import ItemKind, Page, StatusCategory, WorkItem
from okrsync.sandbox import Sandbox
from okrsync.store import Store
from okrsync.tree import load_tree_view
from tests.helpers import TREE, write
from tests.integration.test_service import events, wait_for, write_config

SIZES = {"jira": 10, "jira_dc": 10, "asana": 10, "github": 10}
T0 = datetime(2026, 10, 5, tzinfo=UTC)


def event(log: Path, name: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [e for e in events(log) if e["event"] == name]


@contextmanager
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    """A sandbox and `okrsync run` on it (a store holding an "a"*40 + "b" titled item)."""
    log, url = tmp_path / "okrsync.log", f"sqlite:///{tmp_path / 'okrsync.db'}"
    store = Store.open(url)
    evil = WorkItem(
        connector="jira",
        external_id="evil-1",
        key="EVIL-1",
        kind=ItemKind.ISSUE,
        title="a" * 40 + "b",
        status=StatusCategory.TODO,
        status_raw="To Do",
        created=T0,
        updated=T0,
    )
    store.commit_page("jira", Page([evil], {"v": 0}))
    store.close()
    with Sandbox(seed=5, sizes=SIZES) as sb:
        cfg = write_config(tmp_path, sb, url, log, schedule="every 1h")
        env = {**os.environ, **sandbox_env(sb), "NO_COLOR": "1"}
        with (tmp_path / "okrsync.err").open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "okrsync.cli", "-c", str(cfg), "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            listening = wait_for(event(log, "service.listening"), "the endpoint", timeout=20.0)[0]
            yield proc, log, f"http://127.0.0.1:{listening['port']}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_a_backtracking_title_rule_on_sighup_leaves_the_daemon_responsive(tmp_path: Path) -> None:
    """After SIGHUP loads `(a+)+$` over a stored "a"*40 + "b": the reload completes,
    /healthz answers and SIGTERM stops the daemon with exit 0."""
    with daemon(tmp_path) as (proc, log, base):
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        rules = "[[tactic.rule]]\ntitle = '(a+)+$'\n[[tactic.rule]]\ntitle = 'a+b'\n"
        write(tmp_path / "okrs" / "main.toml", TREE + rules)
        proc.send_signal(signal.SIGHUP)
        wait_for(event(log, "mapping.reloaded"), "the reload with the title rule", timeout=20.0)
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, (tmp_path / "okrsync.err").read_text()


def test_the_daemon_never_archives_most_of_the_tree_on_its_own(tmp_path: Path) -> None:
    """An emptied mapping folder on SIGHUP is refused (`mapping.reload_refused`, /readyz not
    ready); the stored tree stays active and the daemon keeps serving."""
    with daemon(tmp_path) as (proc, log, base):
        write(tmp_path / "okrs" / "main.toml", "# a bad checkout left this file empty\n")
        proc.send_signal(signal.SIGHUP)
        refused = wait_for(event(log, "mapping.reload_refused"), "the refusal", timeout=20.0)[0]
        assert "would archive 4 of the 4 objectives" in refused["error"]
        assert "okrsync okrs sync --yes" in refused["error"]
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 503
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    store = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}", upgrade=False)
    try:
        assert [o.id for o in load_tree_view(store)] == ["grow"]
    finally:
        store.close()
