"""Start-up figures (`python -m bench.bench_startup`): what a command costs before any work.

Runs the installed `okrsync` console script as a user would, each case `--repeat` times
(default 5), and prints the median wall time (process start to exit) and the highest peak
RSS (`wait4`) of:

    okrsync --version
    okrsync --help
    okrsync mappings check      on the example mappings (mappings/), no store yet

plus the bare interpreter (`python -c pass`), the floor under every figure. A command imports
only what it uses (tests/unit/test_startup.py holds that line; no time is asserted there).

`--json PATH` also writes the figures as `python -m bench` table rows.

    python -m bench.bench_startup [--repeat N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.bench_sync import reference_s

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "mappings"


@dataclass(frozen=True)
class Figures:
    case: str
    wall_s: float  # median over the runs
    rss_mb: float  # the highest peak RSS of the runs
    runs: int


def okrsync_cmd() -> list[str]:
    """The console script beside this interpreter, else `python -m okrsync.cli`."""
    script = Path(sys.executable).with_name("okrsync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "okrsync.cli"]


# Peak RSS is read in a small runner process, not here: a child spawned by a large process
# reports that process's RSS as its own peak when it is the higher (Linux counts the memory it
# ran in before exec), and this process has imported the benchmark helpers. The runner is a
# bare interpreter, so the floor it imposes is `python -c pass`'s own figure.
RUNNER = """
import os, sys, time
null = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
t0 = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=null)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
print(wall, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_once(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall s, peak RSS MB) of one run of `cmd` (stdout discarded); a failure raises."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("OKRSYNC_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"runner failed: {proc.stderr.strip()[-300:]}")
    wall, rss_kb, code = proc.stdout.split()
    if code != "0":
        raise RuntimeError(f"{' '.join(cmd)} exited {code}: {proc.stderr.strip()[-300:]}")
    return float(wall), int(rss_kb) / 1024


def measure(case: str, cmd: list[str], cwd: Path, repeat: int) -> Figures:
    runs = [run_once(cmd, cwd) for _ in range(repeat)]
    wall = statistics.median(w for w, _ in runs)
    return Figures(case, wall, max(r for _, r in runs), repeat)


def cases(workdir: Path) -> list[tuple[str, list[str]]]:
    """(case name, command) of every measured case; `workdir` holds the check's config."""
    config = workdir / "okrsync.toml"
    config.write_text(f'[mappings]\npaths = ["{MAPPINGS.as_posix()}"]\n', encoding="utf-8")
    okrsync = okrsync_cmd()
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("okrsync --version", [*okrsync, "--version"]),
        ("okrsync --help", [*okrsync, "--help"]),
        ("okrsync mappings check", [*okrsync, "-c", str(config), "mappings", "check"]),
    ]


def rows(figures: list[Figures]) -> list[dict[str, object]]:
    """The figures as `python -m bench` table rows (no targets: these are watched, not gated)."""
    out: list[dict[str, object]] = []
    for f in figures:
        case = f"{f.case} (median of {f.runs})"
        for metric, value, unit in (("wall", f.wall_s * 1000, "ms"), ("peak RSS", f.rss_mb, "MB")):
            out.append(
                {
                    "bench": "startup",
                    "case": case,
                    "metric": metric,
                    "value": round(value, 1),
                    "unit": unit,
                    "target": None,
                    "ok": None,
                }
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bench_startup")
    p.add_argument("--repeat", type=int, default=5, help="runs per case; the median is shown")
    p.add_argument("--json", type=Path, help="also write the figures as table rows here")
    a = p.parse_args()
    print(f"reference loop {reference_s():.3f} s (lower: a faster machine right now)")
    print(f"{'case':28} {'wall ms':>8} {'peak RSS MB':>12}")
    figures: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="okrsync-startup-") as tmp:
        for case, cmd in cases(Path(tmp)):
            f = measure(case, cmd, Path(tmp), a.repeat)
            print(f"{f.case:28} {f.wall_s * 1000:>8.0f} {f.rss_mb:>12.1f}", flush=True)
            figures.append(f)
    if a.json:
        a.json.write_text(json.dumps({"rows": rows(figures)}, indent=1))


if __name__ == "__main__":
    main()
