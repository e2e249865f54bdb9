"""A GitHub Projects board pulled through GraphQL from the sandbox into SQLite: items/s of a
full pull, requests of the no-change re-sync.

    python -m bench.bench_projects [--size 10000] [--repeat 3] [--json rows.json]

The sandbox runs in its own process with a board `acme/12` of `--size` items (issues and PRs of
the GitHub repositories, one in ten a draft); the sync runs in a fresh child process per
measurement over the scope `project:acme/12` alone. The re-sync right after, with nothing
changed, should cost one request (the board's `updatedAt`). Targets (issue 19): ≥ 5,000
items/s for a 10k-item board, 1 request for the re-sync.

The sandbox's GraphQL builds each record's answer on first use and keeps it (REST's `--warm`
pre-renders its JSON instead): one listing of the board before the measured run warms it, so
the figure measures the client, not the fake's first pass.

A second figure isolates the connector: the same board's GraphQL answers, recorded once, are
replayed in process (no server, no store) while `GitHubConnector.pull` turns them into work
items: what the client side costs, apart from how fast the sandbox serves GraphQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.bench_sync import peak_rss_mb, sandbox_settings
from bench.sandbox_proc import sandbox_process

if TYPE_CHECKING:
    import httpx

    from okrsync.config import ConnectorConfig

BOARD = "project:acme/12"


def child(base_url: str, db: str) -> None:
    """Pull the board twice and print the figures as JSON (runs in a fresh process)."""
    from okrsync.logging import configure
    from okrsync.store import Store
    from okrsync.sync import sync_once

    configure("error")
    creds = json.loads(os.environ["BENCH_CREDS"])
    settings = sandbox_settings("github", base_url, [BOARD], db, creds)
    store = Store.open(settings.store_url())
    t0 = time.perf_counter()
    (full,) = asyncio.run(sync_once(settings, store))
    seconds = time.perf_counter() - t0
    if full.status != "ok":
        raise SystemExit(f"the full pull failed: {full.error}")
    board_items = sum(1 for i in store.items("github") if BOARD in (i.boards or ()))
    time.sleep(1.1)
    (again,) = asyncio.run(sync_once(settings, store))
    store.close()
    print(
        json.dumps(
            {
                "items": full.created,
                "board_items": board_items,
                "seconds": seconds,
                "requests": full.requests,
                "resync_requests": again.requests,
                "resync_status": again.status,
                "rss_mb": peak_rss_mb(),
            }
        )
    )


def replayed(base_url: str, creds: dict[str, str]) -> float:
    """Items/s of `GitHubConnector.pull` over the board's recorded answers (in process)."""
    import httpx

    settings = sandbox_settings("github", base_url, [BOARD], ":memory:", creds)
    (cc,) = settings.connectors
    answers: dict[bytes, bytes] = {}
    with httpx.Client() as live:

        def record(request: httpx.Request) -> httpx.Response:
            resp = live.send(
                live.build_request(
                    "POST", request.url, content=request.content, headers=request.headers
                )
            )
            answers[request.content] = resp.content
            return httpx.Response(
                resp.status_code, content=resp.content, headers={"content-type": "application/json"}
            )

        asyncio.run(_pull(cc, httpx.MockTransport(record)))

    def replay(request: httpx.Request) -> httpx.Response:
        body = answers[request.content]
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    t0 = time.perf_counter()
    n = asyncio.run(_pull(cc, httpx.MockTransport(replay)))
    return n / (time.perf_counter() - t0)


async def _pull(cc: ConnectorConfig, transport: httpx.MockTransport) -> int:
    import httpx
    from okrsync_connectors.github import GitHubConnector

    from okrsync.http import Http

    async with httpx.AsyncClient(transport=transport) as client:
        connector = GitHubConnector(cc, Http(client, connector="bench"))
        return sum([len(page.items) async for page in connector.pull(None)])


def measure(size: int) -> dict[str, float]:
    sizes = {"github": max(size, 200), "github_project": size, "jira": 0, "jira_dc": 0}
    with sandbox_process({**sizes, "asana": 0}) as sb, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_CREDS": json.dumps(sb.credentials)}
        # Recording the answers also warms the sandbox for the child's timed pull.
        replayed_items_s = replayed(sb.base_urls["github"], sb.credentials)
        cmd = [sys.executable, "-m", "bench.bench_projects", "--child", sb.base_urls["github"]]
        out = subprocess.run(
            [*cmd, str(Path(tmp) / "bench.db")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        fig: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        fig["replayed_items_s"] = replayed_items_s
        return fig


def rows(size: int, f: dict[str, float], runs: int) -> list[dict[str, object]]:
    case = f"board of {size // 1000}k items" + (f" (median of {runs})" if runs > 1 else "")
    rate = f["items"] / f["seconds"]

    def row(metric: str, value: float, unit: str, target: str, ok: bool) -> dict[str, object]:
        return {
            "bench": "projects",
            "case": case,
            "metric": metric,
            "value": value,
            "unit": unit,
            "target": target,
            "ok": ok,
        }

    return [
        row("full pull", rate, "items/s", "≥ 5,000", rate >= 5_000),
        row("no-change re-sync", f["resync_requests"], "requests", "1", f["resync_requests"] <= 1),
        row("connector alone (answers replayed)", f["replayed_items_s"], "items/s", "—", True),
        row("peak RSS", f["rss_mb"], "MB", "< 150", f["rss_mb"] < 150),
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3, help="runs; the median is shown")
    p.add_argument("--child", nargs=2)
    p.add_argument("--json", type=Path, help="also write the figures as table rows here")
    a = p.parse_args()
    if a.child:
        child(a.child[0], a.child[1])
        return
    runs = sorted(
        (measure(a.size) for _ in range(a.repeat)), key=lambda f: f["items"] / f["seconds"]
    )
    f = runs[len(runs) // 2]
    print(
        f"board items {int(f['board_items'])}, stored {int(f['items'])} in {f['seconds']:.2f} s: "
        f"{f['items'] / f['seconds']:.0f} items/s, {int(f['requests'])} requests; "
        f"no-change re-sync {int(f['resync_requests'])} request(s); peak RSS {f['rss_mb']:.1f} MB; "
        f"connector alone over replayed answers {f['replayed_items_s']:.0f} items/s",
        flush=True,
    )
    if a.json:
        a.json.write_text(json.dumps({"rows": rows(a.size, f, len(runs))}, indent=1))


if __name__ == "__main__":
    main()
