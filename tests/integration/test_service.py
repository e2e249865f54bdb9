"""The daemon as ops run it: `okrsync run [--once]` in subprocesses against the sandbox."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client.parser import text_string_to_metric_families

from okrsync.config import ConnectorConfig, load_settings
from okrsync.demo import sandbox_connectors, sandbox_env
from okrsync.locks import LockHeld, StoreLock
from okrsync.notify.daemon import JOB_ID as NOTIFY_JOB
from okrsync.notify.daemon import plan as plan_notify
from okrsync.okrfile import load_tree
from okrsync.sandbox import Sandbox
from okrsync.service import NEW_DAY_JOB, Service, open_service, trigger_for
from okrsync.store import Store
from okrsync.store._okr import ApplyReport, apply_okr_tree
from okrsync.store.tables import SyncRunRow
from tests.helpers import TREE, run_cli, write

SIZES = {"jira": 30, "jira_dc": 20, "asana": 30, "github": 30}
NAMES = ("jira", "jira-dc", "asana", "github")
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline.

    The deadline is generous on purpose: on a loaded CI machine a daemon's start, a sync of
    the sandbox or a reload can take several times longer than on a quiet one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


def write_config(tmp_path: Path, sb: Sandbox, store_url: str, log: Path, **overrides: Any) -> Path:
    """A config file with the sandbox's four connectors, JSON logs to `log`, port 0."""
    lines = [
        f"[store]\nurl = {toml_value(store_url)}\n",
        '[mappings]\npaths = ["okrs"]\n',
        f'[logging]\nlevel = "debug"\nformat = "json"\nfile = {toml_value(str(log))}\n',
        '[service]\nhost = "127.0.0.1"\nport = 0\nready_max_failures = 2\n',
    ]
    for cc in sandbox_connectors(sb, **overrides):
        body = cc.model_dump(exclude_none=True, exclude_defaults=False)
        lines.append(
            "[[connectors]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in body.items())
        )
    write(tmp_path / "okrs" / "main.toml", TREE)
    return write(tmp_path / "okrsync.toml", "\n".join(lines))


@contextmanager
def world(
    tmp_path: Path, store_url: str | None = None, **overrides: Any
) -> Iterator[tuple[Sandbox, Path, dict[str, str]]]:
    """A sandbox, a config file pointing at it and the environment holding its tokens."""
    url = store_url or f"sqlite:///{tmp_path / 'okrsync.db'}"
    with Sandbox(seed=5, sizes=SIZES) as sb:
        cfg = write_config(tmp_path, sb, url, tmp_path / "okrsync.log", **overrides)
        yield sb, cfg, sandbox_env(sb)


def events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    log: Path
    _port: int | None = None

    def port(self) -> int:
        def listening() -> dict[str, Any] | None:
            return next((e for e in events(self.log) if e["event"] == "service.listening"), None)

        if self._port is None:
            self._port = int(wait_for(listening, "the endpoint to listen")["port"])
        return self._port

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port()}{path}", timeout=30)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def start_daemon(cfg: Path, env: dict[str, str], log: Path) -> Daemon:
    """`okrsync -c cfg run` in the background, logging JSON lines to `log`."""
    full_env = {**os.environ, **env, "NO_COLOR": "1"}
    with log.with_suffix(".err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "okrsync.cli", "-c", str(cfg), "run"],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return Daemon(proc, log)


@contextmanager
def daemon(cfg: Path, env: dict[str, str], log: Path) -> Iterator[Daemon]:
    d = start_daemon(cfg, env, log)
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(timeout=10)


def all_runs(url: str) -> list[SyncRunRow]:
    store = Store.open(url, upgrade=False)
    try:
        return store.runs(limit=10_000)
    finally:
        store.close()


def ok_runs(url: str, name: str | None = None) -> list[SyncRunRow]:
    return [r for r in all_runs(url) if r.status == "ok" and name in (None, r.connector)]


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_once_runs_every_connector_and_cli_reads_runs_and_logs(tmp_path: Path) -> None:
    """`run --once` syncs all connectors (exit 0), a failure exits 1; runs/logs filter them."""
    with world(tmp_path) as (sb, cfg, env):
        r = run_cli("-c", str(cfg), "run", "--once", cwd=tmp_path, env=env)
        assert r.code == 0, r.stderr
        url = f"sqlite:///{tmp_path / 'okrsync.db'}"
        assert sorted(x.connector for x in ok_runs(url)) == sorted(NAMES)
        sb.revoke_token("github")
        r = run_cli("-c", str(cfg), "run", "--once", cwd=tmp_path, env=env)
        assert r.code == 1
        failed = run_cli("-c", str(cfg), "runs", "--failed", cwd=tmp_path)
        assert failed.code == 0, failed.stderr
        assert "github" in failed.stdout
        assert "jira-dc" not in failed.stdout
        run_id = next(x.id for x in all_runs(url) if x.status == "failed")
        shown = run_cli("-c", str(cfg), "runs", "show", str(run_id), cwd=tmp_path)
        assert "refused the credentials" in shown.stdout
        assert f"okrsync logs --run {run_id}" in shown.stdout
        logs = run_cli(
            "-c", str(cfg), "logs", "--run", str(run_id), "--level", "error", cwd=tmp_path
        )
        assert logs.code == 0, logs.stderr
        lines = logs.stdout.strip().splitlines()
        assert lines
        assert all("sync.failed" in line and "connector=github" in line for line in lines)


def test_daemon_serves_endpoints_reloads_and_stops_cleanly(tmp_path: Path) -> None:
    """healthz/readyz/metrics; SIGHUP with a broken mapping keeps serving; SIGTERM exits 0."""
    log = tmp_path / "okrsync.log"
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    with world(tmp_path, schedule="every 1s") as (sb, cfg, env), daemon(cfg, env, log) as d:
        assert d.get("/healthz").status_code == 200
        wait_for(lambda: {r.connector for r in ok_runs(url)} == set(NAMES), "a run of each")
        ready = d.get("/readyz")
        assert ready.status_code == 200, ready.text
        values = metric_values(d.get("/metrics").text)
        for name in NAMES:
            key = ("okrsync_sync_runs_total", (("connector", name), ("status", "ok")))
            assert values[key] >= 1
            assert ("okrsync_sync_cursor_lag_seconds", (("connector", name),)) in values
        sb.revoke_token("asana")
        wait_for(
            lambda: (
                d.get("/readyz").status_code == 503
                and any("connector asana: last 2 runs failed" in x for x in reasons(d))
            ),
            "readyz to see asana failing",
        )
        sb.restore_token("asana")
        wait_for(lambda: d.get("/readyz").status_code == 200, "readyz to recover")
        cfg.write_text(cfg.read_text().replace('"every 1s"', '"every 2s"', 1))
        write(tmp_path / "okrs" / "main.toml", TREE.replace("target = 12", 'target = "x"'))
        d.proc.send_signal(signal.SIGHUP)
        # A run can find the edited mapping stale and fail to reload it before the SIGHUP's
        # reload is done: wait for the reload's own event, not only for readyz's 503.
        reloaded = wait_for(
            lambda: [e for e in events(log) if e["event"] == "config.reloaded"], "the reload"
        )
        assert reloaded[-1]["changed"] == ["jira"]
        wait_for(lambda: d.get("/readyz").status_code == 503, "readyz to report the mapping")
        assert any("mapping reload failed" in x and "main.toml" in x for x in reasons(d))
        assert any(e["event"] == "mapping.reload_failed" for e in events(log))
        assert "mapping files invalid" in run_cli("-c", str(cfg), "runs", cwd=tmp_path).stdout
        assert d.get("/healthz").status_code == 200
        seen = len(ok_runs(url))
        wait_for(lambda: len(ok_runs(url)) > seen + 2, "runs to go on with the last good mapping")
        sb.inject("github", "slow", 1, delay=60)
        wait_for(lambda: sb.stats()["faults_fired"].get("slow"), "a github run in flight")
        started = time.monotonic()
        assert d.stop() == 0, log.with_suffix(".err").read_text()
        assert time.monotonic() - started < 30  # did not wait for the 60 s request
    runs = all_runs(url)
    assert not [r for r in runs if r.status == "running"]
    assert any(r.connector == "github" and r.status == "interrupted" for r in runs)


def reasons(d: Daemon) -> list[str]:
    """The details /readyz gives a caller on loopback (none when ready)."""
    found: list[str] = d.get("/readyz").json().get("reasons", [])
    return found


def test_second_daemon_on_the_same_sqlite_file_refuses(tmp_path: Path) -> None:
    """A second daemon on one SQLite file exits 1 naming the lock and the first one's pid."""
    log = tmp_path / "okrsync.log"
    with world(tmp_path, schedule="every 1h") as (_, cfg, env), daemon(cfg, env, log) as d:
        d.port()
        r = run_cli("-c", str(cfg), "run", "--once", cwd=tmp_path, env=env)
        assert r.code == 1
        assert "okrsync.db.lock" in r.stderr
        assert f"the daemon (pid {d.proc.pid} on host" in " ".join(r.stderr.split())
        assert d.stop() == 0


@pytest.mark.postgres
def test_replicas_on_postgres_never_overlap_and_survivor_takes_over(
    tmp_path: Path, pg_url: str
) -> None:
    """Two daemons on one PostgreSQL: one run per connector at a time; B takes over A's."""
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    with world(tmp_path, pg_url, schedule="every 1s") as (sb, cfg, env):
        cfg_b = write(
            tmp_path / "b.toml", cfg.read_text().replace(str(tmp_path / "okrsync.log"), str(log_b))
        )
        cfg.write_text(cfg.read_text().replace(str(tmp_path / "okrsync.log"), str(log_a)))
        sb.inject("github", "slow", 1, delay=120)
        with daemon(cfg, env, log_a) as a, daemon(cfg_b, env, log_b) as b:
            stuck = wait_for(
                lambda: (
                    [
                        r.id
                        for r in all_runs(pg_url)
                        if r.connector == "github" and r.status == "running"
                    ]
                    if sb.stats()["faults_fired"]
                    else None
                ),
                "a github run stuck on the slow fault",
            )[0]
            assert stuck is not None  # a stored run has its id
            holder, survivor = (a, b) if started(log_a, stuck) else (b, a)
            wait_for(
                lambda: [
                    e
                    for e in events(survivor.log)
                    if e["event"] == "sync.skipped_locked" and e["connector"] == "github"
                ],
                "the other replica to skip github",
            )
            holder.proc.kill()
            holder.proc.wait(timeout=10)
            killed_at = datetime.now(UTC)
            wait_for(
                lambda: [r for r in ok_runs(pg_url, "github") if r.started_at > killed_at],
                "the survivor to run github",
            )
            assert survivor.stop() == 0
    runs = all_runs(pg_url)
    assert any(r.status == "interrupted" and "abandoned" in (r.error or "") for r in runs)
    for name in NAMES:
        spans = sorted((r.started_at, r.ended_at) for r in runs if r.connector == name)
        ends = [end for _, end in spans]
        assert None not in ends, name
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end is not None, name
            assert end <= start, name


@pytest.mark.postgres
def test_replicas_loading_the_okr_tree_at_once_take_turns(tmp_path: Path, pg_url: str) -> None:
    """Two loads of the mapping at once on PostgreSQL (replicas starting together): the second
    waits for the first to commit, then finds its rows; no duplicate key kills a replica."""
    write(tmp_path / "okrs" / "main.toml", TREE)
    tree = load_tree([tmp_path / "okrs"])
    first, second = Store.open(pg_url), Store.open(pg_url)
    outcome: list[ApplyReport | BaseException] = []

    def load() -> None:
        try:
            outcome.append(second.apply_okr_tree(tree))
        except BaseException as exc:  # reported by the assertions below
            outcome.append(exc)

    try:
        with first.tx() as conn:
            assert apply_okr_tree(conn, tree).added
            other = threading.Thread(target=load)
            other.start()
            wait_for(lambda: waiting_locks(first), "the second load to wait for the first")
        other.join(timeout=30)
        assert not other.is_alive()
        assert len(outcome) == 1
        report = outcome[0]
        assert isinstance(report, ApplyReport), repr(report)
        assert report.added == []
        assert report.archived == []
    finally:
        first.close()
        second.close()


def waiting_locks(store: Store) -> int:
    """How many lock requests on the store's database wait for another transaction."""
    with store.engine.connect() as conn:
        waiting = conn.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
        return int(waiting.scalar_one())


def started(log: Path, run_id: int) -> bool:
    """Whether the daemon logging to `log` started sync run `run_id`."""
    return any(e["event"] == "sync.start" and e.get("run_id") == run_id for e in events(log))


FAULT_ROUNDS = [
    {"jira": "429", "jira_dc": "500", "asana": "reset", "github": "truncate"},
    {"jira": "invalid_json", "jira_dc": "expire_token", "asana": "503", "github": "502"},
]


def test_logs_of_failing_runs_never_show_a_credential(tmp_path: Path) -> None:
    """Under every injectable fault and a revoked token, no log line carries a secret."""
    log = tmp_path / "okrsync.log"
    with world(tmp_path, max_attempts=1) as (sb, cfg, env):
        for faults in [*FAULT_ROUNDS, None]:
            sb.faults.clear()
            for tracker in ("jira", "jira_dc", "asana", "github"):
                if faults is None:
                    sb.revoke_token(tracker)
                else:
                    sb.inject(tracker, faults[tracker], 20)
            r = run_cli("-c", str(cfg), "run", "--once", cwd=tmp_path, env=env)
            assert r.code == 1, r.stderr
    secrets = [v for k, v in sb.credentials.items() if k != "jira_email"]
    pair = f"{sb.credentials['jira_email']}:{sb.credentials['jira_token']}"
    secrets.append(base64.b64encode(pair.encode()).decode())
    text = log.read_text()
    assert text.count('"sync.failed"') == 12
    for line in text.splitlines():
        assert not [s for s in secrets if s in line], line
    for e in events(log):
        if e["event"].startswith("sync."):
            assert e.get("connector"), e
            assert e.get("run_id"), e


def test_broken_mapping_at_start_exits_2_naming_the_file(tmp_path: Path) -> None:
    """With no good mapping to keep, the daemon refuses to start: exit 2 with file:line."""
    with world(tmp_path) as (_, cfg, env):
        write(tmp_path / "okrs" / "main.toml", TREE.replace("target = 12", 'target = "x"'))
        r = run_cli("-c", str(cfg), "run", cwd=tmp_path, env=env)
    assert r.code == 2
    assert "main.toml:13: 'target' must be a number" in r.stderr
    assert "Traceback" not in r.stderr


def test_daemon_lock_names_the_holder_and_frees_on_release(tmp_path: Path) -> None:
    """A second StoreLock on one file raises LockHeld with the pid; release frees it."""
    first, second = StoreLock(tmp_path / "x.db"), StoreLock(tmp_path / "x.db")
    first.acquire()
    with pytest.raises(
        LockHeld, match=rf"daemon \(pid {os.getpid()} on host .*\) holds .*x\.db\.lock"
    ):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_cron_and_interval_schedules_become_triggers_with_jitter() -> None:
    """`every 1s` → IntervalTrigger, five fields → CronTrigger; both carry the jitter."""
    cc = ConnectorConfig(
        name="gh",
        type="github",
        base_url="http://127.0.0.1:1",
        scope=["o/r"],
        schedule="*/5 * * * *",
        jitter_s=7,
    )
    cron = trigger_for(cc)
    assert isinstance(cron, CronTrigger)
    assert cron.jitter == 7
    interval = trigger_for(cc.model_copy(update={"schedule": "every 90s", "jitter_s": 0}))
    assert isinstance(interval, IntervalTrigger)
    assert interval.interval.total_seconds() == 90
    assert interval.jitter is None


FIXED_NAMES_CONFIG = """
[store]
url = {url}

[mappings]
paths = ["okrs"]

[[connectors]]
name = "notify"
type = "jira"
base_url = "https://example.atlassian.net"
scope = ["ALPHA"]
token_env = "OKRSYNC_TEST_UNSET_TOKEN"

[[connectors]]
name = "new_day"
type = "jira"
base_url = "https://example.atlassian.net"
scope = ["BETA"]
token_env = "OKRSYNC_TEST_UNSET_TOKEN"
"""


def test_connectors_named_like_the_fixed_jobs_keep_their_own_jobs(tmp_path: Path) -> None:
    """A connector may be named `notify` or `new_day`: its sync job and the daemon's notify
    and daily jobs all stay scheduled, at start and after a config reload."""
    url = json.dumps(f"sqlite:///{tmp_path / 'okrsync.db'}")
    cfg = write(tmp_path / "okrsync.toml", FIXED_NAMES_CONFIG.format(url=url))
    write(tmp_path / "okrs" / "main.toml", TREE)
    service = open_service(load_settings(cfg), cfg)
    try:
        at_start, reloaded = asyncio.run(fixed_and_connector_jobs(service, cfg))
    finally:
        service.locks.close()
        service.store.close()
    sync, notify, day = "Service.job", "plan.<locals>.job", "Service.day_job"
    want = {"notify": sync, "new_day": sync, NOTIFY_JOB: notify, NEW_DAY_JOB: day}
    assert len(want) == 4  # four ids, none shared
    assert at_start == want
    assert reloaded == want


async def fixed_and_connector_jobs(service: Service, cfg: Path) -> tuple[dict[str, str], ...]:
    """Each job's id → its function's qualified name, after start and after a config reload."""
    service.scheduler = AsyncIOScheduler(timezone=UTC)
    service.scheduler.start(paused=True)
    service.schedule(service.enabled())
    service.plan_new_day()
    plan_notify(service)
    at_start = {j.id: j.func.__qualname__ for j in service.scheduler.get_jobs()}
    service._adopt(load_settings(cfg))  # the config reload prunes jobs here
    reloaded = {j.id: j.func.__qualname__ for j in service.scheduler.get_jobs()}
    service.scheduler.shutdown(wait=False)
    return at_start, reloaded
