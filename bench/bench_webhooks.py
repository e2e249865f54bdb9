"""Webhooks in, end to end: how long a tracker change takes to show in the signals.

    python -m bench.bench_webhooks [--changes N] [--items N] [--coalesce S,S] [--json PATH]

The sandbox (in this process) serves a GitHub of `--items` issues and sends its signed
webhooks; a real daemon (`okrsync run`, its own process, SQLite) syncs it once at start-up
and then only on webhooks (the connector's schedule is a day). Per change: an open issue is
closed in the sandbox, and the clock runs until the read API (`/api/v1/tactics/{id}`, the
tactic's newest snapshot, what the dashboard shows) counts it done, polled every 10 ms. Also
timed: the delivery leg (the change until the daemon answered the sandbox's POST). Run once
per `--coalesce` value (the connector's `webhook_coalesce_s`: the daemon waits that long
for more deliveries before its run). The issue's target: p95 < 5 s.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import percentile
from okrsync.sandbox import Sandbox  # imports okrsync first: its lean-import guard, then httpx

Row = dict[str, object]
TARGET_MS = 5000.0
SECRET_ENV = "OKRSYNC_BENCH_GH_HOOK"  # noqa: S105 - a variable's name, not a secret
TREE = """
[[objective]]
id = "grow"
title = "Grow"
period = "2026-Q4"

[[key_result]]
id = "conv"
objective = "grow"
title = "Conversion"
start = 8
target = 12

[[tactic]]
id = "issues"
key_result = "conv"
title = "Every GitHub issue"

[[tactic.rule]]
connector = "github"
"""


def write_config(tmp: Path, sb: Sandbox, coalesce: float) -> Path:
    connector = {
        "name": "github",
        "type": "github",
        "base_url": sb.base_url("github"),
        "scope": sb.scopes("github"),
        "token_env": "OKRSYNC_SANDBOX_GITHUB_TOKEN",
        "webhook_secret_env": SECRET_ENV,
        "webhook_coalesce_s": coalesce,
        "schedule": "every 24h",
        "jitter_s": 0,
    }
    (tmp / "okrs").mkdir(exist_ok=True)
    (tmp / "okrs" / "main.toml").write_text(TREE)
    store, log = f"sqlite:///{tmp / 'okrsync.db'}", str(tmp / "okrsync.log")
    lines = [
        f"[store]\nurl = {json.dumps(store)}\n",
        '[mappings]\npaths = ["okrs"]\n',
        f'[logging]\nlevel = "info"\nformat = "json"\nfile = {json.dumps(log)}\n',
        '[service]\nhost = "127.0.0.1"\nport = 0\n',
        "[[connectors]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in connector.items()),
    ]
    cfg = tmp / "okrsync.toml"
    cfg.write_text("\n".join(lines))
    return cfg


def wait(check: Callable[[], Any], what: str, timeout: float = 120.0, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def listening_port(log: Path) -> int | None:
    """The daemon's port, from its `service.listening` log line."""
    if not log.exists():
        return None
    for line in log.read_text().splitlines():
        if '"service.listening"' in line:
            return int(json.loads(line)["port"])
    return None


@contextmanager
def daemon(cfg: Path, env: dict[str, str]) -> Iterator[int]:
    """`okrsync run` in its own process; yields its port once it listens."""
    with (cfg.parent / "daemon.out").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "okrsync.cli", "-c", str(cfg), "run"],
            env={**os.environ, **env, "NO_COLOR": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield wait(lambda: listening_port(cfg.parent / "okrsync.log"), "the daemon to listen")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def done_count(port: int) -> int | None:
    import httpx  # after okrsync (the module's first import)

    resp = httpx.get(f"http://127.0.0.1:{port}/api/v1/tactics/issues", timeout=10)
    if resp.status_code != 200:
        return None
    value = resp.json()["tactic"]["signals"].get("items_done")
    return None if value is None else int(value)


def counts_to(port: int, want: int) -> bool:
    return done_count(port) == want


def measure(sb: Sandbox, port: int, changes: int) -> tuple[list[float], list[float]]:
    """Close `changes` open issues one by one: (change → signal, change → delivery answered)
    in milliseconds."""
    opened = [t.external_id for t in sb.truth("github").values()
              if t.kind == "issue" and t.status == "todo"]  # fmt: skip
    if len(opened) < changes:
        raise SystemExit(f"only {len(opened)} open issues; ask for fewer --changes")
    signal_ms: list[float] = []
    done = wait(lambda: done_count(port), "the first signals")
    for issue in opened[:changes]:
        started = time.time()
        sb.update("github", issue, status="done")
        done += 1
        wait(functools.partial(counts_to, port, done), "the change in the signals", 30.0)
        signal_ms.append((time.time() - started) * 1000)
    sb.hooks.settle()
    legs = [d for d in sb.hooks.deliveries if d.event == "issues"]
    delivery_ms = [(d.answered_at - d.changed_at) * 1000 for d in legs if d.status < 300]
    return signal_ms, delivery_ms


def run_case(items: int, changes: int, coalesce: float) -> list[Row]:
    case = f"github {items:,} items, coalesce {coalesce:g} s"
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-hooks-") as tmp_name:
        tmp = Path(tmp_name)
        with Sandbox(seed=11, sizes={"jira": 0, "jira_dc": 0, "asana": 0, "github": items}) as sb:
            env = {"OKRSYNC_SANDBOX_GITHUB_TOKEN": sb.credentials["github_token"],
                   SECRET_ENV: "bench-hook-secret"}  # fmt: skip
            cfg = write_config(tmp, sb, coalesce)
            with daemon(cfg, env) as port:
                wait(lambda: done_count(port) is not None, "the start-up sync")
                base = f"http://127.0.0.1:{port}"
                subprocess.run(
                    [sys.executable, "-m", "okrsync.cli", "-c", str(cfg), "hooks", "register",
                     "--base-url", base],
                    env={**os.environ, **env}, check=True, capture_output=True,
                )  # fmt: skip
                sb.hooks.settle()
                signal_ms, delivery_ms = measure(sb, port, changes)
    rows: list[Row] = []
    for metric, samples, target in (
        ("change → signal", signal_ms, TARGET_MS),
        ("change → delivery answered", delivery_ms, None),
    ):
        p50, p95 = percentile(samples, 50), percentile(samples, 95)
        print(f"{case}: {metric}: p50 {p50:.0f} ms, p95 {p95:.0f} ms over {len(samples)}")
        for name, value in (("p50", p50), ("p95", p95)):
            met = None if target is None or name != "p95" else value < target
            rows.append({
                "bench": "webhooks", "case": case, "metric": f"{metric} {name}",
                "value": round(value, 1), "unit": "ms",
                "target": f"< {target:.0f} ms" if met is not None else None, "ok": met,
            })  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=20, help="issues closed per case")
    ap.add_argument("--items", type=int, default=1000, help="GitHub issues in the sandbox")
    ap.add_argument("--coalesce", default="1,0.1", help="webhook_coalesce_s values, comma")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as rows")
    args = ap.parse_args()
    rows: list[Row] = []
    for value in (float(v) for v in args.coalesce.split(",") if v.strip()):
        rows += run_case(args.items, args.changes, value)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
