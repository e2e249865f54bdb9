"""`make bench`: every benchmark in its own process, then ONE table of all their figures.

    python -m bench                        # sync 10k+100k per tracker, mapping 100k × 1k,
                                           # signals 1M, okrsync vs the Singer GitHub tap (100k),
                                           # start-up of --version, --help, mappings check,
                                           # read API 1M items / 10k tactics (web),
                                           # tracker change → signal by webhook (webhooks),
                                           # a 10k-item GitHub Projects board (projects)
    python -m bench --quick                # small sizes: a smoke run
    python -m bench --only sync,singer     # a subset (sync, mapping, signals, singer, startup,
                                           # web, webhooks, projects)
    python -m bench -v                     # also show each benchmark's own output
    python -m bench --json all.json        # also write the combined rows

Each module runs as `python -m <module> ... --json <tmp>/<name>.json` and writes
`{"rows": [{"bench", "case", "metric", "value", "unit", "target", "ok"}]}`. A module that
exits non-zero, or writes no (valid) JSON, shows as a failed row; the table is printed anyway
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from rich.console import Console
from rich.table import Table


class Row(TypedDict):
    bench: str
    case: str
    metric: str
    value: float
    unit: str
    target: str | None
    ok: bool | None


@dataclass(frozen=True)
class Bench:
    name: str
    module: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]


BENCHES = (
    Bench(
        "sync",
        "bench.bench_sync",
        ("--sizes", "10000,100000"),
        ("--sizes", "2000", "--repeat", "1"),
    ),
    Bench("mapping", "bench.bench_mapping", (), ()),
    Bench("signals", "bench.bench_signals", (), ("--items", "20000", "--tactics", "500")),
    Bench("singer", "bench.bench_singer", (), ("--items", "2000", "--repeat", "1")),
    Bench("startup", "bench.bench_startup", (), ("--repeat", "3")),
    Bench("web", "bench.bench_web", (), ("--small",)),
    Bench("webhooks", "bench.bench_webhooks", (), ("--changes", "5", "--items", "200")),
    Bench("projects", "bench.bench_projects", (), ("--size", "1000", "--repeat", "1")),
)


@dataclass(frozen=True)
class Outcome:
    """How one module's process ended and where its JSON should be."""

    bench: str
    json_path: Path
    returncode: int
    stderr_tail: str = ""
    seconds: float = 0.0


# --- collecting rows -------------------------------------------------------------------


def failed_row(bench: str, why: str) -> Row:
    return {
        "bench": bench,
        "case": "—",
        "metric": f"FAILED: {why}",
        "value": math.nan,
        "unit": "",
        "target": None,
        "ok": False,
    }


def _as_row(bench: str, raw: Any) -> Row:
    if not isinstance(raw, dict):
        raise TypeError("a row is not an object")
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"value {value!r} is not a number")
    ok = raw.get("ok")
    if ok is not None and not isinstance(ok, bool):
        raise TypeError(f"ok {ok!r} is not a boolean or null")
    target = raw.get("target")
    return {
        "bench": str(raw.get("bench") or bench),
        "case": str(raw["case"]),
        "metric": str(raw["metric"]),
        "value": float(value),
        "unit": str(raw.get("unit") or ""),
        "target": None if target is None else str(target),
        "ok": ok,
    }


def _read_rows(bench: str, path: Path) -> list[Row]:
    data = json.loads(path.read_text())
    raw_rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(raw_rows, list):
        raise TypeError('no "rows" list')
    return [_as_row(bench, r) for r in raw_rows]


def load_rows(outcome: Outcome) -> list[Row]:
    """The module's rows, plus a failed row if it exited non-zero or wrote no valid JSON."""
    rows: list[Row] = []
    problem = ""
    try:
        rows = _read_rows(outcome.bench, outcome.json_path)
        if not rows:
            problem = "wrote no rows"
    except FileNotFoundError:
        problem = "wrote no JSON"
    except (ValueError, TypeError, KeyError) as exc:
        problem = f"invalid JSON rows ({type(exc).__name__}: {exc})"
    if outcome.returncode != 0:
        last = outcome.stderr_tail.strip().splitlines()[-1:] or [""]
        problem = f"exit {outcome.returncode}" + (f": {last[0][:120]}" if last[0] else "")
    if problem:
        rows.append(failed_row(outcome.bench, problem))
    return rows


# --- rendering -------------------------------------------------------------------------


def format_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "—"
    if value == int(value) and abs(value) < 1e15:
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def build_table(rows: Sequence[Row], title: str = "okrsync benchmarks") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("bench", style="bold")
    table.add_column("case")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target")
    table.add_column("ok", justify="center")
    for row in rows:
        mark = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: ""}[row["ok"]]
        metric = row["metric"]
        if metric.startswith("FAILED"):
            metric = f"[red]{metric}[/red]"
        table.add_row(
            row["bench"],
            row["case"],
            metric,
            format_value(row["value"], row["unit"]),
            row["target"] or "",
            mark,
        )
    return table


# --- running ---------------------------------------------------------------------------


def run_bench(bench: Bench, quick: bool, out_dir: Path, verbose: bool) -> Outcome:
    json_path = out_dir / f"{bench.name}.json"
    args = bench.quick_args if quick else bench.args
    cmd = [sys.executable, "-m", bench.module, *args, "--json", str(json_path)]
    print(f"== {bench.module} {' '.join(args)}".rstrip(), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        stdout=None if verbose else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - t0
    if verbose and proc.stderr:
        sys.stderr.write(proc.stderr)
    tail = "\n".join(proc.stderr.splitlines()[-20:])
    status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    print(f"   {status} in {seconds:.0f} s", file=sys.stderr, flush=True)
    return Outcome(bench.name, json_path, proc.returncode, tail, seconds)


def select(only: str | None) -> list[Bench]:
    if not only:
        return list(BENCHES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {b.name: b for b in BENCHES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown bench {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description="Run the benchmarks.")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help="sync, mapping, signals, singer, startup, web, webhooks, projects",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show each module's output")
    p.add_argument("--json", type=Path, help="also write the combined rows here")
    a = p.parse_args(argv)
    benches = select(a.only)
    rows: list[Row] = []
    failures: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-") as tmp:
        for bench in benches:
            outcome = run_bench(bench, a.quick, Path(tmp), a.verbose)
            got = load_rows(outcome)
            rows += got
            if any(r["metric"].startswith("FAILED") for r in got):
                failures.append(outcome)
    # Wide enough for one line per row in a log or CI output too (no terminal: 80 columns).
    console = Console(width=max(Console().width, 120))
    title = "okrsync benchmarks" + (" (--quick)" if a.quick else "")
    console.print(build_table(rows, title))
    for outcome in failures:
        if outcome.stderr_tail:
            console.rule(f"{outcome.bench}: end of stderr", style="red")
            console.print(outcome.stderr_tail, markup=False, highlight=False)
    if a.json:
        a.json.write_text(json.dumps({"rows": rows}, indent=1, allow_nan=True))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
