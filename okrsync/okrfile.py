"""The OKR tree as managers write it: TOML files of objectives, key results and tactics.

    [[objective]]          id, title, owner, period ("2026-Q4", "2026-H1", "2026-11", "2026";
                           q/h in either case) or start/end dates, parent (objective id), weight
    [[key_result]]         id, objective, title, unit, start, target, direction, weight,
                           owner (a name, an e-mail address or both; default: the
                           objective's), source (where its metric is read: docs/sources.md)
    [[tactic]]             id, key_result, title, weight
    [[tactic.rule]]        a mapping rule of the tactic above (see okrsync.mapping)

Every file under the configured mapping paths is read (folders: `*.toml`, sorted). Loading
never touches the store; all problems are collected and reported together, each with
file:line, what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
import functools
import gc
import math
import re
from collections.abc import Iterable, Iterator, Mapping
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
    "source",
    "owner",
}
TACTIC_KEYS = {"id", "key_result", "title", "weight", "owner", "description", "rule"}
TOP_KEYS = {"objective", "key_result", "tactic"}

# A key result's `source` (docs/sources.md): the keys each kind takes, which it requires
# (a tuple: one of them), and the option keys that name environment variables.
SOURCE_COMMON = {"kind", "schedule", "timeout_s"}
SOURCE_KEYS = {
    "sql": {"url_env", "query", "backfill_query"},
    "file": {"path", "format"},
    "http_json": {"url", "url_env", "expression", "time_expression", "token_env", "headers_env"},
    "prometheus": {"url", "url_env", "query", "token_env", "username_env", "password_env", "step"},
}
SOURCE_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "sql": (("url_env",), ("query",)),
    "file": (("path",),),
    "http_json": (("url", "url_env"), ("expression",)),
    "prometheus": (("url", "url_env"), ("query",)),
}
ENV_KEYS = ("url_env", "token_env", "username_env", "password_env")
DEFAULT_SCHEDULE = "every 1h"
_SCHEDULE = re.compile(r"every ([1-9][0-9]{0,5})([smhd])", re.ASCII)
# A Prometheus duration ("1h30m"), as a `prometheus` source's `step`; or a number of seconds.
_DURATION = re.compile(r"(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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
class MetricSource:
    """Where a key result's metric is read (`source = { kind = ... }`), as validated: the
    options as written (a `file` path made absolute against the mapping file's folder)."""

    kind: str
    options: Mapping[str, Any]
    every_s: int
    where: Source

    def env_vars(self) -> list[tuple[str, str]]:
        """(option key, variable name) of every environment variable the source reads."""
        named = [(k, str(self.options[k])) for k in ENV_KEYS if k in self.options]
        headers = self.options.get("headers_env") or {}
        return named + [(f"headers_env.{h}", str(v)) for h, v in headers.items()]


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
    source: Source  # where the key result is written (file:line)
    metric_source: MetricSource | None = field(default=None, compare=False)
    owner: str | None = None  # "Dana <dana@acme.com>", "dana@acme.com" or "Dana"


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


def missing_env(tree: OkrTree, env: Mapping[str, str]) -> list[str]:
    """A problem, with file:line, for every environment variable a source names that is not
    set. Kept out of `load_tree`: a sync loads the tree even where a source's variable is
    missing (that source's reading fails); `mappings check` reports these as errors."""
    problems = []
    for kr in tree.key_results.values():
        for key, var in kr.metric_source.env_vars() if kr.metric_source else []:
            if not env.get(var):
                problems.append(
                    f"{kr.metric_source.where if kr.metric_source else kr.source}: "
                    f"source of key result {kr.id!r}: environment variable {var} ({key}) is "
                    "not set; set it where okrsync runs (e.g. the service's environment file)"
                )
    return problems


def _step_ok(step: Any) -> bool:
    """A positive number of seconds, or a Prometheus duration such as "1h30m"."""
    if isinstance(step, bool):
        return False
    if isinstance(step, int | float):
        return 0 < step < math.inf
    if not isinstance(step, str):
        return False
    try:
        return _step_ok(float(step))
    except ValueError:
        return bool(_DURATION.fullmatch(step.strip()))


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
        owner = self.owner(("objective", i, "owner"), entry.get("owner"))
        if period is None or weight is None:
            return
        src = self.src(("objective", i))
        if self.loader.add("objective", ident, src):
            self.loader.tree.objectives[ident] = Objective(
                ident,
                entry["title"],
                owner,
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
        n = len(self.loader.problems)
        metric = self.metric_source(i, entry["source"]) if "source" in entry else None
        owner = self.owner(("key_result", i, "owner"), entry.get("owner"))
        if len(self.loader.problems) > n:
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
                metric,
                owner,
            )

    def owner(self, loc: tuple[str | int, ...], value: Any) -> str | None:
        """An objective's or key result's `owner`: a non-empty one-line string, or None when
        absent."""
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or not value.isprintable():
            self.problem(
                loc,
                "'owner' must be one line of text such as \"Dana <dana@acme.com>\", "
                f'"dana@acme.com" or "Dana", got {value!r}',
            )
            return None
        return value.strip()

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

    # -- a key result's source (docs/sources.md) --------------------------------------------
    def source_loc(self, i: int, key: str | None = None) -> tuple[str | int, ...]:
        """The location of the source's `key` (or the source), for its line: keys inside
        an inline table are not indexed, so those fall back to the `source` line."""
        base: tuple[str | int, ...] = ("key_result", i, "source")
        if key is None:
            return base
        found, own = self.toml.line((*base, key)), self.toml.line(base)
        return (*base, key) if found is not None and found >= (own or 0) else base

    def metric_source(self, i: int, raw: Any) -> MetricSource | None:
        """The validated source, or None after reporting every problem in it."""
        n = len(self.loader.problems)
        if not isinstance(raw, dict):
            self.problem(
                self.source_loc(i),
                'source must be a table such as source = { kind = "sql", url_env = "DB_URL", '
                'query = "select ...", schedule = "every 1h" }',
            )
            return None
        kind = raw.get("kind")
        if kind not in SOURCE_KEYS:
            hint = _suggest(str(kind), SOURCE_KEYS) if isinstance(kind, str) else ""
            hint = hint if "did you mean" in hint else f"; use one of {', '.join(SOURCE_KEYS)}"
            what = "is missing" if kind is None else f"{kind!r} is not a source kind"
            self.problem(self.source_loc(i, "kind"), f"source 'kind' {what}{hint}")
            return None
        allowed = SOURCE_COMMON | SOURCE_KEYS[kind]
        for key in raw:
            if key not in allowed:
                self.unknown(self.source_loc(i, key), key, allowed, f"a {kind} source")
        for group in SOURCE_REQUIRED[kind]:
            if not any(k in raw for k in group):
                self.problem(
                    self.source_loc(i),
                    f"a {kind} source needs {' or '.join(repr(k) for k in group)}",
                )
        if "url" in raw and "url_env" in raw:
            self.problem(self.source_loc(i, "url"), "give 'url' or 'url_env', not both")
        options = {k: v for k, v in raw.items() if k in allowed and k != "kind"}
        every = self.source_values(i, kind, options)
        if len(self.loader.problems) > n or every is None:
            return None
        where = self.src(self.source_loc(i))
        return MetricSource(kind, options, every, where)

    def source_values(self, i: int, kind: str, options: dict[str, Any]) -> int | None:
        """Check each option's value (fixing a file path in place); the schedule in seconds."""
        for key, value in options.items():
            if key in ("timeout_s", "headers_env", "step"):
                continue
            if not isinstance(value, str) or not value.strip():
                self.problem(self.source_loc(i, key), f"source '{key}' must be a non-empty string")
                return None
        for key in ENV_KEYS:
            if key in options and not _ENV_NAME.fullmatch(options[key]):
                self.problem(
                    self.source_loc(i, key),
                    f"'{key}' must name an environment variable, such as "
                    '"ANALYTICS_DB_URL" (letters, digits, _); the value itself (it may hold a '
                    "secret, so it is not repeated here) stays out of the mapping files",
                )
        self.source_details(i, kind, options)
        return self.schedule(i, options.get("schedule", DEFAULT_SCHEDULE))

    def source_details(self, i: int, kind: str, options: dict[str, Any]) -> None:
        loc = functools.partial(self.source_loc, i)
        headers = options.get("headers_env", {})
        if not isinstance(headers, dict) or not all(
            isinstance(v, str) and _ENV_NAME.fullmatch(v) for v in headers.values()
        ):
            self.problem(
                loc("headers_env"),
                "headers_env maps header names to environment variables, e.g. "
                'headers_env = { "X-Api-Key" = "KPI_API_KEY" }',
            )
        timeout = options.get("timeout_s", 30)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not (0 < timeout <= 600)
        ):
            self.problem(loc("timeout_s"), f"timeout_s must be seconds, 1 to 600; got {timeout!r}")
        url = options.get("url")
        if url is not None and not re.match(r"https?://[^/\s]", url, re.IGNORECASE):
            self.problem(loc("url"), f"url must start with http:// or https://, got {url!r}")
        if "backfill_query" in options and ":since" not in options["backfill_query"]:
            self.problem(
                loc("backfill_query"),
                "backfill_query must use the :since bind, e.g. "
                "'select day, value from kpi where day >= :since'",
            )
        if options.get("format", "csv") not in ("csv", "json"):
            self.problem(loc("format"), 'format must be "csv" or "json"')
        if "step" in options and not _step_ok(options["step"]):
            self.problem(
                loc("step"),
                f'step is a duration such as "1h" or "15m", or seconds; got {options["step"]!r}',
            )
        if ("username_env" in options) != ("password_env" in options):
            self.problem(loc("username_env"), "give username_env and password_env together")
        elif "username_env" in options and "token_env" in options:
            self.problem(loc("token_env"), "give token_env or username_env/password_env, not both")
        if kind == "file":
            options["path"] = str((self.path.parent / Path(options["path"]).expanduser()).resolve())
        for key in ("expression", "time_expression"):
            if key in options:
                self.jmespath(loc(key), key, options[key])

    def jmespath(self, loc: tuple[str | int, ...], key: str, expression: str) -> None:
        import jmespath  # only for a file with an http_json source
        from jmespath.exceptions import JMESPathError

        try:
            jmespath.compile(expression)
        except JMESPathError as exc:
            first = str(exc).splitlines()[0]
            self.problem(loc, f"{key} is not a JMESPath expression ({first}); see jmespath.org")

    def schedule(self, i: int, text: Any) -> int | None:
        m = _SCHEDULE.fullmatch(text) if isinstance(text, str) else None
        every = int(m[1]) * _UNIT_S[m[2]] if m else 0
        if every < 60:
            self.problem(
                self.source_loc(i, "schedule"),
                f'schedule must be "every <N><s|m|h|d>", at least every 1m, such as '
                f'"every 1h"; got {text!r}',
            )
            return None
        return every
