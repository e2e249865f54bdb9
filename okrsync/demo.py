"""`okrsync demo`: the main job end to end on the embedded default (SQLite) against the sandbox.

Starts the local fake trackers, configures one connector per tracker, loads the example
mapping files (a copy in the work folder, with trial-conversion's `sql` source switched on over
the sandbox's analytics database, a SQLite file there), measures that source (its history
since the period start), records a few example check-ins by hand for others, syncs
everything, mutates a few items and today's figure upstream, syncs and measures again (the
incremental path: trial-conversion moves only because its SQL source changed), then prints
the OKR tree and, with `serve`, serves the dashboard on 127.0.0.1 until Ctrl-C (the CLI asks
for it on a terminal, not with --no-serve). Everything it prints goes through `render` and
`report`, which strip terminal control characters from stored text.

Before the re-sync, webhooks in (docs/webhooks.md) end to end: the daemon's receiver and
dispatcher (okrsync.web.hooks, okrsync.hooks.dispatch) on a free loopback port, the GitHub
connector's hooks registered in the sandbox as `okrsync hooks register` does (a random secret
in DEMO_HOOK_ENV), one open GitHub issue closed there, and the signed delivery's run (trigger
"webhook") shown with the time from the change to the signal; every wait is bounded
(WEBHOOK_WAIT_S) and the hooks are removed again before the re-sync's changes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from okrsync.cli_init import example_path
from okrsync.config import ConnectorConfig, Settings, connector_config
from okrsync.errors import ConfigError, OkrsyncError
from okrsync.logging import configure, quiet_defaults
from okrsync.okrfile import OkrTree
from okrsync.pipeline import MappingState, sync_and_recompute
from okrsync.render import render_runs
from okrsync.report import export_tree, render_report, tree_sources
from okrsync.sandbox import Sandbox, analytics
from okrsync.signal_types import midnight
from okrsync.signals import today
from okrsync.store import Store
from okrsync.textsafe import markup_safe as safe

if TYPE_CHECKING:
    from okrsync.connector import HookTarget
    from okrsync.models import RunResult

MAPPINGS = example_path("mappings")  # the checkout's mappings/, or the wheel's copy
DEMO_SIZES = {"jira": 400, "jira_dc": 200, "asana": 300, "github": 400}
DEMO_CHECKINS = {
    "trial-conversion": (11.2, 0.7, "demo: weekly funnel export"),
    "activation-time": (31.0, 0.6, "demo: median from product analytics"),
    "p95-latency": (410.0, 0.8, "demo: APM dashboard"),
}
# Earlier readings, so a key result's chart has a history: at these fractions of the time from
# the period's start to now, these fractions of the way from the start value to today's value.
DEMO_HISTORY = ((0.0, 0.0), (0.35, 0.45), (0.7, 0.8))
DEMO_PORT = 8464
# The key result the demo measures from its source and the commented line (mappings/okrs.toml)
# its copy of the mappings switches on, the environment variable that line's url_env names (set
# to the sandbox's analytics database) and today's figure there before the upstream change
DEMO_SOURCE = ("trial-conversion", '# source = { kind = "sql"')
DEMO_SOURCE_ENV = "ANALYTICS_DB_URL"
DEMO_SOURCE_BEFORE = 10.9
ENV = {
    "jira_email": "OKRSYNC_SANDBOX_JIRA_EMAIL",
    "jira_token": "OKRSYNC_SANDBOX_JIRA_TOKEN",
    "jira_dc_token": "OKRSYNC_SANDBOX_JIRA_DC_TOKEN",
    "asana_token": "OKRSYNC_SANDBOX_ASANA_TOKEN",
    "github_token": "OKRSYNC_SANDBOX_GITHUB_TOKEN",
}
# Webhooks in: the GitHub connector's secret (random on every run), how long a hint waits
# before its run (the connector's webhook_coalesce_s) and the most the demo waits for it
DEMO_HOOK_ENV = "OKRSYNC_DEMO_GITHUB_WEBHOOK_SECRET"
DEMO_HOOK_KEYS = {"webhook_secret_env": DEMO_HOOK_ENV, "webhook_coalesce_s": 0.2}
# The GitHub Projects board the demo's github connector also pulls (its "payments-sprint"
# tactic maps the board's current iteration); the board's Done column counts as done.
DEMO_BOARD = "project:acme/12"
DEMO_BOARD_KEYS = {"status_map": {"Done": "done"}}
WEBHOOK_WAIT_S = 10.0


def sandbox_env(sb: Sandbox) -> dict[str, str]:
    """Environment variables holding the sandbox's (fake) credentials."""
    return {env: sb.credentials[key] for key, env in ENV.items()}


def sandbox_connectors(
    sb: Sandbox, extra: Mapping[str, Mapping[str, object]] | None = None, **overrides: object
) -> list[ConnectorConfig]:
    """One connector per sandbox tracker, credentials named by environment variable;
    `extra`: more keys for a connector by name, `overrides` for every one."""
    specs = [
        (
            "jira",
            "jira",
            "jira",
            {"flavor": "auto", "email_env": ENV["jira_email"], "token_env": ENV["jira_token"]},
        ),
        ("jira-dc", "jira", "jira_dc", {"flavor": "auto", "token_env": ENV["jira_dc_token"]}),
        ("asana", "asana", "asana", {"token_env": ENV["asana_token"]}),
        ("github", "github", "github", {"token_env": ENV["github_token"]}),
    ]
    return [
        connector_config(
            {
                "name": name,
                "type": kind,
                "base_url": sb.base_url(tracker),
                "scope": sb.scopes(tracker),
                "jitter_s": 0,
                **keys,
                **(extra or {}).get(name, {}),
                **overrides,
            }
        )
        for name, kind, tracker, keys in specs
    ]


def demo_github_keys(sb: Sandbox) -> dict[str, object]:
    """The demo's github connector: webhooks in, and the board beside the repositories."""
    return {**DEMO_HOOK_KEYS, **DEMO_BOARD_KEYS, "scope": [*sb.scopes("github"), DEMO_BOARD]}


def earlier_readings(tree: OkrTree, kr_id: str, value: float) -> list[tuple[datetime, float]]:
    """DEMO_HISTORY's readings of a key result between its period's start and now (none
    when the period has not started)."""
    kr = tree.key_results[kr_id]
    start = midnight(tree.objectives[kr.objective].start)
    now = datetime.now(UTC)
    if start >= now:
        return []
    return [(start + (now - start) * t, kr.start + (value - kr.start) * v) for t, v in DEMO_HISTORY]


def demo_mappings(workdir: Path) -> Path:
    """The example mappings copied into `workdir/mappings`, DEMO_SOURCE's line switched on."""
    target = (workdir / "mappings").resolve()
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(MAPPINGS.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        (target / path.name).write_text(text.replace(DEMO_SOURCE[1], DEMO_SOURCE[1][2:], 1))
    return target


def analytics_db(workdir: Path, tree: OkrTree) -> Path:
    """The sandbox's analytics database in `workdir` (rebuilt on every run): a daily
    conversion figure from DEMO_SOURCE's start value at its period's start to
    DEMO_SOURCE_BEFORE today; DEMO_SOURCE_ENV names it."""
    path = (workdir / "analytics.db").resolve()
    kr = tree.key_results.get(DEMO_SOURCE[0])
    first = kr.start if kr is not None else DEMO_SOURCE_BEFORE
    today = datetime.now(UTC).date()
    start = tree.objectives[kr.objective].start if kr is not None else today
    analytics.build(path, start=start, today=today, first=first, last=DEMO_SOURCE_BEFORE)
    os.environ[DEMO_SOURCE_ENV] = analytics.url(path)
    return path


def measure_demo_source(
    console: Console, store: Store, tree: OkrTree, store_url: str, *, backfill: bool
) -> None:
    """Read DEMO_SOURCE as `okrsync measure KR` does (with `backfill`, `--since <period
    start>`: its history) and record the readings, through the same code
    (okrsync.measuring)."""
    from okrsync.measuring import read_one, record

    kr_id = DEMO_SOURCE[0]
    kr = tree.key_results.get(kr_id)
    if kr is None or kr.metric_source is None:
        return
    kind, now = kr.metric_source.kind, datetime.now(UTC)
    since = midnight(tree.objectives[kr.objective].start) if backfill else None
    done = record(store, asyncio.run(read_one(kr, since=since, now=now, own_store_url=store_url)))
    head = f"measured [bold]{kr_id}[/] from its {kind} source"
    if done.failure:
        console.print(f"{head}: failed: {safe(done.failure)}", soft_wrap=True)
        return
    console.print(
        f"{head}: {done.added} reading(s) recorded as check-ins by source:{kind} "
        f"(`okrsync measure{' --since' if backfill else ''}`)",
        soft_wrap=True,
    )


def run_demo(
    console: Console,
    workdir: Path,
    sizes: dict[str, int] | None = None,
    *,
    serve: bool = False,
    port: int = DEMO_PORT,
) -> None:
    configure("warning")
    quiet_defaults()
    workdir.mkdir(parents=True, exist_ok=True)
    db = (workdir / "okrsync.db").resolve()
    for suffix in ("", "-wal", "-shm"):  # the demo's own store, rebuilt on every run
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with Sandbox(seed=7, sizes=sizes or DEMO_SIZES) as sb:
        os.environ.update(sandbox_env(sb))
        os.environ[DEMO_HOOK_ENV] = secrets.token_hex(32)
        settings = Settings(
            store={"url": f"sqlite:///{db}"},
            mappings={"paths": [str(demo_mappings(workdir))]},
            connectors=sandbox_connectors(sb, {"github": demo_github_keys(sb)}),
            base_dir=workdir.resolve(),
        )
        store = Store.open(settings.store_url())
        mapping = MappingState.load(settings)
        mapping.apply(store, settings)
        tree = mapping.tree
        upstream = analytics_db(workdir, tree)
        measure_demo_source(console, store, tree, settings.store_url(), backfill=True)
        for kr_id, (value, conf, note) in DEMO_CHECKINS.items():
            kr = tree.key_results.get(kr_id)
            if kr is not None and kr.metric_source is None:  # by hand: no source
                for at, earlier in earlier_readings(tree, kr_id, value):
                    store.add_checkin(
                        kr_id, earlier, note="demo: earlier reading", author="demo", at=at
                    )
                store.add_checkin(kr_id, value, confidence=conf, note=note, author="demo")
        console.print(f"[bold]sandbox[/] http://127.0.0.1:{sb.port}  ·  [bold]store[/] {safe(db)}")
        for step, title in enumerate(
            (
                "full sync",
                "incremental re-sync after 5 changes per tracker; today's conversion upstream",
            ),
            1,
        ):
            console.print(f"[bold]{step}. {title}[/]")
            if step == 2:
                asyncio.run(webhook_change(console, sb, settings, store, mapping))
                for tracker in ("jira", "asana", "github"):
                    sb.mutate(tracker, 5)
                analytics.set_today(upstream, DEMO_CHECKINS[DEMO_SOURCE[0]][0])
                # today's conversion changed in the analytics database
                measure_demo_source(console, store, tree, settings.store_url(), backfill=False)
            done = asyncio.run(sync_and_recompute(settings, store, mapping, role="demo"))
            render_runs(console, done.results)
        console.print("[bold]3. the OKR report[/]: outcome (check-ins) beside execution (work)")
        sources = tree_sources(lambda: tree)
        render_report(console, export_tree(store, today(), settings.signals, sources=sources))
        if serve:
            serve_dashboard(console, settings, store, port)
        else:
            console.print(
                f"[bold]dashboard[/]: run [bold]okrsync demo[/] on a terminal, or "
                f"OKRSYNC_STORE__URL=sqlite:///{safe(db)} okrsync web",
                soft_wrap=True,  # one line a reader can copy, however long the path
            )
        store.close()


@dataclass(frozen=True)
class Closing:
    """The GitHub issue the demo closes upstream and a tactic that counts it."""

    key: str
    external_id: str
    tactic: str


Counts = tuple[int, int, float | None]  # a tactic's items done, items in all, completion


def issue_to_close(sb: Sandbox, store: Store) -> Closing | None:
    """The first open GitHub issue (by key) that a tactic counts, if any."""
    issues = [t for t in sb.truth("github").values() if t.kind == "issue" and t.status == "todo"]
    for issue in sorted(issues, key=lambda t: t.key):
        tactics = store.linked_tactics("github", [issue.external_id])
        if tactics:
            return Closing(issue.key, issue.external_id, min(tactics))
    return None


def tactic_counts(store: Store, tactic: str) -> Counts:
    """A tactic's items done, items in all and completion, from its newest snapshot."""
    newest = store.subject_history("tactic", tactic, limit=1)
    values = newest[-1].values if newest else {}
    done, total = int(values.get("items_done") or 0), int(values.get("items_total") or 0)
    return done, total, values.get("completion")


async def webhook_change(
    console: Console, sb: Sandbox, settings: Settings, store: Store, mapping: MappingState
) -> None:
    """With the daemon's webhook receiver and dispatcher on a free loopback port and the
    GitHub connector's hooks registered in the sandbox, close one open GitHub issue there and
    print how its signed delivery reached the signals (or that it did not within
    WEBHOOK_WAIT_S). The hooks are removed again, so later changes wait for the re-sync."""
    from okrsync.hooks.dispatch import Dispatcher
    from okrsync.pipeline import run_locks
    from okrsync.web.app import WebContext, create_app
    from okrsync.web.server import WebServer

    locks = run_locks(store, "demo")
    arrived: asyncio.Queue[RunResult | str] = asyncio.Queue()

    async def run(name: str) -> bool:  # the daemon's Service.hinted_run, for the demo
        try:
            done = await sync_and_recompute(
                settings, store, mapping, name, role="demo", locks=locks, trigger="webhook"
            )
        except OkrsyncError as exc:
            arrived.put_nowait(str(exc))
            return True
        for result in done.results:
            arrived.put_nowait(result)
        return not done.skipped

    hooks = Dispatcher(store, lambda: settings, run, locks)
    server = WebServer(create_app(WebContext(settings, store, hooks=hooks)), "127.0.0.1", 0)
    targets: list[HookTarget] = []
    try:
        await server.start()
        targets = await register_github(console, settings, server.url)
        if targets:
            await close_and_wait(console, sb, store, arrived)
    except OSError as exc:
        console.print(f"webhook: cannot listen on 127.0.0.1 ({safe(exc.strerror or exc)})")
    finally:
        for target in targets:
            sb.hooks.remove("github", target.hook_id)
        await asyncio.to_thread(sb.hooks.settle, 2.0)  # nothing left in flight to our port
        await hooks.close()
        await server.stop()
        locks.close()


async def register_github(console: Console, settings: Settings, base: str) -> list[HookTarget]:
    """The GitHub connector's hooks, registered as `okrsync hooks register github
    --base-url BASE` does (okrsync.cli_hooks, connectors/github/hooks.py); none, with a
    line, when the tracker refused."""
    from okrsync.cli_hooks import plans_for, refusal, register_plan

    (plan,) = plans_for(settings, "github", base)
    registering = register_plan(plan)
    try:
        targets = await asyncio.wait_for(registering, WEBHOOK_WAIT_S)
    except Exception as exc:  # a refusal is a line: the re-sync still brings the change in
        why = f"no answer within {WEBHOOK_WAIT_S:g} s" if isinstance(exc, TimeoutError) else None
        console.print(
            f"webhook: registering the GitHub hooks failed: {safe(why or refusal(plan, exc))}; "
            "the re-sync below brings the changes in",
            soft_wrap=True,
        )
        return []
    route = urllib.parse.urlsplit(plan.url)  # no http:// URL: the dashboard's is the one
    console.print(
        f"webhooks: {len(targets)} GitHub repository hook(s) registered "
        f"(`okrsync hooks register`), delivering to the receiver on {safe(route.netloc)} "
        f"(POST {safe(route.path)})",
        soft_wrap=True,
    )
    return targets


async def close_and_wait(
    console: Console, sb: Sandbox, store: Store, arrived: asyncio.Queue[RunResult | str]
) -> None:
    """Close one open GitHub issue upstream; print its webhook run's effect and the time
    from the change to the signal, or a line when none came within WEBHOOK_WAIT_S."""
    pick = await asyncio.to_thread(issue_to_close, sb, store)
    if pick is None:
        console.print("webhook: no open GitHub issue that a tactic counts; nothing closed")
        return
    before = await asyncio.to_thread(tactic_counts, store, pick.tactic)
    started = time.monotonic()
    sb.update("github", pick.external_id, status="done")
    try:
        result = await asyncio.wait_for(arrived.get(), WEBHOOK_WAIT_S)
    except TimeoutError:
        console.print(
            f"webhook: {safe(pick.key)} closed, but no webhook run came within "
            f"{WEBHOOK_WAIT_S:g} s; the re-sync below brings the change in",
            soft_wrap=True,
        )
        return
    seconds = time.monotonic() - started
    after = await asyncio.to_thread(tactic_counts, store, pick.tactic)
    line = await asyncio.to_thread(arrival, store, pick, result, (before, after), seconds)
    console.print(line, soft_wrap=True)


def arrival(
    store: Store, pick: Closing, result: RunResult | str, counts: tuple[Counts, Counts], s: float
) -> str:
    """The line saying what the webhook's run did: the tactic's completion before and after,
    the time from the change to the signal and the run as recorded."""
    head = f"webhook: {safe(pick.key)} closed →"
    if isinstance(result, str) or result.status != "ok":
        why = result if isinstance(result, str) else result.error or result.status
        return f"{head} its webhook run failed ({safe(why)}); the re-sync below tries again"
    row = store.run(result.run_id)
    (done0, total0, before), (done1, total1, after) = counts
    return (
        f"{head} tactic {safe(pick.tactic)} completion {_pct(before)} → {_pct(after)} "
        f"({done0}/{total0} → {done1}/{total1} done) in {s:.1f} s; run {result.run_id} "
        f'recorded with trigger "{row.trigger if row else "?"}"'
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def serve_dashboard(console: Console, settings: Settings, store: Store, port: int) -> None:
    """Serve the dashboard over the demo's store on 127.0.0.1 until Ctrl-C."""
    from okrsync.web.app import WebContext, create_app
    from okrsync.web.server import run

    def ready(bound: int) -> None:
        console.print(
            f"[bold]4. the dashboard[/]: http://127.0.0.1:{bound}/  (Ctrl-C to stop)",
            highlight=False,
        )

    try:
        run(create_app(WebContext(settings, store)), "127.0.0.1", port, ready=ready)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve the dashboard on 127.0.0.1:{port} ({exc.strerror}): pass "
            "--port 0 for any free port, or --no-serve"
        ) from None
