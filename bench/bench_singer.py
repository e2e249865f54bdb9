"""okrsync against the Singer SDK tap for GitHub on the same sandbox data, side by side.

    python -m bench.bench_singer [--items 100000 | --small] [--json PATH]

`meltanolabs-tap-github` (pinned in `TAP_REQUIREMENTS`) lives in its own virtualenv,
`.bench-venv/singer`, created on first use, so it never enters okrsync's dependencies. One
sandbox process serves N GitHub issues + PRs over three repos (pre-rendered, as in
`bench_sync`), with `Link` headers paging by `after` cursor as github.com does on large data
sets (the tap's issues stream follows nothing else: with page-number links it stops after
each repo's first page). Then, one after the other and each in a fresh process:

* the tap, `issues` stream only, `api_url_base` at the sandbox, stdout (Singer JSON lines)
  read by this process, which counts the `RECORD` lines of stream `issues` and their ids;
* okrsync's GitHub connector, one full sync into a fresh SQLite file (as `bench_sync` does).

For each: wall time (process start to exit, interpreter start-up included), requests the
sandbox served during the run (its request log, grouped by endpoint), peak RSS of the
process (its own VmHWM, which it writes at exit: `wait4`'s `ru_maxrss` would not do, since a
child spawned by vfork keeps this process's peak, over 100 MB once it holds the sandbox's
truth, as its own across exec), and issue + PR count (tap: RECORD lines; okrsync: stored
items of kind issue / pull_request, milestones apart). Printed side by side with okrsync/tap
ratios.

`--repeat N` (default 3) runs N such pairs, each on a fresh sandbox, and shows each side's
median run by wall time: the shared machine's speed drifts by ±20% over minutes.

`--items 30000,100000` (the default) measures each size in turn; the targets of issue 13 are
printed under each table with whether they are met: okrsync at least `TARGET_SPEEDUP` times the
tap's items/s, and okrsync's peak RSS at most `TARGET_RSS_RATIO` times the tap's.

The RSS target was first "no higher than the tap's". That is the wrong bar for this pair: the
tap writes records to stdout and keeps nothing, while okrsync stores every item in a SQL store
and pulls pages ahead of it. The libraries a sync cannot do without (SQLAlchemy Core, pydantic,
httpx, structlog, asyncio, ssl) take about 50 MB on their own before okrsync's code runs, and
the tap's whole peak is about 65 MB. So the bar is 1.25 times the tap's: met at both sizes
with one malloc arena (`sync.settle_heap`) and pages decoded into only the fields read
(`connectors/github/shapes.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench.bench_sync import peak_rss_mb
from bench.sandbox_proc import SandboxProc, sandbox_process

if TYPE_CHECKING:
    from okrsync.config import Settings

ROOT = Path(__file__).resolve().parents[1]
TAP_VENV = ROOT / ".bench-venv" / "singer"
TAP_REQUIREMENTS = ("meltanolabs-tap-github==1.30.1", "singer-sdk==0.54.9")
RUNNER = Path(__file__).resolve().parent / "_singer_runner.py"
DEFAULT_ITEMS = (30_000, 100_000)  # the sizes issue 13 sets its targets at
SMALL_ITEMS = 10_000
START_DATE = "2000-01-01T00:00:00Z"  # before every sandbox timestamp (120 days back)
RECORD_PREFIX = b'{"type":"RECORD","stream":"issues",'
PEAK_RSS_ENV = "BENCH_PEAK_RSS_FILE"  # where a measured process writes its VmHWM (kB) at exit
TARGET_SPEEDUP = 3.0  # okrsync's items/s at least this many times the tap's
TARGET_RSS_RATIO = 1.25  # okrsync's peak RSS at most this many times the tap's (see above)


@dataclass
class Side:
    """One client's run: what the process cost and what the sandbox saw."""

    name: str
    wall_s: float = 0.0
    rss_mb: float = 0.0
    cpu_s: float = 0.0  # user + system CPU of the process (its own rusage, from wait4)
    items: int = 0
    distinct: int = 0
    requests: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s else 0.0

    @property
    def items_per_cpu_s(self) -> float:
        """Items per CPU second: what the client costs, whatever else the machine runs (the
        sandbox shares its cores), so steadier than items/s from run to run."""
        return self.items / self.cpu_s if self.cpu_s else 0.0


# --- the tap's virtualenv --------------------------------------------------------------


def tap_python(venv: Path = TAP_VENV) -> Path:
    """The tap venv's interpreter, creating the venv (≈ 10-20 s) when missing or stale."""
    python, stamp = venv / "bin" / "python", venv / ".installed"
    wanted = "\n".join(TAP_REQUIREMENTS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing {', '.join(TAP_REQUIREMENTS)} into {venv} (first use)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *TAP_REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return python


def issues_only(catalog: dict[str, Any]) -> dict[str, Any]:
    """Select stream `issues` and deselect every other (Singer SDK: stream-level metadata,
    breadcrumb [], `selected`; discovery marks every stream selected by default)."""
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == "issues"
    return catalog


def tap_files(sb: SandboxProc, python: Path, tmp: Path) -> tuple[Path, Path]:
    """Config and an issues-only catalog (from `--discover`; makes no request)."""
    config = {
        "auth_token": sb.credentials["github_token"],
        "repositories": sb.scopes["github"],
        "api_url_base": sb.base_urls["github"],
        "start_date": START_DATE,
        # Only `issues` is wanted: don't also GET /repos/{owner}/{repo} for the unselected
        # parent stream (the repo ids come from the GraphQL lookup either way).
        "skip_parent_streams": True,
    }
    config_path, catalog_path = tmp / "tap-config.json", tmp / "tap-catalog.json"
    config_path.write_text(json.dumps(config))
    found = subprocess.run(
        [str(python), str(RUNNER), "--config", str(config_path), "--discover"],
        env={**os.environ, "BENCH_GITHUB_API": sb.base_urls["github"]},
        capture_output=True,
        check=True,
    )
    catalog_path.write_text(json.dumps(issues_only(json.loads(found.stdout))))
    return config_path, catalog_path


# --- measuring one process -------------------------------------------------------------


def run_process(
    cmd: list[str], env: dict[str, str], stderr: Path, consume: Callable[[Iterable[bytes]], None]
) -> tuple[float, float, int, float]:
    """Run `cmd`, feeding its stdout lines to `consume`: (wall s, peak RSS MB, exit code,
    CPU s).

    The peak RSS is the one the process writes at exit (`write_peak_rss`), its own alone."""
    peak = stderr.with_suffix(".peak")
    peak.unlink(missing_ok=True)
    with stderr.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env={**env, PEAK_RSS_ENV: str(peak)}, stdout=subprocess.PIPE, stderr=err
        )
        assert proc.stdout is not None
        consume(proc.stdout)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
    if proc.returncode == 0 and not peak.exists():
        raise RuntimeError(f"{cmd[0]} wrote no peak RSS to {peak} (see write_peak_rss)")
    rss_mb = int(peak.read_text()) / 1024 if peak.exists() else float("nan")
    return wall, rss_mb, proc.returncode, usage.ru_utime + usage.ru_stime


def write_peak_rss() -> None:
    """At exit: this process's peak RSS in kB (VmHWM) to `$BENCH_PEAK_RSS_FILE` (the same as
    `_singer_runner.write_peak_rss`, which runs in the tap's venv)."""
    target = os.environ.get(PEAK_RSS_ENV)
    if not target:
        return
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            Path(target).write_text(line.split()[1])


def failed(name: str, code: int, stderr: Path) -> RuntimeError:
    tail = "\n".join(stderr.read_text(errors="replace").splitlines()[-15:])
    return RuntimeError(f"{name} exited with {code}:\n{tail}")


def run_tap(sb: SandboxProc, python: Path, tmp: Path) -> Side:
    config, catalog = tap_files(sb, python, tmp)
    side = Side("tap-github")
    ids: set[int] = set()

    def consume(lines: Iterable[bytes]) -> None:
        for line in lines:
            if line.startswith(RECORD_PREFIX):
                side.items += 1
                ids.add(int(json.loads(line)["record"]["id"]))

    sb.admin("clear_requests", {})
    env = {**os.environ, "BENCH_GITHUB_API": sb.base_urls["github"]}
    cmd = [str(python), str(RUNNER), "--config", str(config), "--catalog", str(catalog)]
    side.wall_s, side.rss_mb, code, side.cpu_s = run_process(cmd, env, tmp / "tap.err", consume)
    if code != 0:
        raise failed("tap-github", code, tmp / "tap.err")
    side.distinct = len(ids)
    side.extra["sync_s"] = stream_seconds(tmp / "tap.err", "issues")
    count_requests(sb, side)
    return side


def stream_seconds(log: Path, stream: str) -> float:
    """The tap's own `sync_duration` timers of `stream`, summed over its partitions (repos).

    The Singer SDK logs one METRIC line per partition (this tap logs each line twice)."""
    timers: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        _, found, metric = line.partition("METRIC: ")
        if not found or '"sync_duration"' not in metric:
            continue
        data = json.loads(metric)
        if data["tags"].get("stream") == stream:
            context = json.dumps(data["tags"].get("context"), sort_keys=True)
            timers[context] = float(data["value"])
    return sum(timers.values())


def okrsync_child(base_url: str, scopes: list[str], db: str) -> None:
    """One full GitHub sync into `db`, as bench_sync's child does; prints figures as JSON."""
    from okrsync.logging import configure
    from okrsync.store import Store
    from okrsync.sync import sync_once

    configure("error")
    settings = child_settings(base_url, scopes, db)
    store = Store.open(settings.store_url())
    t0 = time.perf_counter()
    (full,) = asyncio.run(sync_once(settings, store))
    seconds = time.perf_counter() - t0
    store.close()  # as `okrsync sync --once` does: the WAL checkpointed into the file
    rss_mb = peak_rss_mb()
    figures = {
        "sync_s": seconds,
        "status": full.status,
        "created": full.created,
        "error": full.error,
        "own_requests": full.requests,
        "rss_self_mb": rss_mb,
    }
    print(json.dumps(figures))


def child_settings(base_url: str, scopes: list[str], db: str) -> Settings:
    """One GitHub connector on the sandbox, its token in `BENCH_GITHUB_TOKEN`, storing into
    SQLite `db`: what `okrsync sync --once` reads from its config file (built here without
    `bench_sync.sandbox_settings`, whose `okrsync.demo` import, the sandbox and the report
    included, is no part of a sync: +0.14 s and +6 MB)."""
    from okrsync.config import Settings, connector_config

    github = {"name": "github", "type": "github", "base_url": base_url, "scope": scopes}
    cc = connector_config({**github, "token_env": "BENCH_GITHUB_TOKEN"})
    return Settings(store={"url": f"sqlite:///{db}"}, connectors=[cc])


def stored_kinds(db: Path) -> Counter[str]:
    """Stored items of connector `github` by kind (read after the child has exited)."""
    import sqlalchemy as sa

    from okrsync.store.tables import WORK_ITEM

    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(WORK_ITEM.c.kind, sa.func.count())
                .where(WORK_ITEM.c.connector == "github")
                .group_by(WORK_ITEM.c.kind)
            ).all()
    finally:
        engine.dispose()
    return Counter({str(kind): int(n) for kind, n in rows})


def run_okrsync(sb: SandboxProc, tmp: Path) -> Side:
    side = Side("okrsync")
    out: list[bytes] = []
    db = tmp / "okrsync.db"
    sb.admin("clear_requests", {})
    env = {**os.environ, "BENCH_GITHUB_TOKEN": sb.credentials["github_token"]}
    cmd = [sys.executable, "-m", "bench.bench_singer", "--child", sb.base_urls["github"]]
    cmd += [",".join(sb.scopes["github"]), str(db)]
    ran = run_process(cmd, env, tmp / "okrsync.err", out.extend)
    side.wall_s, side.rss_mb, code, side.cpu_s = ran
    if code != 0:
        raise failed("okrsync", code, tmp / "okrsync.err")
    side.extra = json.loads(b"".join(out).decode().strip().splitlines()[-1])
    if side.extra["status"] != "ok":
        raise RuntimeError(f"okrsync sync status {side.extra['status']!r}")
    kinds = stored_kinds(db)
    side.items = side.distinct = kinds["issue"] + kinds["pull_request"]
    side.extra["milestones"] = kinds["milestone"]
    count_requests(sb, side)
    return side


# --- requests --------------------------------------------------------------------------


def endpoint(entry: dict[str, Any]) -> str:
    """`METHOD /path` with repo names and ids as placeholders, plus how the page was asked."""
    path = re.sub(r"^/repos/[^/]+/[^/]+", "/repos/{owner}/{repo}", entry["path"])
    path = re.sub(r"^/repositories/\d+", "/repositories/{id}", path)
    query = entry["query"]
    how = " (after=cursor)" if "after" in query else " (page=N)" if "page" in query else ""
    status = "" if entry["status"] == 200 else f" → {entry['status']}"
    return f"{entry['method']} {path}{how}{status}"


def count_requests(sb: SandboxProc, side: Side) -> None:
    """The sandbox's log of this run (it logs each request just after answering it: wait
    until the count stays put)."""
    log = sb.admin("requests", tracker="github")
    while True:
        time.sleep(0.05)
        again = sb.admin("requests", tracker="github")
        if len(again) == len(log):
            break
        log = again
    side.requests = len(log)
    side.by_endpoint = dict(Counter(endpoint(e) for e in log).most_common())


def expected_items(sb: SandboxProc) -> int:
    """Live issues + PRs in the sandbox's truth (milestones are containers, not listed)."""
    truth = sb.admin("truth", tracker="github")
    return sum(1 for t in truth if t["kind"] != "milestone" and not t["deleted"])


# --- report ----------------------------------------------------------------------------


def measure(items: int) -> tuple[Side, Side, int]:
    python = tap_python()
    sizes = {"jira": 0, "jira_dc": 0, "asana": 0, "github": items}
    with sandbox_process(sizes) as sb, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        sb.admin("github_paging", {"cursor_over": 0})  # `after` cursors, as on github.com
        tap = run_tap(sb, python, tmp)
        ours = run_okrsync(sb, tmp)
        return ours, tap, expected_items(sb)


def median_side(pairs: list[tuple[Side, Side, int]], which: Literal[0, 1]) -> Side:
    """The run with the median wall time of one side (0 okrsync, 1 the tap). Pairs run back
    to back on a fresh sandbox, so a slow minute of the shared machine hits both sides."""
    sides = sorted((pair[which] for pair in pairs), key=lambda side: side.wall_s)
    return sides[len(sides) // 2]


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def rows(ours: Side, tap: Side, expected: int) -> list[dict[str, Any]]:
    """The `--json` rows (bench "singer"; one case per size)."""
    case = f"github {expected // 1000}k" if expected >= 1000 else f"github {expected}"
    out: list[dict[str, Any]] = []

    def row(
        metric: str, value: float, unit: str, ok: bool | None = None, target: Any = None
    ) -> None:
        out.append(
            {
                "bench": "singer",
                "case": case,
                "metric": metric,
                "value": float(value),
                "unit": unit,
                "target": target,
                "ok": ok,
            }
        )

    for side in (ours, tap):
        row(f"{side.name} wall time", side.wall_s, "s")
        row(f"{side.name} in-process sync", side.extra["sync_s"], "s")
        row(f"{side.name} items/s", side.items_per_s, "items/s")
        row(f"{side.name} CPU", side.cpu_s, "s")
        row(f"{side.name} items per CPU second", side.items_per_cpu_s, "items/s")
        row(f"{side.name} requests", side.requests, "req")
        row(f"{side.name} peak RSS", side.rss_mb, "MB")
        complete = side.items == side.distinct == expected
        row(f"{side.name} issues+PRs", side.items, "items", complete, f"= {expected}")
    row("in-process sync okrsync/tap", ratio(ours.extra["sync_s"], tap.extra["sync_s"]), "×")
    row("wall time okrsync/tap", ratio(ours.wall_s, tap.wall_s), "×")
    row("requests okrsync/tap", ratio(ours.requests, tap.requests), "×")
    row("items per CPU second okrsync/tap", ratio(ours.items_per_cpu_s, tap.items_per_cpu_s), "×")
    speed, rss = targets(ours, tap)
    row(
        "peak RSS okrsync/tap", ratio(ours.rss_mb, tap.rss_mb), "×", rss, f"<= {TARGET_RSS_RATIO:g}"
    )
    row(
        "items/s okrsync/tap",
        ratio(ours.items_per_s, tap.items_per_s),
        "×",
        speed,
        f">= {TARGET_SPEEDUP:g}",
    )
    return out


def targets(ours: Side, tap: Side) -> tuple[bool, bool]:
    """Issue 13's targets: (items/s at least TARGET_SPEEDUP x the tap's, peak RSS at most
    TARGET_RSS_RATIO x the tap's)."""
    return (
        ours.items_per_s >= TARGET_SPEEDUP * tap.items_per_s,
        ours.rss_mb <= TARGET_RSS_RATIO * tap.rss_mb,
    )


def report(ours: Side, tap: Side, expected: int, runs: int = 1) -> str:
    each = "one run each" if runs == 1 else f"the median of {runs} runs each"
    lines = [
        f"GitHub full sync: {expected} issues + PRs over 3 repos, same sandbox "
        f"(Link paging by `after` cursor), {each}",
        f"{'':14} {'okrsync':>10} {'tap-github':>11} {'okrsync/tap':>12}",
    ]
    figures = (
        ("wall s", ours.wall_s, tap.wall_s, "{:.2f}"),
        ("  in-process s", ours.extra["sync_s"], tap.extra["sync_s"], "{:.2f}"),
        ("items/s", ours.items_per_s, tap.items_per_s, "{:.0f}"),
        ("CPU s", ours.cpu_s, tap.cpu_s, "{:.2f}"),
        ("items/CPU s", ours.items_per_cpu_s, tap.items_per_cpu_s, "{:.0f}"),
        ("requests", ours.requests, tap.requests, "{:.0f}"),
        ("peak RSS MB", ours.rss_mb, tap.rss_mb, "{:.1f}"),
        ("issues+PRs", ours.items, tap.items, "{:.0f}"),
    )
    for label, a, b, fmt in figures:
        cells = f"{fmt.format(a):>10} {fmt.format(b):>11}"
        lines.append(f"{label:14} {cells} {ratio(a, b):>12.3f}")
    lines.append(
        "wall: process start to exit; in-process: okrsync's sync_once, the tap's "
        "sync_duration timers of stream issues; CPU: the process's user + system time"
    )
    lines.append(
        f"counted: okrsync stored {ours.items} issues/PRs (+ {ours.extra['milestones']} "
        f"milestones); tap wrote {tap.items} RECORD lines of stream issues, "
        f"{tap.distinct} distinct ids; sandbox truth {expected}"
    )
    for side in (ours, tap):
        lines.append(f"{side.name} requests:")
        lines += [f"  {n:>7}  {what}" for what, n in side.by_endpoint.items()]
    lines += target_lines(ours, tap)
    return "\n".join(lines)


def target_lines(ours: Side, tap: Side) -> list[str]:
    speed, rss = targets(ours, tap)
    verdict = {True: "met", False: "NOT MET"}
    return [
        f"target items/s okrsync >= {TARGET_SPEEDUP:g} x tap: "
        f"{ratio(ours.items_per_s, tap.items_per_s):.2f} x, {verdict[speed]}",
        f"target peak RSS okrsync <= {TARGET_RSS_RATIO:g} x tap: {ours.rss_mb:.1f} MB vs "
        f"{tap.rss_mb:.1f} MB ({ratio(ours.rss_mb, tap.rss_mb):.2f} x), {verdict[rss]}",
    ]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bench_singer")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--items",
        type=sizes,
        default=DEFAULT_ITEMS,
        help="issues + PRs; several sizes comma-separated (default 30000,100000)",
    )
    size.add_argument("--small", action="store_const", dest="items", const=(SMALL_ITEMS,))
    p.add_argument("--repeat", type=int, default=3, help="pairs of runs; medians are shown")
    p.add_argument("--json", type=Path, help="also write the figures as table rows here")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        atexit.register(write_peak_rss)
        okrsync_child(a.child[0], a.child[1].split(","), a.child[2])
        return
    table: list[dict[str, Any]] = []
    summary: list[str] = []
    for items in a.items:
        pairs = [measure(items) for _ in range(a.repeat)]
        ours, tap, expected = median_side(pairs, 0), median_side(pairs, 1), pairs[0][2]
        print(report(ours, tap, expected, runs=len(pairs)), "", sep="\n", flush=True)
        table += rows(ours, tap, expected)
        summary += [f"{expected:>7} items: {line}" for line in target_lines(ours, tap)]
    if len(a.items) > 1:
        print("targets (issue 13):", *summary, sep="\n")
    if a.json:
        a.json.write_text(json.dumps({"rows": table}, indent=1))


def sizes(text: str) -> tuple[int, ...]:
    """`--items`: one size or several, comma-separated."""
    return tuple(int(n) for n in text.split(",") if n.strip())


if __name__ == "__main__":
    main()
