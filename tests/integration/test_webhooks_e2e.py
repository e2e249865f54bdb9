"""Issue 18, "Done when" (webhooks in): the sandbox sends real, signed webhooks to a real
`okrsync run` daemon over sockets. Connectors are scheduled a day apart, so after the start-up
sync only a webhook can bring a change in."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from okrsync.demo import sandbox_env
from okrsync.hooks.verify import sign
from okrsync.sandbox import Sandbox
from okrsync.store import Store
from tests.helpers import TREE, run_cli, write
from tests.integration.test_service import Daemon, all_runs, daemon, wait_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
SIZES = {"jira": 20, "jira_dc": 0, "asana": 20, "github": 20}
HOOK_ENV = {"OKRSYNC_E2E_GH_HOOK": "e2e-github-secret", "OKRSYNC_E2E_JIRA_HOOK": "e2e-jira-sec"}
RULES = """
[[tactic.rule]]
connector = "github"

[[tactic]]
id = "ops"
key_result = "latency"
title = "Ops work"

[[tactic.rule]]
connector = "jira"

[[tactic]]
id = "tasks"
key_result = "latency"
title = "Asana tasks"

[[tactic.rule]]
connector = "asana"
"""


@dataclass
class World:
    sb: Sandbox
    d: Daemon
    cfg: Path
    env: dict[str, str]
    url: str

    def api(self, path: str) -> Any:
        resp = httpx.get(f"http://127.0.0.1:{self.d.port()}/api/v1{path}", timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def counts(self, tactic: str) -> dict[str, int]:
        """The tactic's signal as the read API shows it (its newest snapshot)."""
        signal = self.api(f"/tactics/{tactic}")["tactic"]["signals"]
        return {k: int(v) for k, v in signal.items() if k.startswith("items_") and v is not None}

    def register(self, name: str) -> None:
        base = f"http://127.0.0.1:{self.d.port()}"
        r = run_cli("-c", str(self.cfg), "hooks", "register", name, "--base-url", base,
                    cwd=self.cfg.parent, env=self.env)  # fmt: skip
        assert r.code == 0, r.stderr

    def runs(self, connector: str) -> list[Any]:
        return [r for r in all_runs(self.url) if r.connector == connector]


def connector_lines(sb: Sandbox, name: str, tracker: str, extra: dict[str, str]) -> str:
    body = {
        "name": name,
        "type": "jira" if tracker == "jira" else tracker,
        "base_url": sb.base_url(tracker),
        "scope": sb.scopes(tracker)[:2] if tracker == "asana" else sb.scopes(tracker),
        "schedule": "every 24h",  # the start-up sync, then nothing for a day
        "jitter_s": 0,
        "webhook_coalesce_s": 0.2,
        **extra,
    }
    return "[[connectors]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in body.items())


def write_config(tmp_path: Path, sb: Sandbox) -> Path:
    env = {"github": "OKRSYNC_SANDBOX_GITHUB_TOKEN", "asana": "OKRSYNC_SANDBOX_ASANA_TOKEN"}
    jira = {
        "flavor": "cloud",
        "email_env": "OKRSYNC_SANDBOX_JIRA_EMAIL",
        "token_env": "OKRSYNC_SANDBOX_JIRA_TOKEN",
        "webhook_secret_env": "OKRSYNC_E2E_JIRA_HOOK",
    }
    github = {"token_env": env["github"], "webhook_secret_env": "OKRSYNC_E2E_GH_HOOK"}
    store = f"sqlite:///{tmp_path / 'okrsync.db'}"
    log = tmp_path / "okrsync.log"
    lines = [
        f"[store]\nurl = {json.dumps(store)}\n",
        '[mappings]\npaths = ["okrs"]\n',
        f'[logging]\nlevel = "info"\nformat = "json"\nfile = {json.dumps(str(log))}\n',
        '[service]\nhost = "127.0.0.1"\nport = 0\n',
        connector_lines(sb, "github", "github", github),
        connector_lines(sb, "jira", "jira", jira),
        connector_lines(sb, "asana", "asana", {"token_env": env["asana"]}),
    ]
    write(tmp_path / "okrs" / "main.toml", TREE + RULES)
    return write(tmp_path / "okrsync.toml", "\n".join(lines))


@contextmanager
def running(tmp_path: Path) -> Iterator[World]:
    """The sandbox, a daemon synced once from it, webhooks registered for GitHub and Jira."""
    with Sandbox(seed=8, sizes=SIZES) as sb:
        cfg = write_config(tmp_path, sb)
        env = {**sandbox_env(sb), **HOOK_ENV}
        url = f"sqlite:///{tmp_path / 'okrsync.db'}"
        with daemon(cfg, env, tmp_path / "okrsync.log") as d:
            w = World(sb, d, cfg, env, url)
            d.port()  # listening: the store is migrated
            wait_for(lambda: all(w.runs(n) for n in ("github", "jira", "asana")), "first runs")
            wait_for(lambda: w.counts("checkout").get("items_total"), "the first signals")
            w.register("github")
            w.register("jira")
            assert sb.hooks.settle()
            yield w


# A bound that only a missing delivery reaches: the 5 s target of issue 18 is a speed figure,
# measured by `python -m bench.bench_webhooks` (p50/p95), never asserted here.
ARRIVAL_S = 30.0


def poll(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check` held (polling every 50 ms); fails after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s")


def open_issue(sb: Sandbox) -> str:
    return next(t.external_id for t in sb.truth("github").values()
                if t.kind == "issue" and t.status == "todo")  # fmt: skip


def test_webhooks_bring_changes_in_at_once_and_refuse_forgeries(tmp_path: Path) -> None:
    """An issue closed in the fake GitHub shows in the signals with no scheduled run (the
    schedules are far off), recorded as a webhook run; a Jira issue deleted leaves the
    signals at once; a forged delivery is refused (401) and syncs nothing, an oversize one
    413, a replayed one is answered once (202, then 200 duplicate). The Asana part is
    `test_asana_webhooks_of_two_projects_each_verify_with_their_own_secret`."""
    with running(tmp_path) as w:
        before = w.counts("checkout")
        w.sb.update("github", open_issue(w.sb), status="done")
        done = before["items_done"] + 1
        poll(lambda: w.counts("checkout")["items_done"] == done, timeout=ARRIVAL_S)
        assert w.runs("github")[0].trigger == "webhook"

        jira_before = w.counts("ops")["items_total"]
        gone = next(t for t in w.sb.truth("jira").values() if t.kind == "issue")
        w.sb.delete("jira", gone.external_id)
        poll(lambda: w.counts("ops")["items_total"] < jira_before, timeout=ARRIVAL_S)

        github_runs = len(w.runs("github"))
        w.sb.hooks.inject("github", "forged_signature")
        w.sb.update("github", open_issue(w.sb), status="done")
        assert w.sb.hooks.settle()
        assert w.sb.hooks.deliveries[-1].status == 401
        time.sleep(0.5)  # the coalescing window a wrongly accepted delivery would start
        assert len(w.runs("github")) == github_runs
        assert w.counts("checkout")["items_done"] == done

        w.sb.hooks.inject("github", "oversize")
        w.sb.hooks.inject("github", "replay")
        w.sb.update("github", open_issue(w.sb), title="too big to read")
        w.sb.update("github", open_issue(w.sb), status="done")
        assert w.sb.hooks.settle()
        assert [d.status for d in w.sb.hooks.deliveries[-3:]] == [413, 202, 200]
        poll(lambda: w.counts("checkout")["items_done"] == done + 2, timeout=ARRIVAL_S)


def test_asana_webhooks_of_two_projects_each_verify_with_their_own_secret(tmp_path: Path) -> None:
    """An Asana connector with two projects: `okrsync hooks register` creates two webhooks,
    both handshakes with the daemon succeed (each project's secret stored apart), a deleted
    task in each project leaves the signals through its own signed delivery, and a delivery
    signed with project A's secret but sent as project B's is refused (401)."""
    with running(tmp_path) as w:
        w.register("asana")
        subs = {s.scope: s for s in w.sb.hooks.subscriptions("asana")}
        projects = w.sb.scopes("asana")[:2]
        assert sorted(s or "" for s in subs) == sorted(projects)
        store = Store.open(w.url, upgrade=False)
        try:
            assert store.webhook_secrets("asana") == {p: subs[p].secret for p in projects}
        finally:
            store.close()
        for project in projects:
            before = w.counts("tasks")["items_total"]
            live = [t for t in w.sb.truth("asana").values() if t.kind == "task"]
            task = next(t for t in live if t.scope == project and t.status != "dropped")
            w.sb.delete("asana", task.external_id)

            def fewer(before: int = before) -> bool:
                return w.counts("tasks")["items_total"] < before

            poll(fewer, timeout=ARRIVAL_S)
        assert w.sb.hooks.settle()
        assert {d.status for d in w.sb.hooks.deliveries if d.tracker == "asana"} == {202}
        a, b = projects
        body = (FIXTURES / "asana" / "task_changed.json").read_bytes()
        as_b = {"X-Hook-Signature": sign("asana", subs[a].secret, body)}
        crossed = httpx.post(subs[b].url, content=body, headers=as_b, timeout=10)
        assert crossed.status_code == 401
