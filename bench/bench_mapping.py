"""Matching throughput: 100,000 items against 1,000 rules (`python -m bench.bench_mapping`).

Items look like the sandbox's (Jira/Asana/GitHub containers, epics, labels, milestones);
the rules mix every condition kind, including title-only rules that cannot be indexed.
Prints the compile time, the match time and the number of links found; `--json PATH` also
writes them as `python -m bench` table rows (the match time against its target, < 2 s).

    python -m bench.bench_mapping [N_ITEMS [N_RULES [RUNS]]] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from okrsync.mapping import Matcher, compile_rules
from okrsync.okrfile import RawRule, Source
from okrsync.remap import StoredItem, derive

LABELS = ("backend", "frontend", "infra", "growth", "bug", "tech-debt", "okr", "customer")
USERS = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov")
NOUNS = ("checkout", "onboarding", "billing", "search", "signup", "cache", "export", "alerts")
PROJECTS = [f"P{i}" for i in range(60)]
REPOS = [f"acme/repo{i}" for i in range(40)]
TARGET = (100_000, 1_000, 2.0)  # the match time of 100k items x 1k rules: under 2 s


def make_items(n: int, rng: random.Random) -> list[StoredItem]:
    """`n` items: Jira epics → stories → sub-tasks, GitHub issues with milestones."""
    items: list[StoredItem] = []
    epics: list[str] = []
    stories: list[str] = []
    for i in range(n):
        jira = i % 3 != 0
        container = rng.choice(PROJECTS) if jira else rng.choice(REPOS)
        key = f"{container}-{i}" if jira else f"{container}#{i}"
        roll = rng.random()
        level = 0 if (roll < 0.05 or not epics) else (2 if roll < 0.3 and stories else 1)
        parent = None
        if jira and level == 1 and rng.random() < 0.8:
            parent = rng.choice(epics[-200:])
        elif jira and level == 2:
            parent = rng.choice(stories[-500:])
        if jira:
            (epics if level == 0 else stories if level == 1 else []).append(key)
        items.append(
            StoredItem(
                connector="jira" if jira else "github",
                external_id=str(i),
                key=key,
                kind="epic" if jira and level == 0 else "issue",
                item_type=("Epic", "Story", "Sub-task")[level] if jira else "issue",
                title=f"{rng.choice(('Fix', 'Add', 'Ship'))} {rng.choice(NOUNS)} {i}",
                container=container,
                parent_key=parent,
                labels=tuple(rng.sample(LABELS, rng.randint(0, 3))),
                milestone=None if jira else f"v{rng.randint(1, 30)}",
                section=None,
                assignee=rng.choice(USERS),
                custom={"author": rng.choice(USERS)},
                previous_keys=(),
            )
        )
    return items


def make_rules(n: int, items: list[StoredItem], rng: random.Random) -> list[RawRule]:
    """`n` rules over 100 tactics, every condition kind represented, 1% title-only."""
    keys = [it.key for it in items]
    makers: list[Callable[[], dict[str, Any]]] = [
        lambda: {"connector": "jira", "container": rng.choice(PROJECTS)},
        lambda: {"container": rng.choice(REPOS), "labels_any": rng.sample(LABELS, 2)},
        lambda: {"epic": rng.choice(keys)},
        lambda: {"keys": rng.sample(keys, 5)},
        lambda: {"milestone": f"v{rng.randint(1, 30)}", "container": rng.choice(REPOS)},
        lambda: {"parent": rng.choice(keys)},
        lambda: {"labels_all": rng.sample(LABELS, 2), "container": rng.choice(PROJECTS)},
        lambda: {
            "container": rng.choice(PROJECTS),
            "title": f"(?i){rng.choice(NOUNS)}",
            "exclude": {"type": "Sub-task"},
        },
        lambda: {"custom": {"author": rng.choice(USERS)}, "container": rng.choice(REPOS)},
        lambda: {"assignee": rng.choice(USERS), "type": "Bug", "container": rng.choice(PROJECTS)},
    ]
    out: list[RawRule] = []
    for i in range(n):
        data: dict[str, Any] = (
            {"title": f"{rng.choice(NOUNS)} {i % 97}$"} if i % 100 == 0 else makers[i % 10]()
        )
        out.append(RawRule(f"t{i % 100}", i // 100, data, Source("bench.toml", i + 1)))
    return out


@dataclass(frozen=True)
class Figures:
    n_items: int
    n_rules: int
    runs: int
    unindexed: int
    compile_s: float
    wall_s: float  # best of `runs`
    cpu_s: float  # best of `runs`
    links: int


def measure(n_items: int = 100_000, n_rules: int = 1_000, runs: int = 3) -> Figures:
    rng = random.Random(42)
    items = make_items(n_items, rng)
    raws = make_rules(n_rules, items, rng)
    t0 = time.perf_counter()
    matcher = Matcher(compile_rules(raws))
    compile_s = time.perf_counter() - t0
    walls, cpus, total = [], [], 0
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        links = derive(items, matcher)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        total = sum(len(v) for v in links.values())
    unindexed = len(matcher.scan) + len(matcher.title_only)
    return Figures(n_items, n_rules, runs, unindexed, compile_s, min(walls), min(cpus), total)


def report(f: Figures) -> str:
    return (
        f"mapping: {f.n_items:,} items x {f.n_rules:,} rules ({f.unindexed} unindexed): "
        f"compile {f.compile_s:.3f} s; match incl. ancestors best of {f.runs}: "
        f"{f.wall_s:.3f} s wall, {f.cpu_s:.3f} s cpu; {f.links:,} links; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def _count(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def rows(f: Figures) -> list[dict[str, object]]:
    """The figures as `python -m bench` table rows; the match time of the target size (100k
    items x 1k rules) has a target, the other figures (and other sizes) have none."""
    case = f"{_count(f.n_items)} items x {_count(f.n_rules)} rules"
    limit = TARGET[2] if (f.n_items, f.n_rules) == TARGET[:2] else None

    def row(metric: str, value: float, unit: str, limit: float | None = None) -> dict[str, object]:
        return {
            "bench": "mapping",
            "case": case,
            "metric": metric,
            "value": float(value),
            "unit": unit,
            "target": None if limit is None else f"< {limit:g} s",
            "ok": None if limit is None else value < limit,
        }

    return [
        row("match time", f.wall_s, "s", limit),
        row("match cpu time", f.cpu_s, "s"),
        row("compile time", f.compile_s, "s"),
        row("links", f.links, "links"),
    ]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bench_mapping")
    p.add_argument("n_items", nargs="?", type=int, default=100_000)
    p.add_argument("n_rules", nargs="?", type=int, default=1_000)
    p.add_argument("runs", nargs="?", type=int, default=3, help="the best run is reported")
    p.add_argument("--json", type=Path, help="also write the figures as table rows here")
    a = p.parse_args()
    figures = measure(a.n_items, a.n_rules, a.runs)
    print(report(figures), flush=True)
    if a.json:
        a.json.write_text(json.dumps({"rows": rows(figures)}, indent=1))


if __name__ == "__main__":
    main()
