"""The read API at scale: 1M linked items across 10k tactics on SQLite.

    python -m bench.bench_web [--small] [--items N] [--tactics N] [--repeat N] [--json PATH]

Builds the store as bench_signals does (bulk Core inserts, checkpointed), runs one full
recompute (the daemon's snapshots, which the dashboard's "now" view reads), then times
requests through the real ASGI app (okrsync.web.app.create_app, httpx.ASGITransport: routing,
access and header middleware, the read model and JSON encoding; no socket):

    GET /api/v1/tactics/{id}/items   a random tactic each time (its ~100 items)
    GET /api/v1/tree                 the whole tree, every tactic's signals

and prints p50/p95 of each (from the request until the whole body is received; the client's
JSON parsing is not counted). The tree's "now" view is kept serialized until the store
changes (okrsync.web.api.TreeCache), so its repeated requests measure the fingerprint query
and the send; `tree, cold` measures the rebuild after a change (a check-in before each
request), which every first request after a sync pays. Targets at 1M items / 10k tactics:
items p95 < 50 ms, tree p95 < 150 ms. `--small` is 20k items / 500 tactics (no targets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import percentile
from bench.bench_signals import AS_OF, Row, _count, populate
from okrsync.config import Settings, SignalsConfig
from okrsync.logging import configure
from okrsync.pipeline import recompute
from okrsync.store import Store
from okrsync.web.app import WebContext, create_app

TARGET_SIZE = (1_000_000, 10_000)
ITEMS_TARGET_MS = 50.0
TREE_TARGET_MS = 150.0


async def timed_gets(
    app: Any,
    paths: Callable[[int], str],
    n: int,
    *,
    check: Callable[[Any], None],
    before: Callable[[int], None] = lambda _i: None,
) -> list[float]:
    """Milliseconds of `n` GETs (paths(i), each after an untimed `before(i)`) through the
    app, after one untimed warm-up whose answer `check` inspects."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        warm = await http.get(paths(-1))
        check(warm.json())
        times = []
        for i in range(n):
            before(i)
            t0 = time.perf_counter()
            r = await http.get(paths(i))
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"GET {paths(i)}: {r.status_code} {r.text[:200]}")
    return times


def verdict(p95: float, limit: float | None, at_target: bool) -> str:
    """What to print beside a figure: its target and whether it was met."""
    if limit is None:
        return "no target"
    if not at_target:
        return f"target p95 < {limit:g} ms applies at 1M items / 10k tactics"
    return f"target p95 < {limit:g} ms: {'met' if p95 < limit else 'NOT met'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="20k items / 500 tactics")
    ap.add_argument("--items", type=int, default=None)
    ap.add_argument("--tactics", type=int, default=None)
    ap.add_argument("--tactics-per-kr", type=int, default=4)
    ap.add_argument("--krs-per-objective", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=200, help="requests per endpoint (tree: /5)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as rows here")
    args = ap.parse_args()
    args.items = args.items or (20_000 if args.small else TARGET_SIZE[0])
    args.tactics = args.tactics or (500 if args.small else TARGET_SIZE[1])
    rows = run(args)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))


def run(args: argparse.Namespace) -> list[Row]:
    case = f"{_count(args.items)} items / {_count(args.tactics)} tactics"
    at_target = (args.items, args.tactics) == TARGET_SIZE
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = Store.open(url)
        t0 = time.perf_counter()
        populate(store, args)
        recompute(store, SignalsConfig(), AS_OF)
        print(f"populated {case} and recomputed in {time.perf_counter() - t0:.1f} s")
        configure("warning")  # no line per request
        app = create_app(WebContext(Settings(store={"url": url}), store))
        rnd = random.Random(5)
        picks = [f"t{rnd.randrange(args.tactics)}" for _ in range(args.repeat)]

        def items_path(i: int) -> str:
            return f"/api/v1/tactics/{picks[i] if i >= 0 else 't0'}/items"

        def has_items(doc: Any) -> None:
            assert doc["count"] > 0, doc

        def whole(doc: Any) -> None:
            n = sum(len(k["tactics"]) for o in doc["objectives"] for k in o["key_results"])
            assert n == args.tactics, n

        def change(i: int) -> None:
            store.add_checkin("k0", float(i))

        tree = "/api/v1/tree"
        measured: list[tuple[str, Callable[[int], str], int, Any, Any, float | None]] = [
            ("GET /api/v1/tactics/{id}/items", items_path, args.repeat, has_items, None,
             ITEMS_TARGET_MS),
            ("GET /api/v1/tree", lambda _i: tree, max(20, args.repeat // 5), whole, None,
             TREE_TARGET_MS),
            ("GET /api/v1/tree, cold", lambda _i: tree, 10, whole, change, None),
        ]  # fmt: skip
        for name, paths, n, check, before, limit in measured:
            kw = {} if before is None else {"before": before}
            times = asyncio.run(timed_gets(app, paths, n, check=check, **kw))
            p50, p95 = statistics.median(times), percentile(times, 95)
            print(f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms over {n} requests "
                  f"({verdict(p95, limit, at_target)})")  # fmt: skip
            for metric, value in (("p50", p50), ("p95", p95)):
                target = limit if at_target and metric == "p95" else None
                rows.append({
                    "bench": "web", "case": case, "metric": f"{name} {metric}", "value": value,
                    "unit": "ms", "target": None if target is None else f"< {target:g} ms",
                    "ok": None if target is None else value < target,
                })  # fmt: skip
        store.close()
    return rows


if __name__ == "__main__":
    main()
