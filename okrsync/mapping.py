"""Mapping rules: validate the `[[tactic.rule]]` tables and match work items to tactics.

A rule sits under its tactic in the OKR files and attaches an item to that tactic when ALL of
its conditions hold. Every condition takes a string or a list of strings (a list means "any
of"); equality ignores case.

    connector   the connector name from the config (`jira`, `asana`, ...)
    container   Jira project key or name, Asana project gid or name, GitHub `owner/repo`,
                or a board the item is on: its id (`project:acme/12`) or its title
    epic        an ancestor's key through the parent chain (transitively; not the epic itself)
    parent      the direct parent's key
    labels_any  at least one of these labels          labels_all  every one of these labels
    milestone   Jira fix version / GitHub milestone   section     Asana section name
    type        the item's kind (task, issue, pull_request, epic, ...) or tracker type (Bug)
    keys        explicit keys (PROJ-12, owner/repo#7, Asana gid)
    title       an RE2 regular expression searched in the title's first 2,000 characters,
                case-sensitive unless `(?i)` (RE2 runs in linear time: no pattern can hang)
    assignee    the assignee: display name, e-mail, username or login, or account id
                (whichever the tracker gives)
    iteration   the item's iteration on a board: its title, or a keyword relative to today
                (UTC): "@current" (start <= today < end), "@previous" (it ended at most one
                iteration length ago: end <= today < end + length), "@next" (it starts within
                one iteration length: start - length <= today < start)
    custom      { field = "value" }: equality on the item's custom fields (a board's field
                values are custom fields: { "Status" = "In Progress" })
    exclude     { same keys }: an item matching ANY one of them is left out of this rule
    id          optional slug; default `<tactic id>#<position of the rule in its tactic>`
    description free text, ignored

`keys`, `epic` and `parent` also match an item's (or ancestor's) earlier keys after a move.

A matcher is built for one day (`Matcher(rules, today=...)`; `dated` tells whether any rule
uses an iteration keyword, whose links then change when the day does: the pipeline re-derives
them, see `okrsync.pipeline.MappingState.linker`).

Matching is indexed: each rule is filed under its most selective equality condition, then
under its next one, so an item only evaluates the rules filed under two of its own values
(plus the few rules with no equality condition at all). Results never depend on rule or
file order.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

from okrsync.okrfile import SLUG, OkrFileError, OkrTree, RawRule, Source, no_cycle_collection

Link = tuple[str, str]  # (tactic_id, rule_id), as okrsync.store.Link

SET_KEYS = (
    "connector",
    "container",
    "epic",
    "parent",
    "labels_any",
    "labels_all",
    "milestone",
    "section",
    "type",
    "keys",
    "assignee",
    "iteration",
)
CONDITION_KEYS = (*SET_KEYS, "title", "custom")
RULE_KEYS = frozenset({*CONDITION_KEYS, "exclude", "id", "description"})
EXCLUDE_KEYS = frozenset(CONDITION_KEYS)
EXAMPLES = {
    "connector": 'connector = "jira"',
    "container": 'container = "ALPHA" or container = ["acme/web", "acme/api"]',
    "epic": 'epic = "ALPHA-1"',
    "parent": 'parent = "ALPHA-7"',
    "labels_any": 'labels_any = ["growth", "okr"]',
    "labels_all": 'labels_all = ["backend", "okr"]',
    "milestone": 'milestone = "web v2.0"',
    "section": 'section = "In Progress"',
    "type": 'type = "Bug" or type = ["issue", "pull_request"]',
    "keys": 'keys = ["ALPHA-12", "acme/web#7"]',
    "assignee": 'assignee = "Ada Lovelace"',
    "iteration": 'iteration = "@current" or iteration = ["Sprint 14", "Sprint 15"]',
}
# Iteration keywords: which iteration, relative to the matcher's day (`iteration_keywords`).
ITERATION_KEYWORDS = ("@current", "@previous", "@next")
# The fact each key reads, and the index rank of that key (lower = more selective).
FACT = {k: ("labels" if k.startswith("labels_") else k) for k in SET_KEYS}
RANK = {  # item-specific keys first, then containers, then low-cardinality values
    "keys": 0,
    "parent": 1,
    "epic": 2,
    "milestone": 3,
    "container": 4,
    "section": 5,
    "iteration": 6,
    "custom": 7,
    "assignee": 8,
    "labels_all": 9,
    "labels_any": 10,
    "type": 11,
    "connector": 12,
}
EMPTY: frozenset[str] = frozenset()


class Matchable(Protocol):
    """What matching reads of an item: a WorkItem, or a stored work_item row."""

    @property
    def connector(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def item_type(self) -> str | None: ...
    @property
    def title(self) -> str: ...
    @property
    def container(self) -> str | None: ...
    @property
    def parent_key(self) -> str | None: ...
    @property
    def labels(self) -> Sequence[str]: ...
    @property
    def milestone(self) -> str | None: ...
    @property
    def section(self) -> str | None: ...
    @property
    def assignee(self) -> str | None: ...
    @property
    def custom(self) -> Mapping[str, str]: ...
    @property
    def previous_keys(self) -> Sequence[str]: ...
    @property
    def container_name(self) -> str | None: ...
    @property
    def assignee_ids(self) -> Sequence[str]: ...
    @property
    def boards(self) -> Sequence[str]: ...
    @property
    def board_names(self) -> Sequence[str]: ...
    @property
    def iteration(self) -> str | None: ...
    @property
    def iteration_start(self) -> date | None: ...
    @property
    def iteration_end(self) -> date | None: ...


class MappingError(OkrFileError):
    """One or more invalid rules; `problems` lists each message (file:line, what, the fix)."""


# -- title patterns: RE2 ------------------------------------------------------------------

TITLE_PREFIX = 2_000  # the characters of a title that title rules read
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # RE2 would print every refused pattern on stderr
_RE2_OPTIONS.never_capture = True  # a rule only asks whether the title matches
RE2_SYNTAX = "https://github.com/google/re2/wiki/Syntax"


class TitlePattern:
    """A `title` pattern run by RE2, in time linear in the title whatever the pattern: a rule
    such as `(a+)+$` cannot hang a sync, a remap, a preview or the daemon.

    `search` reads a title as `title_bytes` gives it (encoded once per item, not per rule)
    and returns a match or None.
    """

    __slots__ = ("pattern", "search")

    def __init__(self, pattern: str) -> None:
        compiled = re2.compile(pattern, _RE2_OPTIONS)  # raises re2.error
        self.pattern = pattern
        self.search: Callable[[bytes], object | None] = compiled.search

    def __repr__(self) -> str:
        return f"TitlePattern({self.pattern!r})"


def title_bytes(title: str) -> bytes:
    """The part of a title that rules read (its first TITLE_PREFIX characters), as UTF-8."""
    return title[:TITLE_PREFIX].encode("utf-8", "replace")


# What RE2 cannot run, by the start of its error: (what it is, how to rewrite it).
_RE2_GAPS = (
    ("invalid perl operator: (?<=", "look-behind", "rewrite without it"),
    ("invalid perl operator: (?<!", "look-behind", "rewrite without it"),
    ("invalid perl operator: (?=", "look-ahead", "rewrite without it"),
    (
        "invalid perl operator: (?!",
        "negative look-ahead",
        "rewrite without it, e.g. move that part to exclude = { title = '...' }",
    ),
    ("invalid perl operator: (?P", "named backreferences (?P=name)", "rewrite without them"),
    ("invalid perl operator: (?>", "atomic groups (?>...)", "write a plain group (...)"),
    ("invalid perl operator: (?#", "comments (?#...)", "remove the comment"),
    ("invalid perl operator: (?(", "conditional groups (?(...)...)", "rewrite without them"),
    ("invalid perl operator: (?x", "verbose mode (?x)", "remove it and the spaces it ignored"),
    ("invalid perl operator:", "this flag", "use only the flags i, m, s and U"),
    ("bad repetition operator", "possessive quantifiers (++, *+, ?+)", "drop the second sign"),
    ("invalid repetition size", "counts over 1000 in {n,m}", "use + or * instead"),
    ("invalid escape sequence: \\Z", "\\Z", "write the end of the title as \\z"),
    ("invalid escape sequence: \\u", "\\u escapes", "write \\x{00e9} or the character itself"),
    ("invalid escape sequence: \\N", "\\N{...} escapes", "write the character itself"),
    *(
        (f"invalid escape sequence: \\{d}", f"backreferences (\\{d})", "rewrite without them")
        for d in range(1, 10)
    ),
    ("invalid escape sequence:", "this escape", "write the character itself"),
    ("pattern too large", "a pattern this large", "split it into several rules"),
)


def explain_title_error(pattern: str, exc: Exception) -> str:
    """Why `pattern` cannot be a title rule, and the fix."""
    reason = exc.args[0] if exc.args else ""
    reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. FutureWarning on "[[": not our message
            re.compile(pattern)
    except re.error as py_exc:  # not a regular expression at all: Python says where
        reason = str(py_exc)
        return (
            f"title pattern {pattern!r} is not a valid regular expression ({reason}); fix it, "
            "or put a backslash before a special character you mean literally: "
            r"\( \[ \. \* \+ \?"
        )
    except (OverflowError, RecursionError):  # too big for Python too: RE2's reason stands
        pass
    what, fix = next(
        ((w, f) for start, w, f in _RE2_GAPS if reason.startswith(start)),
        ("it", f"rewrite it in RE2 syntax ({reason})"),
    )
    return (
        f"title pattern {pattern!r} cannot be used: RE2 does not support {what}; {fix} "
        f"(title rules run on RE2, which never backtracks, so no pattern can hang a sync; "
        f"syntax: {RE2_SYNTAX})"
    )


# -- compiled rules -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Test:
    """One condition: `fact` of the item against folded `values` (all of them, or any)."""

    key: str
    fact: str
    values: frozenset[str]
    need_all: bool = False
    written: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Conditions:
    tests: tuple[Test, ...] = ()
    title: TitlePattern | None = None


NO_CONDITIONS = Conditions()


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    id: str
    tactic: str
    source: Source
    include: Conditions
    exclude: Conditions = field(default_factory=Conditions)

    @property
    def link(self) -> Link:
        return (self.tactic, self.id)


# -- validation -----------------------------------------------------------------------------


def compile_rules(raws: Iterable[RawRule], connectors: Collection[str] | None = None) -> list[Rule]:
    """Validate and compile every rule, or raise MappingError listing every problem.

    `connectors` are the configured connector names; None skips that reference check.
    """
    rules, problems = check_rules(raws, connectors)
    if problems:
        raise MappingError(problems)
    return rules


def check_rules(
    raws: Iterable[RawRule], connectors: Collection[str] | None = None
) -> tuple[list[Rule], list[str]]:
    """The valid rules and the problems of the invalid ones (never raises)."""
    with no_cycle_collection():
        return _check_all(raws, connectors)


def _check_all(
    raws: Iterable[RawRule], connectors: Collection[str] | None
) -> tuple[list[Rule], list[str]]:
    rules: list[Rule] = []
    problems: list[str] = []
    seen: dict[str, RawRule] = {}
    for raw in raws:
        checker = _RuleChecker(raw, connectors)
        rule = checker.compile()
        problems.extend(checker.problems)
        first = seen.setdefault(checker.rule_id, raw)
        if first is not raw:
            problems.append(
                f"{raw.source}: rule id {checker.rule_id!r} (tactic {raw.tactic!r}) is already "
                f"used by the rule at {first.source} (tactic {first.tactic!r}); "
                "rule ids must be unique: rename one"
            )
        elif rule is not None:
            rules.append(rule)
    return rules, problems


def rule_id(raw: RawRule) -> str:
    """The rule's explicit `id`, else `<tactic>#<1-based position in its tactic>`."""
    ident = raw.data.get("id") if isinstance(raw.data, dict) else None
    return ident if isinstance(ident, str) and ident else f"{raw.tactic}#{raw.index + 1}"


class _RuleChecker:
    """Validation of one rule table, collecting manager-readable problems."""

    def __init__(self, raw: RawRule, connectors: Collection[str] | None) -> None:
        self.raw = raw
        self.connectors = connectors
        self.rule_id = rule_id(raw)
        self.found: list[tuple[int, str]] = []

    @property
    def problems(self) -> list[str]:
        if not self.found:
            return []
        return [text for _, text in sorted(self.found, key=lambda f: f[0])]

    def problem(self, path: tuple[str, ...], msg: str) -> None:
        where = Source(self.raw.source.file, self.raw.line(path))
        text = f"{where}: rule {self.rule_id!r} of tactic {self.raw.tactic!r}: {msg}"
        self.found.append((where.line or 0, text))

    def compile(self) -> Rule | None:
        data = self.raw.data
        if not isinstance(data, dict):
            self.problem((), "each rule must be a [[tactic.rule]] table under its tactic")
            return None
        self._check_keys(data, RULE_KEYS, (), "a rule")
        self._check_id(data.get("id"))
        include = self._conditions(data, ())
        exclude = self._exclude(data.get("exclude"))
        if include is not None and not include.tests and include.title is None:
            self.problem(
                (),
                "has no condition, so it would attach nothing; add at least one of "
                f"{', '.join(CONDITION_KEYS)} (an 'exclude' alone selects nothing)",
            )
        if include is not None and exclude is not None:
            self._check_contradictions(include, exclude)
        if self.found or include is None or exclude is None:
            return None
        return Rule(self.rule_id, self.raw.tactic, self.raw.source, include, exclude)

    def _check_keys(
        self, data: Mapping[str, Any], allowed: frozenset[str], path: tuple[str, ...], what: str
    ) -> None:
        for key in data:
            if key not in allowed:
                self.problem((*path, key), f"unknown key {key!r} in {what}{_hint(key, allowed)}")

    def _check_id(self, ident: Any) -> None:
        if ident is None:
            return
        if not isinstance(ident, str) or not SLUG.fullmatch(ident):
            self.problem(
                ("id",),
                f"id {ident!r} is not a slug: use lower-case letters, digits, '-', '_' or '.' "
                '(in quotes), e.g. id = "checkout-bugs"',
            )

    def _exclude(self, value: Any) -> Conditions | None:
        if value is None:
            return NO_CONDITIONS
        if not isinstance(value, dict):
            self.problem(
                ("exclude",),
                "'exclude' must be a table of conditions, e.g. "
                'exclude = { labels_any = ["wontfix"] }',
            )
            return None
        self._check_keys(value, EXCLUDE_KEYS, ("exclude",), "'exclude'")
        return self._conditions(value, ("exclude",))

    def _conditions(self, data: Mapping[str, Any], path: tuple[str, ...]) -> Conditions | None:
        ok = True
        tests: list[Test] = []
        for key in SET_KEYS:
            if key in data:
                values = self._strings(data[key], (*path, key))
                ok = ok and values is not None
                if values:
                    written = _written(data[key])
                    tests.append(Test(key, FACT[key], values, key == "labels_all", written))
                    self._check_connectors(key, values, (*path, key))
                    self._check_iteration(key, written, (*path, key))
        custom = self._custom(data.get("custom"), (*path, "custom"))
        title_ok, title = self._title(data.get("title"), (*path, "title"))
        if custom is None or not title_ok or not ok:
            return None
        return Conditions((*tests, *custom), title)

    def _strings(self, value: Any, path: tuple[str, ...]) -> frozenset[str] | None:
        if isinstance(value, str) and value.strip():  # the common case, checked cheaply
            return frozenset((value.strip().casefold(),))
        name = ".".join(path)
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            example = EXAMPLES.get(path[-1], f'custom = {{ {path[-1]} = "value" }}')
            self.problem(
                path,
                f"'{name}' must be a string or a list of strings in quotes, e.g. {example}",
            )
            return None
        if not items:
            self.problem(
                path,
                f"'{name}' is an empty list, so this rule can never match; "
                "list at least one value or remove the key",
            )
            return None
        if any(not v.strip() for v in items):
            self.problem(
                path, f"'{name}' contains an empty value (\"\"); give a value or remove it"
            )
            return None
        return frozenset(v.strip().casefold() for v in items)

    def _check_connectors(self, key: str, values: frozenset[str], path: tuple[str, ...]) -> None:
        if key != "connector" or self.connectors is None:
            return
        known = {c.casefold(): c for c in self.connectors}
        for value in sorted(values - set(known)):
            close = difflib.get_close_matches(value, list(known), n=1)
            fix = (
                f"did you mean {known[close[0]]!r}?"
                if close
                else f"configured connectors: {', '.join(sorted(known.values())) or 'none'}"
            )
            self.problem(
                path,
                f"connector {value!r} is not configured in the config file's [[connectors]]; "
                + fix,
            )

    def _check_iteration(self, key: str, written: Sequence[str], path: tuple[str, ...]) -> None:
        if key != "iteration":
            return
        for value in written:
            word = value.strip()
            if word.startswith("@") and word.casefold() not in ITERATION_KEYWORDS:
                close = difflib.get_close_matches(word.casefold(), ITERATION_KEYWORDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problem(
                    path,
                    f"iteration {value!r} is not a keyword{hint}: use "
                    f"{', '.join(repr(k) for k in ITERATION_KEYWORDS)} "
                    "or an iteration's title as the board shows it",
                )

    def _custom(self, value: Any, path: tuple[str, ...]) -> list[Test] | None:
        if value is None:
            return []
        if not isinstance(value, dict) or not value:
            self.problem(
                path,
                f"'{'.'.join(path)}' must be a table of field = \"value\", "
                'e.g. custom = { project = "Growth" }',
            )
            return None
        tests: list[Test] = []
        for name, raw in sorted(value.items()):
            values = self._strings(raw, (*path, name))
            if values is None:
                return None
            key = f"custom.{name}"
            tests.append(Test(key, f"custom:{name.casefold()}", values, False, _written(raw)))
        return tests

    def _title(self, value: Any, path: tuple[str, ...]) -> tuple[bool, TitlePattern | None]:
        if value is None:
            return True, None
        if not isinstance(value, str) or not value:
            self.problem(
                path,
                f"'{'.'.join(path)}' must be a regular expression in quotes, "
                "e.g. title = '(?i)checkout' (single quotes keep backslashes as written)",
            )
            return False, None
        try:
            return True, TitlePattern(value)
        except re2.error as exc:
            self.problem(path, explain_title_error(value, exc))
            return False, None

    def _check_contradictions(self, include: Conditions, exclude: Conditions) -> None:
        excluded = {t.key: t.values for t in exclude.tests}
        for test in include.tests:
            gone = excluded.get(test.key)
            if test.key == "labels_all":
                self._labels_all_clash(test, exclude)
            elif gone is not None and test.values <= gone:
                self.problem(
                    (test.key.split(".")[0],),
                    f"can never match: every value of '{test.key}' "
                    f"({_show(test.written)}) is also in 'exclude.{test.key}'; "
                    "remove it from one side",
                )
        if include.title and exclude.title and include.title.pattern == exclude.title.pattern:
            self.problem(
                ("title",),
                "can never match: 'exclude.title' is the same pattern as 'title'; "
                "remove one of them",
            )

    def _labels_all_clash(self, test: Test, exclude: Conditions) -> None:
        for ex in exclude.tests:
            clash = ex.values & test.values if ex.key == "labels_any" else EMPTY
            if ex.key == "labels_all" and ex.values <= test.values:
                clash = ex.values
            if clash:
                shown = _show(_labels_written(test, clash))
                self.problem(
                    ("labels_all",),
                    f"can never match: 'labels_all' requires {shown} but "
                    f"'exclude.{ex.key}' leaves out items with {shown}; "
                    "remove it from one side",
                )


def _written(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _labels_written(test: Test, folded: frozenset[str]) -> list[str]:
    return [w for w in test.written if w.strip().casefold() in folded]


def _show(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in sorted(values))


def _hint(key: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; allowed: {', '.join(sorted(allowed))}"


# -- matching -------------------------------------------------------------------------------


# An item's values for one fact, folded (a value may repeat: it then only matches again).
Values = Sequence[str]
Facts = dict[str, Values]
Check = tuple[str, frozenset[str], bool]  # (fact, folded values, all of them?)
Entry = tuple[Link, tuple[Check, ...], TitlePattern | None, tuple[Check, ...], TitlePattern | None]
# A leaf of the index: the links its anchors fully prove, and entries with checks left.
Leaf = tuple[list[Link], list[Entry]]
# A bucket of the first level: a leaf, plus second-level tables (fact -> value -> leaf) for
# the rules with an equality condition left after their first anchor.
Bucket = tuple[list[Link], list[Entry], dict[str, dict[str, Leaf]]]


class Matcher:
    """Rules filed by their two most selective equality conditions; `match` is order-free.

    A rule sits in the first-level table of its most selective equality condition, under
    each of its values; within that bucket, in the second-level table of its next one, if
    any. An item looks up each of its values in each first-level table, then its values in
    the second-level tables of the buckets it reached. An entry holds only the checks its
    anchors do not already guarantee, as plain tuples: the inner loop runs about a hundred
    thousand times per 100k items.
    """

    def __init__(self, rules: Iterable[Rule], today: date | None = None) -> None:
        self.rules = sorted(rules, key=lambda r: (r.tactic, r.id))
        self.today = today or datetime.now(UTC).date()
        self.dated = any(_is_dated(r) for r in self.rules)
        self._readers = _Readers({**_READERS, "iteration": _iteration_reader(self.today)})
        self.index: dict[str, dict[str, Bucket]] = {}
        self.scan: list[Entry] = []
        self.title_only: list[tuple[Link, TitlePattern]] = []
        for rule in self.rules:
            self._file(rule)
        self._tables = tuple((table, self._readers[fact]) for fact, table in self.index.items())
        self._title_set = _title_set([p for _, p in self.title_only])
        self._reads_titles = any(r.include.title or r.exclude.title for r in self.rules)

    @classmethod
    def from_tree(
        cls, tree: OkrTree, connectors: Collection[str] | None = None, today: date | None = None
    ) -> Matcher:
        """Compile every rule of the tree (raising MappingError) into a matcher."""
        return cls(compile_rules(tree.rules(), connectors), today)

    def on(self, day: date) -> Matcher:
        """The same rules, matched as on `day` (itself when it is already that day's)."""
        return self if day == self.today else Matcher(self.rules, day)

    def _file(self, rule: Rule) -> None:
        tests = rule.include.tests
        first = _anchor(tests)
        only_title = not tests and not rule.exclude.tests and not rule.exclude.title
        if first is None and only_title and rule.include.title is not None:
            self.title_only.append((rule.link, rule.include.title))
            return
        if first is None:
            self.scan.append(_entry(rule, frozenset()))
            return
        fact, values, covered, used = first
        second = _anchor([t for t in tests if t.key not in covered | used])
        if second is not None:
            covered |= second[2]
        entry = _entry(rule, covered)
        table = self.index.setdefault(fact, {})
        for value in values:
            bucket: Bucket = table.setdefault(value, ([], [], {}))
            if second is None:
                _add(bucket, entry)
            else:
                sub = bucket[2].setdefault(second[0], {})
                for value2 in second[1]:
                    _add(sub.setdefault(value2, ([], [])), entry)

    def match(
        self,
        item: Matchable,
        ancestors_keys: Collection[str] = (),
        parent_keys: Collection[str] = (),
    ) -> list[Link]:
        """Every (tactic, rule) whose rule matches `item`, sorted.

        `ancestors_keys` are the keys (and earlier keys) of every ancestor along parent_key;
        `parent_keys` the earlier keys of the direct parent. The item's own parent_key is
        always taken as an ancestor and as the parent.
        """
        a, p = ancestors_keys, parent_keys
        title = title_bytes(item.title) if self._reads_titles else b""
        found: list[Link] = []
        if self._title_set is not None:
            hits = self._title_set.Match(title)
            found = [self.title_only[i][0] for i in hits] if hits else []
        elif self.title_only:
            found = [link for link, pattern in self.title_only if pattern.search(title)]
        facts = _LazyFacts(item, a, p, self._readers)
        if self.scan:
            found += [e[0] for e in self.scan if _passes(e, facts, title)]
        for table, read in self._tables:
            for value in read(item, a, p):
                bucket = table.get(value)
                if bucket is None:
                    continue
                links, entries, subs = bucket
                found += links
                for e in entries:
                    if _passes(e, facts, title):
                        found.append(e[0])
                for fact, sub in subs.items():
                    for value2 in facts[fact]:
                        leaf = sub.get(value2)
                        if leaf is not None:
                            found += leaf[0]
                            for e in leaf[1]:
                                if _passes(e, facts, title):
                                    found.append(e[0])
        return sorted(set(found)) if len(found) > 1 else found

    def explain(
        self,
        item: Matchable,
        ancestors_keys: Collection[str] = (),
        parent_keys: Collection[str] = (),
    ) -> list[RuleCheck]:
        """Every rule evaluated on `item` condition by condition (`explain`): the checks
        that match are exactly what `match` returns for the same arguments."""
        return explain(self.rules, item, ancestors_keys, parent_keys, self.today)


class _LazyFacts(dict[str, Values]):
    """Facts of one item, read when a second-level table or a check first needs them."""

    __slots__ = ("ancestors", "item", "parent_keys", "readers")

    def __init__(
        self,
        item: Matchable,
        ancestors: Collection[str],
        parent_keys: Collection[str],
        readers: Mapping[str, Reader],
    ) -> None:  # no dict.__init__: the dict starts empty
        self.item = item
        self.ancestors = ancestors
        self.parent_keys = parent_keys
        self.readers = readers

    def __missing__(self, name: str) -> Values:
        value = self[name] = self.readers[name](self.item, self.ancestors, self.parent_keys)
        return value


def _add(leaf: Leaf | Bucket, entry: Entry) -> None:
    """File `entry` in `leaf`: as a proven link when it has no check left."""
    if not entry[1] and entry[2] is None and not entry[3] and entry[4] is None:
        leaf[0].append(entry[0])
    else:
        leaf[1].append(entry)


def _title_set(patterns: Sequence[TitlePattern]) -> Any:
    """One RE2 set of the title-only patterns: a single pass over a title tells which of
    them match. None when there are none (or RE2 cannot combine them: each is then tried)."""
    if not patterns:
        return None
    title_set = re2.Set.SearchSet(_RE2_OPTIONS)
    try:
        for pattern in patterns:
            title_set.Add(pattern.pattern)
        title_set.Compile()
    except re2.error:
        return None
    return title_set


def _entry(rule: Rule, covered: frozenset[str]) -> Entry:
    inc = tuple((t.fact, t.values, t.need_all) for t in rule.include.tests if t.key not in covered)
    exc = tuple((t.fact, t.values, t.need_all) for t in rule.exclude.tests)
    return (rule.link, inc, rule.include.title, exc, rule.exclude.title)


def _passes(entry: Entry, facts: Facts, title: bytes) -> bool:
    _, tests, pattern, ex_tests, ex_pattern = entry
    for fact, values, need_all in tests:
        have = facts[fact]
        if (not values.issubset(have)) if need_all else values.isdisjoint(have):
            return False
    if pattern is not None and pattern.search(title) is None:
        return False
    for fact, values, need_all in ex_tests:
        have = facts[fact]
        if values.issubset(have) if need_all else not values.isdisjoint(have):
            return False
    return ex_pattern is None or ex_pattern.search(title) is None


def _anchor(
    tests: Sequence[Test],
) -> tuple[str, frozenset[str], frozenset[str], frozenset[str]] | None:
    """Where a rule with these include tests is filed: (fact, values, keys of the tests the
    filing proves, keys of the tests it reads), or None when there is no test."""
    options: list[tuple[int, int, str, frozenset[str], frozenset[str], frozenset[str]]] = []
    for t in tests:
        rank = RANK["custom"] if t.key.startswith("custom.") else RANK[t.key]
        values = frozenset({min(t.values)}) if t.need_all else t.values
        proven = frozenset() if t.need_all and len(t.values) > 1 else frozenset({t.key})
        options.append((rank, len(values), t.fact, values, proven, frozenset({t.key})))
    if not options:
        return None
    _, _, fact, values, proven, used = min(options, key=lambda o: (o[0], o[1], o[2]))
    return fact, values, proven, used


# -- facts: an item's folded values, read the same way for index lookups and for checks --


Reader = Callable[[Matchable, Collection[str], Collection[str]], Values]


def _fold(values: Iterable[str | None]) -> Values:
    return [v.casefold() for v in values if v]


def _one(name: str) -> Reader:
    """The reader of a single-valued field."""
    get = attrgetter(name)

    def read(it: Matchable, a: Collection[str], p: Collection[str]) -> Values:
        value: str | None = get(it)
        return (value.casefold(),) if value else ()

    return read


def _keys(it: Matchable, a: Collection[str], p: Collection[str]) -> Values:
    if it.previous_keys:
        return _fold((it.key, *it.previous_keys))
    return (it.key.casefold(),) if it.key else ()


def _epic(it: Matchable, a: Collection[str], p: Collection[str]) -> Values:
    if a:
        return _fold((it.parent_key, *a))
    return (it.parent_key.casefold(),) if it.parent_key else ()


def _parent(it: Matchable, a: Collection[str], p: Collection[str]) -> Values:
    return _epic(it, p, a)  # the direct parent's earlier keys, instead of the ancestors'


def _containers(it: Matchable, a: Collection[str] = (), p: Collection[str] = ()) -> Values:
    if it.container_name or it.boards:
        return _fold((it.container, it.container_name, *it.boards, *it.board_names))
    # A bare container (a repository) skips _fold's list: read for every item, ~2x faster.
    return (it.container.casefold(),) if it.container else ()


def _assignee(it: Matchable, a: Collection[str] = (), p: Collection[str] = ()) -> Values:
    if it.assignee_ids:
        return _fold((it.assignee, *it.assignee_ids))
    return (it.assignee.casefold(),) if it.assignee else ()


def _labels(it: Matchable, a: Collection[str], p: Collection[str]) -> Values:
    return [v.casefold() for v in it.labels if v]


def _type(it: Matchable, a: Collection[str], p: Collection[str]) -> Values:
    return _fold((str(it.kind), it.item_type))


def iteration_keywords(start: date | None, end: date | None, today: date) -> tuple[str, ...]:
    """Which keyword an iteration of [start, end) (end exclusive) is on `today`: "@current"
    when start <= today < end; "@previous" when it ended at most one iteration length ago
    (end <= today < end + length); "@next" when it starts within one iteration length
    (start - length <= today < start). Back-to-back iterations of one length (a board's
    usual cadence) give exactly the iteration before and after the current one."""
    if start is None or end is None or end <= start:
        return ()
    length = end - start
    if start <= today < end:
        return ("@current",)
    if end <= today < end + length:
        return ("@previous",)
    if start - length <= today < start:
        return ("@next",)
    return ()


def _iteration_values(it: Matchable, day: date) -> tuple[str | None, ...]:
    """An item's iteration as rules read it on `day`: its title (None: none) and its keyword
    (`iteration_keywords`); the matcher folds them, `explain` shows them."""
    return (it.iteration, *iteration_keywords(it.iteration_start, it.iteration_end, day))


def _iteration_reader(today: date) -> Reader:
    """The reader of an item's iteration as of `today`: its title and its keyword."""

    def read(it: Matchable, a: Collection[str], p: Collection[str]) -> Values:
        if not it.iteration and it.iteration_start is None:
            return ()  # most items: the same values, ~3x faster than building and folding none
        return _fold(_iteration_values(it, today))

    return read


def _is_dated(rule: Rule) -> bool:
    """Whether `rule` names an iteration keyword (its links depend on the day)."""
    tests = (*rule.include.tests, *rule.exclude.tests)
    return any(t.key == "iteration" and any(v.startswith("@") for v in t.values) for t in tests)


class _Readers(dict[str, Reader]):
    """How to read each fact off an item; a custom field's reader is made on first use."""

    def __missing__(self, name: str) -> Reader:
        wanted = name.removeprefix("custom:")

        def custom(it: Matchable, a: Collection[str], p: Collection[str]) -> Values:
            return _fold([v for k, v in it.custom.items() if k.casefold() == wanted])

        self[name] = custom
        return custom


_READERS = _Readers(
    {
        "connector": _one("connector"),
        "milestone": _one("milestone"),
        "section": _one("section"),
        "assignee": _assignee,
        "container": _containers,
        "epic": _epic,
        "parent": _parent,
        "keys": _keys,
        "labels": _labels,
        "type": _type,
    }
)


# -- explaining: every condition of every rule, evaluated on one item ------------------------


@dataclass(frozen=True, slots=True)
class ConditionCheck:
    """One condition of a rule as it stands for one item (`Matcher.explain`).

    `have` are the item's values the condition reads, as the item has them (for `epic`, the
    keys of its ancestors; for `title`, the title); `matched` those that made it hold.
    """

    key: str  # "container", "custom.team", "title", ...
    written: tuple[str, ...]  # the rule's values as written (title: the pattern)
    need_all: bool
    exclude: bool  # a condition of the rule's `exclude`
    held: bool  # the condition is true of the item
    matched: tuple[str, ...]
    have: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when this condition lets the rule match (an include that holds, an exclude
        that does not)."""
        return self.held != self.exclude


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """A rule evaluated condition by condition on one item: includes first, then excludes."""

    rule: Rule
    conditions: tuple[ConditionCheck, ...]

    @property
    def matches(self) -> bool:
        return all(c.ok for c in self.conditions)

    @property
    def failed(self) -> tuple[ConditionCheck, ...]:
        return tuple(c for c in self.conditions if not c.ok)


def explain(
    rules: Iterable[Rule],
    item: Matchable,
    ancestors_keys: Collection[str] = (),
    parent_keys: Collection[str] = (),
    today: date | None = None,
) -> list[RuleCheck]:
    """Every rule evaluated on `item`, condition by condition, sorted by (tactic, rule id).

    Takes what `Matcher.match` takes and agrees with it: the rules whose check `matches` are
    exactly the links `match` returns. Pure, and slow on purpose (no index): for one item.
    """
    title = title_bytes(item.title)
    day = today or datetime.now(UTC).date()
    checks = [
        RuleCheck(rule, _conditions_of(rule, item, (ancestors_keys, parent_keys, day), title))
        for rule in rules
    ]
    return sorted(checks, key=lambda c: (c.rule.tactic, c.rule.id))


Context = tuple[Collection[str], Collection[str], date]  # ancestors' keys, parent's, the day


def _conditions_of(
    rule: Rule, item: Matchable, ctx: Context, title: bytes
) -> tuple[ConditionCheck, ...]:
    out: list[ConditionCheck] = []
    for part, exclude in ((rule.include, False), (rule.exclude, True)):
        out += [_test_check(t, exclude, _shown(t.fact, item, ctx)) for t in part.tests]
        if part.title is not None:
            held = part.title.search(title) is not None
            got = (item.title,)
            out.append(
                ConditionCheck(
                    "title", (part.title.pattern,), False, exclude, held, got if held else (), got
                )
            )
    return tuple(out)


def _test_check(test: Test, exclude: bool, have: tuple[str, ...]) -> ConditionCheck:
    matched = tuple(v for v in have if v.casefold() in test.values)
    folded = {v.casefold() for v in matched}
    held = test.values <= folded if test.need_all else bool(matched)
    return ConditionCheck(test.key, test.written, test.need_all, exclude, held, matched, have)


def _shown(fact: str, it: Matchable, ctx: Context) -> tuple[str, ...]:
    """The item's values for `fact` as the item has them (the readers' values, unfolded;
    for `iteration`, its title and its keyword on the day)."""
    a, p, day = ctx
    raw: Iterable[str | None]
    if fact.startswith("custom:"):
        wanted = fact.removeprefix("custom:")
        raw = [v for k, v in it.custom.items() if k.casefold() == wanted]
    elif fact == "iteration":
        raw = _iteration_values(it, day)
    else:
        raw = _RAW[fact](it, a, p)
    return tuple(dict.fromkeys(v for v in raw if v))


_RAW: dict[str, Callable[[Matchable, Collection[str], Collection[str]], Iterable[str | None]]] = {
    "connector": lambda it, a, p: (it.connector,),
    "milestone": lambda it, a, p: (it.milestone,),
    "section": lambda it, a, p: (it.section,),
    "assignee": lambda it, a, p: (it.assignee, *it.assignee_ids),
    "container": lambda it, a, p: (
        it.container,
        it.container_name,
        *it.boards,
        *it.board_names,
    ),
    "epic": lambda it, a, p: (it.parent_key, *a),
    "parent": lambda it, a, p: (it.parent_key, *p),
    "keys": lambda it, a, p: (it.key, *it.previous_keys),
    "labels": lambda it, a, p: it.labels,
    "type": lambda it, a, p: (str(it.kind), it.item_type),
}
