"""Soak: the daemon for a while against the sandbox, mutating items and injecting faults.

    python -m bench.soak [--minutes 30] [--fault-rate 0.10] [--every 10]

The daemon (`okrsync run`, a subprocess, schedule "every <every>s") syncs the four sandbox
trackers with the example mappings while this process mutates items every few seconds and
injects faults (429, 5xx, resets, slow, cut and invalid JSON) into about `fault-rate` of the
requests. Every 10 s it samples the daemon's RSS. At the end it stops the daemon with SIGTERM,
runs one clean `sync --once` and reports memory growth, runs by outcome, and whether the store
converged to the sandbox's ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from okrsync.demo import MAPPINGS, sandbox_connectors, sandbox_env
from okrsync.sandbox import Sandbox
from okrsync.store import Store
from tests.integration.sandbox_utils import TRACKER, differences

FAULTS = ("429", "500", "502", "503", "reset", "slow", "truncate", "invalid_json")
SIZES = {"jira": 2000, "jira_dc": 1000, "asana": 2000, "github": 2000}


def toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml(x) for x in v) + "]"
    return json.dumps(str(v))


def write_config(root: Path, sb: Sandbox, every: int) -> Path:
    lines = [
        f'[store]\nurl = "sqlite:///{root / "soak.db"}"\n',
        f"[mappings]\npaths = [{toml(str(MAPPINGS))}]\n",
        f'[logging]\nlevel = "info"\nformat = "json"\nfile = {toml(str(root / "soak.jsonl"))}\n',
        '[service]\nhost = "127.0.0.1"\nport = 0\n',
    ]
    for cc in sandbox_connectors(sb, schedule=f"every {every}s", timeout_s=5.0):
        body = cc.model_dump(exclude_none=True)
        lines.append("[[connectors]]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in body.items()))
    path = root / "okrsync.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disturb(sb: Sandbox, rng: random.Random, rate: float, seconds: float, every: int) -> int:
    """One tick: mutate a few items and queue faults for ~`rate` of the coming requests."""
    tracker = rng.choice(list(TRACKER.values()))
    sb.mutate(tracker, rng.randint(1, 10))
    # 4 connectors x ~3 scopes, at least one request each per run, one run per `every` s.
    expected = max(1, round(12 * seconds / every))
    n = sum(1 for _ in range(expected) if rng.random() < rate)
    for _ in range(n):
        fault = rng.choice(FAULTS)
        params = {"retry_after": 1} if fault == "429" else {"delay": 6} if fault == "slow" else {}
        sb.inject(rng.choice(list(TRACKER.values())), fault, **params)
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--fault-rate", type=float, default=0.10)
    ap.add_argument("--every", type=int, default=10, help="schedule interval (s)")
    a = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp, Sandbox(seed=7, sizes=SIZES) as sb:
        root = Path(tmp)
        env = {**os.environ, **sandbox_env(sb)}
        cfg = write_config(root, sb, a.every)
        cmd = [sys.executable, "-m", "okrsync.cli", "-c", str(cfg)]
        daemon = subprocess.Popen([*cmd, "run"], env=env, stdout=subprocess.DEVNULL)
        samples: list[tuple[float, float]] = []
        faults, start = 0, time.monotonic()
        deadline = start + a.minutes * 60
        while time.monotonic() < deadline and daemon.poll() is None:
            faults += disturb(sb, rng, a.fault_rate, 3, a.every)
            time.sleep(3)
            if not samples or time.monotonic() - samples[-1][0] >= 10:
                samples.append((time.monotonic(), rss_mb(daemon.pid)))
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
        final = subprocess.run([*cmd, "sync", "--once"], env=env, capture_output=True, check=False)
        store = Store.open(f"sqlite:///{root / 'soak.db'}")
        runs = Counter(r.status for r in store.runs(limit=100_000))
        diffs = {name: len(differences(sb, store, name)) for name in TRACKER}
        report(a, samples, faults, code, final.returncode, runs, diffs)


def report(
    a: argparse.Namespace,
    samples: list[tuple[float, float]],
    faults: int,
    code: int,
    final: int,
    runs: Counter[str],
    diffs: dict[str, int],
) -> None:
    first = next((r for _, r in samples if r), 0.0)
    settled = samples[len(samples) // 4][1] if samples else 0.0
    last = samples[-1][1] if samples else 0.0
    print(f"soak {a.minutes:g} min, schedule every {a.every}s, fault rate {a.fault_rate:.0%}")
    print(
        f"  daemon RSS: first {first:.1f} MB, after 1/4 {settled:.1f} MB, end {last:.1f} MB "
        f"(growth after warm-up {last - settled:+.1f} MB, max {max(r for _, r in samples):.1f})"
    )
    print(f"  runs: {dict(runs)}; faults injected: {faults}; daemon exit {code} on SIGTERM")
    print(
        f"  final clean sync exit {final}; differences from ground truth: {diffs} "
        f"({'converged' if not any(diffs.values()) else 'NOT converged'})"
    )


if __name__ == "__main__":
    main()
