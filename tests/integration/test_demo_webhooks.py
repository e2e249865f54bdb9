"""`okrsync demo` uses webhooks end to end (issue 18): the daemon's receiver on a loopback
port, the sandbox's GitHub hooks registered, one issue closed upstream and its signed
delivery's run shown; a delivery that never arrives costs a bounded wait and a clear line."""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from rich.console import Console

from okrsync import demo
from okrsync.sandbox import Sandbox
from okrsync.store import Store
from tests.helpers import run_cli

ARRIVED = re.compile(
    r"^webhook: (?P<key>\S+#\d+) closed → tactic (?P<tactic>\S+) completion \d+% → \d+% "
    r"\((?P<done0>\d+)/(?P<total0>\d+) → (?P<done1>\d+)/(?P<total1>\d+) done\) "
    r"in (?P<s>[\d.]+) s; run (?P<run>\d+) recorded with trigger \"webhook\"$",
    re.MULTILINE,
)
MISSED = re.compile(
    r"^webhook: (?P<key>\S+#\d+) closed, but no webhook run came within 0\.5 s; "
    r"the re-sync below brings the change in$",
    re.MULTILINE,
)
SMALL = {"jira": 30, "jira_dc": 10, "asana": 30, "github": 80}


def stored(workdir: Path) -> Store:
    return Store.open(f"sqlite:///{workdir / 'okrsync.db'}", upgrade=False)


def test_demo_shows_an_issue_closed_upstream_arriving_by_webhook(tmp_path: Path) -> None:
    """The demo prints an issue closed upstream reaching its tactic by a "webhook" run."""
    workdir = tmp_path / "demo"
    r = run_cli("demo", "--workdir", str(workdir), cwd=tmp_path, timeout=120)
    assert r.code == 0, r.stderr
    assert "webhook delivery" not in r.stderr  # the hooks are gone before the re-sync's changes
    (hooked,) = [line for line in r.stdout.splitlines() if line.startswith("webhooks: ")]
    assert "GitHub repository hook(s) registered (`okrsync hooks register`)" in hooked
    assert "http://" not in hooked  # the dashboard's is the only URL a reader should open
    found = ARRIVED.search(r.stdout)
    assert found, r.stdout
    assert int(found["done1"]) == int(found["done0"]) + 1
    assert found["total1"] == found["total0"]
    assert float(found["s"]) < demo.WEBHOOK_WAIT_S
    step2, report = r.stdout.index("2. incremental re-sync"), r.stdout.index("3. the OKR report")
    assert step2 < found.start() < r.stdout.index("measured trial-conversion", step2) < report
    store = stored(workdir)
    try:
        run = store.run(int(found["run"]))
        github = store.runs("github")
        closed = [i for i in store.items("github") if i.key == found["key"]]
    finally:
        store.close()
    assert run is not None
    assert (run.connector, run.trigger, run.status, run.items_updated) == (
        "github", "webhook", "ok", 1
    )  # fmt: skip
    assert [g.trigger for g in github] == ["manual", "webhook", "manual"]  # newest first
    assert [i.status for i in closed] == ["done"]


class ForgingSandbox(Sandbox):
    """The sandbox with every GitHub webhook signed with a wrong key."""

    def start(self) -> Sandbox:
        started = super().start()
        self.hooks.inject("github", "forged_signature", count=100)
        return started


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The variables and logging the in-process demo sets, restored afterwards."""
    names = [*demo.ENV.values(), demo.DEMO_HOOK_ENV, demo.DEMO_SOURCE_ENV]
    for name in names:
        monkeypatch.setenv(name, "")  # undone at the end, whatever the demo writes
    saved = structlog.get_config()
    levels = {n: logging.getLogger(n).level for n in ("httpx", "httpcore", "apscheduler")}
    yield
    structlog.configure(**saved)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("demo_env")
def test_demo_says_when_no_webhook_arrives_and_resyncs_anyway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No webhook within WEBHOOK_WAIT_S: one line, and the re-sync brings the change in."""
    monkeypatch.setattr(demo, "Sandbox", ForgingSandbox)
    monkeypatch.setattr(demo, "WEBHOOK_WAIT_S", 0.5)
    out = io.StringIO()
    workdir = tmp_path / "demo"
    demo.run_demo(Console(file=out, width=200, no_color=True), workdir, SMALL)
    text, secret = out.getvalue(), os.environ[demo.DEMO_HOOK_ENV]
    missed = MISSED.search(text)
    assert missed, text
    assert not ARRIVED.search(text)
    assert text.index("2. incremental re-sync") < missed.start() < text.index("3. the OKR")
    logged = capsys.readouterr()
    assert "webhook.refused" in logged.err  # the forged delivery, told on stderr
    assert len(secret) == 64
    assert secret not in text + logged.out + logged.err
    store = stored(workdir)
    try:
        triggers = [g.trigger for g in store.runs("github")]
        closed = [i for i in store.items("github") if i.key == missed["key"]]
    finally:
        store.close()
    assert triggers == ["manual", "manual"]
    assert [i.status for i in closed] == ["done"]


class RefusingSandbox(Sandbox):
    """The sandbox whose GitHub token may not manage webhooks (403)."""

    def start(self) -> Sandbox:
        started = super().start()
        self.hooks.forbidden.add("github")
        return started


@pytest.mark.usefixtures("demo_env")
def test_demo_says_when_the_tracker_refuses_its_hooks_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tracker that refuses the hooks: one line with its status and the fix, then as before."""
    monkeypatch.setattr(demo, "Sandbox", RefusingSandbox)
    out = io.StringIO()
    workdir = tmp_path / "demo"
    demo.run_demo(Console(file=out, width=200, no_color=True), workdir, SMALL)
    text = out.getvalue()
    (line,) = [x for x in text.splitlines() if x.startswith("webhook")]
    assert line.startswith("webhook: registering the GitHub hooks failed: connector 'github': ")
    assert "(HTTP 403); the token needs a classic token with admin:repo_hook" in line
    assert line.endswith("; the re-sync below brings the changes in")
    assert "3. the OKR report" in text
    store = stored(workdir)
    try:
        assert [g.trigger for g in store.runs("github")] == ["manual", "manual"]
    finally:
        store.close()
