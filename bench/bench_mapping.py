"""Mapping figures (`python -m bench.bench_mapping`): matching and loading.

Match: 100,000 items against 1,000 rules. Items look like the sandbox's (Jira/Asana/GitHub
containers, epics, labels, milestones); the rules mix every condition kind, including
title-only rules that cannot be indexed. Prints the compile time, the match time and the
number of links found.

Load: a generated mapping file of 10,000 tactics with 3 rules each (in a temporary folder),
read, validated and compiled as `okrsync mappings check` does (`load_tree` + `check_rules`).

`--json PATH` also writes the figures as `python -m bench` table rows (the match time and
the load time against their targets, both < 2 s).

    python -m bench.bench_mapping [N_ITEMS [N_RULES [RUNS]]] [--tactics N] [--only match|load]
                                  [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bench_sync import reference_s
from okrsync.linking import derive
from okrsync.mapping import Matcher, check_rules, compile_rules
from okrsync.okrfile import RawRule, Source, load_tree, no_cycle_collection
from okrsync.store import StoredItem

LABELS = ("backend", "frontend", "infra", "growth", "bug", "tech-debt", "okr", "customer")
USERS = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov")
NOUNS = ("checkout", "onboarding", "billing", "search", "signup", "cache", "export", "alerts")
PROJECTS = [f"P{i}" for i in range(60)]
REPOS = [f"acme/repo{i}" for i in range(40)]
TARGET = (100_000, 1_000, 2.0)  # the match time of 100k items x 1k rules: under 2 s
LOAD_TARGET = (10_000, 2.0)  # 10k tactics x 3 rules: loaded and checked in under 2 s


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


# -- load: a large mapping file -------------------------------------------------------------


def mapping_text(n_tactics: int) -> str:
    """A valid mapping file of `n_tactics` tactics with 3 rules each, written as managers
    write them: comments, quoted and dotted keys, inline tables, arrays, a multi-line
    description holding `[` and `key =` text."""
    n_krs = max(1, n_tactics // 10)
    n_objs = max(1, n_krs // 10)
    out = [
        f'[[objective]]\nid = "o-{o}"\ntitle = "Objective {o}"\nperiod = "2026-Q4"\n'
        for o in range(n_objs)
    ]
    out += [
        f'[[key_result]]\nid = "kr-{k}"\nobjective = "o-{k % n_objs}"  # owner: team {k}\n'
        f'title = "Key result {k}"\nstart = 0\ntarget = {k + 1}\n'
        for k in range(n_krs)
    ]
    for t in range(n_tactics):
        p = PROJECTS[t % len(PROJECTS)]
        out.append(
            f'[[tactic]]\nid = "t-{t}"\nkey_result = "kr-{t % n_krs}"\n"title" = "Tactic {t}"\n'
            f'description = """\nNotes: [[tactic.rule]] and id = "x" here are text.\n"""\n'
            f'[[tactic.rule]]\nconnector = "jira"\ncontainer = "{p}"  # the team\'s project\n'
            f'labels_any = [\n  "okr",\n  "growth",\n]\n'
            f"[[tactic.rule]]\nid = \"t-{t}-title\"\ntitle = '(?i)\\b{NOUNS[t % 8]} {t}\\b'\n"
            f'exclude = {{ type = "Sub-task", labels_any = ["wontfix"] }}\n'
            f'[[tactic.rule]]\nepic = "{p}-{t}"\ncustom.author = "{USERS[t % 5]}"\n'
        )
    return "\n".join(out)


@dataclass(frozen=True)
class LoadFigures:
    n_tactics: int
    n_rules: int
    size_bytes: int
    load_s: float  # read + validate the tree (file:line for every entry)
    check_s: float  # validate + compile the rules
    cpu_s: float  # both, in CPU seconds
    ref_s: float  # bench_sync's fixed CPU loop, just before: how fast the machine was


def measure_load(n_tactics: int = 10_000) -> LoadFigures:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "okrs.toml"
        path.write_text(mapping_text(n_tactics), encoding="utf-8")
        ref = reference_s()
        t0, c0 = time.perf_counter(), time.process_time()
        with no_cycle_collection():  # as `mappings check` and the daemon's reload run it
            tree = load_tree([Path(tmp)])
            t1 = time.perf_counter()
            rules, problems = check_rules(tree.rules(), ["jira"])
        t2, c2 = time.perf_counter(), time.process_time()
        size = path.stat().st_size
    if problems or len(tree.tactics) != n_tactics:
        raise SystemExit(f"the generated mapping is not valid: {problems[:3]}")
    return LoadFigures(n_tactics, len(rules), size, t1 - t0, t2 - t1, c2 - c0, ref)


def load_report(f: LoadFigures) -> str:
    return (
        f"mapping load: {f.n_tactics:,} tactics x 3 rules ({f.n_rules:,} rules, "
        f"{f.size_bytes / 1e6:.1f} MB): load {f.load_s:.3f} s + check {f.check_s:.3f} s = "
        f"{f.load_s + f.check_s:.3f} s wall, {f.cpu_s:.3f} s cpu (target < {LOAD_TARGET[1]:g} s "
        f"at {LOAD_TARGET[0]:,} tactics); ref {f.ref_s:.3f} s, load average "
        f"{os.getloadavg()[0]:.2f}"
    )


def load_rows(f: LoadFigures) -> list[dict[str, object]]:
    """The load case as `python -m bench` rows; the total has a target at 10k tactics."""
    total = f.load_s + f.check_s
    limit = LOAD_TARGET[1] if f.n_tactics == LOAD_TARGET[0] else None
    case = f"load {_count(f.n_tactics)} tactics x 3 rules"
    return [
        {
            "bench": "mapping",
            "case": case,
            "metric": "load + check time",
            "value": total,
            "unit": "s",
            "target": None if limit is None else f"< {limit:g} s",
            "ok": None if limit is None else total < limit,
        }
    ]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bench_mapping")
    p.add_argument("n_items", nargs="?", type=int, default=100_000)
    p.add_argument("n_rules", nargs="?", type=int, default=1_000)
    p.add_argument("runs", nargs="?", type=int, default=3, help="the best run is reported")
    p.add_argument("--tactics", type=int, default=10_000, help="tactics in the load case")
    p.add_argument("--only", choices=("match", "load"), help="run one case (default: both)")
    p.add_argument("--json", type=Path, help="also write the figures as table rows here")
    a = p.parse_args()
    out: list[dict[str, object]] = []
    if a.only in (None, "match"):
        figures = measure(a.n_items, a.n_rules, a.runs)
        print(report(figures), flush=True)
        out += rows(figures)
    if a.only in (None, "load"):
        loaded = measure_load(a.tactics)
        print(load_report(loaded), flush=True)
        out += load_rows(loaded)
    if a.json:
        a.json.write_text(json.dumps({"rows": out}, indent=1))


if __name__ == "__main__":
    main()
