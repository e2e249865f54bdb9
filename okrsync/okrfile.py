"""The OKR tree as managers write it: TOML files of objectives, key results and tactics.

    [[objective]]          id, title, owner, period ("2026-Q4", "2026-H1", "2026-11", "2026";
                           q/h in either case) or start/end dates, parent (objective id), weight
    [[key_result]]         id, objective, title, unit, start, target, direction, weight
    [[tactic]]             id, key_result, title, weight
    [[tactic.rule]]        a mapping rule of the tactic above (see okrsync.mapping)

Every file under the configured mapping paths is read (folders: `*.toml`, sorted). Loading
never touches the store; all problems are collected and reported together, each with
file:line, what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
import gc
import math
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import tomli as tomllib  # the compiled parser: twice the stdlib's speed on large mapping files

from okrsync.errors import ConfigError
from okrsync.tomlpos import TomlIndex, toml_error

# Whole-string patterns, used with fullmatch: "a\n" is not a slug (`$` would accept it).
SLUG = re.compile(r"[a-z0-9][a-z0-9._-]*")
# A year, optionally with a half (H1, H2), a quarter (Q1..Q4) or a month (01..12); letters in
# either case, ASCII digits only (`\d` alone would take "２０２６").
_PERIOD = re.compile(r"(\d{4})(?:-(?:([QH])(\d)|(\d{2})))?", re.ASCII | re.IGNORECASE)
_PART_MONTHS = {"Q": 3, "H": 6}  # months per quarter / half

OBJECTIVE_KEYS = {
    "id",
    "title",
    "owner",
    "period",
    "start",
    "end",
    "parent",
    "weight",
    "description",
}
KEY_RESULT_KEYS = {
    "id",
    "objective",
    "title",
    "unit",
    "start",
    "target",
    "direction",
    "weight",
    "description",
}
TACTIC_KEYS = {"id", "key_result", "title", "weight", "owner", "description", "rule"}
TOP_KEYS = {"objective", "key_result", "tactic"}


@dataclass(frozen=True)
class Source:
    file: str
    line: int | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Objective:
    id: str
    title: str
    owner: str | None
    period: str | None
    start: date
    end: date
    parent: str | None
    weight: float
    source: Source


@dataclass(frozen=True)
class KeyResult:
    id: str
    objective: str
    title: str
    unit: str | None
    start: float
    target: float
    direction: str
    weight: float
    source: Source


@dataclass(frozen=True)
class Tactic:
    id: str
    key_result: str
    title: str
    weight: float
    source: Source
    rules: tuple[RawRule, ...] = ()


@dataclass(frozen=True)
class RawRule:
    """A rule table as written; `okrsync.mapping` validates and compiles it.

    `toml` indexes the rule's file and `table` is the rule's path in it, e.g.
    ("tactic", 3, "rule", 0), so a problem can name the line of the key at fault.
    """

    tactic: str
    index: int
    data: dict[str, Any]
    source: Source
    toml: TomlIndex | None = field(default=None, compare=False, repr=False)
    table: tuple[str | int, ...] = ()

    def line(self, path: tuple[str, ...]) -> int | None:
        """The line of `path` inside the rule, else of its nearest written parent, else the
        rule's own line."""
        if self.toml is None or not self.table:
            return self.source.line
        for n in range(len(path), 0, -1):
            found = self.toml.line((*self.table, *path[:n]))
            if found is not None and found != self.source.line:
                return found
        return self.source.line


@dataclass
class OkrTree:
    objectives: dict[str, Objective] = field(default_factory=dict)
    key_results: dict[str, KeyResult] = field(default_factory=dict)
    tactics: dict[str, Tactic] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def rules(self) -> list[RawRule]:
        return [r for t in self.tactics.values() for r in t.rules]

    def size(self) -> int:
        """Objectives, key results and tactics together: 0 for an empty mapping set."""
        return len(self.objectives) + len(self.key_results) + len(self.tactics)


class OkrFileError(ConfigError):
    """One or more problems in the mapping files; `problems` lists each message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def period_dates(text: str) -> tuple[date, date]:
    """`2026-Q4` → (2026-10-01, 2026-12-31); also halves, months and years (see `parse_period`)."""
    _, start, end = parse_period(text)
    return start, end


def parse_period(text: str) -> tuple[str, date, date]:
    """`2026-q4` → ("2026-Q4", 2026-10-01, 2026-12-31): a period's canonical name and its first
    and last day. Quarter and half letters in either case; the text must be the period
    whole (no spaces or newline around it: a mapping file's value is exact); anything else is
    a ValueError whose message says what is accepted."""
    m = _PERIOD.fullmatch(text)
    span = _months(m) if m and int(m[1]) >= 1 else None
    if m is None or span is None:
        raise ValueError(
            f"period {text!r} is not one of 2026-Q4, 2026-H1, 2026-11 or 2026 "
            "(a quarter, half, month or year; Q and H in either case)"
        )
    year, (first, last) = int(m[1]), span
    return _name(m), date(year, first, 1), _month_end(year, last)


def _name(m: re.Match[str]) -> str:
    """A matched period's canonical spelling: `2026`, `2026-H1`, `2026-Q4`, `2026-11`."""
    if m[2]:
        return f"{m[1]}-{m[2].upper()}{m[3]}"
    return f"{m[1]}-{m[4]}" if m[4] else m[1]


def _months(m: re.Match[str]) -> tuple[int, int] | None:
    """The first and last month of a matched period; None for Q5, H3, month 13 and the like."""
    if m[2]:
        size, n = _PART_MONTHS[m[2].upper()], int(m[3])
        return (size * (n - 1) + 1, size * n) if 1 <= n <= 12 // size else None
    if m[4]:
        month = int(m[4])
        return (month, month) if 1 <= month <= 12 else None
    return 1, 12


def enclosing_periods(start: date, end: date) -> list[str]:
    """The named periods whose dates hold start..end, smallest first (month, quarter, half,
    year); none when the span crosses a year."""
    if start > end or start.year != end.year:
        return []
    y, m = start.year, start.month
    names = (f"{y:04d}-{m:02d}", f"{y:04d}-Q{(m + 2) // 3}", f"{y:04d}-H{(m + 5) // 6}", f"{y:04d}")
    return [n for n in names if period_dates(n)[1] >= end]


def _month_end(year: int, month: int) -> date:
    if month == 12:  # also keeps 9999-12 inside `date`'s range
        return date(year, 12, 31)
    return date(year, month + 1, 1) - timedelta(days=1)


def discover(paths: Iterable[Path]) -> list[Path]:
    """Every mapping file: files as given, folders' `*.toml` sorted by name."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(p.glob("*.toml")))
        elif p.exists():
            found.append(p)
        else:
            raise OkrFileError([f"{p}: mapping path does not exist; fix [mappings].paths"])
    return found


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic GC during a bulk load or match: it creates no cycles, only many small
    objects, and repeated full collections over them would cost more than the work (a
    third of loading 10,000 tactics)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_tree(paths: Iterable[Path]) -> OkrTree:
    """Read and validate every mapping file into one OkrTree, or raise OkrFileError."""
    loader = _Loader()
    with no_cycle_collection():
        for path in discover(paths):
            loader.read(path)
    loader.check_references()
    if loader.problems:
        raise OkrFileError(loader.problems)
    return loader.tree


class _Loader:
    def __init__(self) -> None:
        self.tree = OkrTree()
        self.problems: list[str] = []
        self.seen: dict[tuple[str, str], Source] = {}
        self.broken: set[str] = set()  # ids defined with errors: no follow-up "missing" noise

    def read(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            self.problems.append(str(toml_error(path, exc)))
            return
        except OSError as exc:
            self.problems.append(f"{path}: cannot read: {exc.strerror}")
            return
        self.tree.files.append(str(path))
        f = _File(path, text, self)
        for key in data:
            if key not in TOP_KEYS:
                f.unknown((key,), key, TOP_KEYS, "a top-level table")
        for kind, reader in (
            ("objective", f.objective),
            ("key_result", f.key_result),
            ("tactic", f.tactic),
        ):
            entries = data.get(kind, [])
            if not isinstance(entries, list):
                f.problem((kind,), f"'{kind}' must be written as [[{kind}]] tables")
                continue
            for i, entry in enumerate(entries):
                reader(i, entry)

    def add(self, kind: str, ident: str, src: Source) -> bool:
        self.broken.discard(ident)
        prev = self.seen.get((kind, ident))
        if prev:
            self.problems.append(
                f"{src}: duplicate {kind} id {ident!r} (first defined at {prev}); "
                "ids must be unique across all mapping files: rename one"
            )
            return False
        self.seen[(kind, ident)] = src
        return True

    def check_references(self) -> None:
        t = self.tree
        for kr in t.key_results.values():
            if kr.objective not in t.objectives and kr.objective not in self.broken:
                self.problems.append(
                    f"{kr.source}: key result {kr.id!r} points at objective {kr.objective!r}, "
                    f"which does not exist{_suggest(kr.objective, t.objectives)}"
                )
        for tac in t.tactics.values():
            if tac.key_result not in t.key_results and tac.key_result not in self.broken:
                self.problems.append(
                    f"{tac.source}: tactic {tac.id!r} points at key result {tac.key_result!r}, "
                    f"which does not exist{_suggest(tac.key_result, t.key_results)}"
                )
        for obj in t.objectives.values():
            if obj.parent and obj.parent not in t.objectives and obj.parent not in self.broken:
                self.problems.append(
                    f"{obj.source}: objective {obj.id!r} has parent {obj.parent!r}, "
                    f"which does not exist{_suggest(obj.parent, t.objectives)}"
                )
        self._check_cycles()

    def _check_cycles(self) -> None:
        objs = self.tree.objectives
        for obj in objs.values():
            seen = {obj.id}
            cur = obj.parent
            while cur and cur in objs:
                if cur in seen:
                    self.problems.append(
                        f"{obj.source}: objective {obj.id!r} is its own ancestor through "
                        "'parent'; break the cycle"
                    )
                    break
                seen.add(cur)
                cur = objs[cur].parent


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else "; define it or fix the id"


class _File:
    """Validation of one file's tables, with positions."""

    def __init__(self, path: Path, text: str, loader: _Loader) -> None:
        self.path = path
        self.toml = TomlIndex(text)  # one pass over the text; every lookup is then a dict hit
        self.loader = loader

    def src(self, loc: tuple[str | int, ...]) -> Source:
        return Source(str(self.path), self.toml.line(loc))

    def problem(self, loc: tuple[str | int, ...], msg: str) -> None:
        self.loader.problems.append(f"{self.src(loc)}: {msg}")

    def unknown(self, loc: tuple[str | int, ...], key: str, allowed: set[str], what: str) -> None:
        hint = _suggest(key, allowed)
        hint = hint if "did you mean" in hint else f"; allowed: {', '.join(sorted(allowed))}"
        self.problem(loc, f"unknown key {key!r} in {what}{hint}")

    def _common(
        self, kind: str, i: int, entry: Any, allowed: set[str], required: tuple[str, ...]
    ) -> str | None:
        loc: tuple[str | int, ...] = (kind, i)
        if not isinstance(entry, dict):
            self.problem(loc, f"each {kind} must be a [[{kind}]] table")
            return None
        ok = True
        for key in entry:
            if key not in allowed:
                self.unknown((*loc, key), key, allowed, f"[[{kind}]]")
                ok = False
        for key in required:
            if key not in entry:
                self.problem(loc, f"[[{kind}]] is missing the required key '{key}'")
                ok = False
        ident = entry.get("id")
        if isinstance(ident, str):
            self.loader.broken.add(ident)
        if isinstance(ident, str) and not SLUG.fullmatch(ident):
            self.problem(
                (*loc, "id"),
                f"id {ident!r} is not a slug: use lower-case letters, digits, '-', '_' or '.'",
            )
            ok = False
        for key in required:
            if key in entry and key not in ("start", "target") and not isinstance(entry[key], str):
                self.problem((*loc, key), f"'{key}' must be a string (in quotes)")
                ok = False
        return str(ident) if ok and isinstance(ident, str) else None

    def number(self, loc: tuple[str | int, ...], value: Any, key: str) -> float | None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.problem(
                loc,
                f"'{key}' must be a number such as 12 or 0.5 (without quotes), got {value!r}",
            )
            return None
        return float(value)

    def weight(self, kind: str, i: int, entry: dict[str, Any]) -> float | None:
        w = self.number((kind, i, "weight"), entry.get("weight", 1.0), "weight")
        if w is not None and w < 0:
            self.problem((kind, i, "weight"), "'weight' must be 0 or more")
            return None
        return w

    def objective(self, i: int, entry: Any) -> None:
        ident = self._common("objective", i, entry, OBJECTIVE_KEYS, ("id", "title"))
        if ident is None:
            return
        period = self.period(i, entry)
        weight = self.weight("objective", i, entry)
        if period is None or weight is None:
            return
        src = self.src(("objective", i))
        if self.loader.add("objective", ident, src):
            self.loader.tree.objectives[ident] = Objective(
                ident,
                entry["title"],
                entry.get("owner"),
                period[0],
                period[1],
                period[2],
                entry.get("parent"),
                weight,
                src,
            )

    def period(self, i: int, entry: dict[str, Any]) -> tuple[str | None, date, date] | None:
        """The objective's period name (canonical: `2026-q4` is stored as `2026-Q4`; None for
        explicit dates), first and last day; None after reporting a problem."""
        loc: tuple[str | int, ...] = ("objective", i)
        has_dates = "start" in entry or "end" in entry
        if "period" in entry and has_dates:
            self.problem(loc, "give either 'period' or 'start' and 'end', not both")
            return None
        if "period" in entry:
            try:
                return parse_period(str(entry["period"]))
            except ValueError as exc:
                self.problem((*loc, "period"), str(exc))
                return None
        start, end = entry.get("start"), entry.get("end")
        if not (isinstance(start, date) and isinstance(end, date)):
            self.problem(
                loc,
                "an objective needs 'period = \"2026-Q4\"' or 'start = 2026-10-01' and "
                "'end = 2026-12-31' (TOML dates, no quotes)",
            )
            return None
        if end <= start:
            self.problem((*loc, "end"), "'end' must be after 'start'")
            return None
        return None, start, end

    def key_result(self, i: int, entry: Any) -> None:
        required = ("id", "objective", "title", "start", "target")
        ident = self._common("key_result", i, entry, KEY_RESULT_KEYS, required)
        if ident is None:
            return
        start = self.number(("key_result", i, "start"), entry["start"], "start")
        target = self.number(("key_result", i, "target"), entry["target"], "target")
        weight = self.weight("key_result", i, entry)
        direction = entry.get(
            "direction", "increase" if (target or 0) >= (start or 0) else "decrease"
        )
        if direction not in ("increase", "decrease"):
            self.problem(
                ("key_result", i, "direction"),
                f'direction must be "increase" or "decrease", got {direction!r}',
            )
            return
        if start is None or target is None or weight is None:
            return
        if (direction == "increase" and target < start) or (
            direction == "decrease" and target > start
        ):
            self.problem(
                ("key_result", i, "direction"),
                f"direction is {direction!r} but target {target:g} is "
                f"{'below' if target < start else 'above'} start {start:g}; "
                "swap start/target or fix 'direction'",
            )
            return
        src = self.src(("key_result", i))
        if self.loader.add("key result", ident, src):
            self.loader.tree.key_results[ident] = KeyResult(
                ident,
                entry["objective"],
                entry["title"],
                entry.get("unit"),
                start,
                target,
                direction,
                weight,
                src,
            )

    def tactic(self, i: int, entry: Any) -> None:
        ident = self._common("tactic", i, entry, TACTIC_KEYS, ("id", "key_result", "title"))
        if ident is None:
            return
        weight = self.weight("tactic", i, entry)
        raw_rules = entry.get("rule", [])
        if not isinstance(raw_rules, list):
            self.problem(("tactic", i, "rule"), "rules are written as [[tactic.rule]] tables")
            return
        rules = tuple(
            RawRule(
                ident, j, r, self.src(("tactic", i, "rule", j)), self.toml, ("tactic", i, "rule", j)
            )
            for j, r in enumerate(raw_rules)
        )
        if weight is None:
            return
        src = self.src(("tactic", i))
        if self.loader.add("tactic", ident, src):
            self.loader.tree.tactics[ident] = Tactic(
                ident, entry["key_result"], entry["title"], weight, src, rules
            )
