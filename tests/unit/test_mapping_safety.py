"""Mapping safety (issue 12): RE2 title rules, strict slugs, the one-pass TOML index and the
guards against an empty or mostly-archiving load."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from okrsync import okrfile
from okrsync.mapping import TITLE_PREFIX, Matcher, check_rules
from okrsync.models import ItemKind, StatusCategory, WorkItem
from okrsync.okrfile import OkrFileError, OkrTree, load_tree
from okrsync.pipeline import MappingRefused, check_load
from okrsync.store import Store
from okrsync.tomlpos import TomlIndex
from tests.helpers import TREE, write

T0 = datetime(2026, 10, 5, tzinfo=UTC)
RULE_LINE = TREE.strip().count("\n") + 2  # the first [[tactic.rule]] after TREE


def item(title: str, key: str = "ALPHA-1") -> WorkItem:
    return WorkItem(
        connector="jira",
        external_id=key,
        key=key,
        kind=ItemKind.ISSUE,
        title=title,
        status=StatusCategory.TODO,
        status_raw="To Do",
        created=T0,
        updated=T0,
    )


def matcher(tmp_path: Path, rules: str) -> Matcher:
    path = write(tmp_path / "okrs.toml", TREE + rules)
    return Matcher.from_tree(load_tree([path]))


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path / "okrs.toml", text)
    try:
        tree = load_tree([path])
    except OkrFileError as exc:
        return exc.problems
    return check_rules(tree.rules())[1]


# -- title rules run on RE2 -----------------------------------------------------------------

EVIL = """
import sys
from pathlib import Path
from okrsync.mapping import Matcher
from okrsync.okrfile import load_tree
from okrsync.store import StoredItem

def item(title):
    return StoredItem("jira", "1", "A-1", "issue", None, title, None, None, (), None, None,
                      None, {}, ())

m = Matcher.from_tree(load_tree([Path(sys.argv[1])]))
print(m.match(item("a" * 40 + "b")), m.match(item("aaaa")))
"""


def test_a_backtracking_title_pattern_matches_at_once(tmp_path: Path) -> None:
    """`(a+)+$` against "a"*40 + "b" finishes (RE2 never backtracks) and matches correctly."""
    path = write(tmp_path / "okrs.toml", TREE + "[[tactic.rule]]\ntitle = '(a+)+$'\n")
    proc = subprocess.run(
        [sys.executable, "-c", EVIL, str(path)],
        capture_output=True,
        text=True,
        timeout=60,  # Python's re needs years here; RE2 a few microseconds
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "[] [('checkout', 'checkout#1')]"


@pytest.mark.parametrize(
    ("pattern", "said"),
    [
        ("(?<=fix )checkout", "RE2 does not support look-behind; rewrite without it"),
        ("(?<!hot)fix", "RE2 does not support look-behind; rewrite without it"),
        ("fix(?= now)", "RE2 does not support look-ahead; rewrite without it"),
        ("^(?!wip)", "RE2 does not support negative look-ahead; rewrite without it"),
        (r"(\w+) \1", r"RE2 does not support backreferences (\1); rewrite without them"),
        ("(?P<w>x)(?P=w)", "RE2 does not support named backreferences (?P=name)"),
        ("(?>fix)", "RE2 does not support atomic groups (?>...); write a plain group (...)"),
        ("fix++", "RE2 does not support possessive quantifiers (++, *+, ?+)"),
        (r"fix\Z", r"RE2 does not support \Z; write the end of the title as \z"),
        ("a{2000}", "RE2 does not support counts over 1000 in {n,m}"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_line_and_fix(
    tmp_path: Path, pattern: str, said: str
) -> None:
    """A Python-only construct is an error at the title's file:line naming it and the fix."""
    (msg,) = problems(tmp_path, TREE + f"[[tactic.rule]]\ntitle = '{pattern}'\n")
    where = f"{tmp_path / 'okrs.toml'}:{RULE_LINE + 1}: rule 'checkout#1' of tactic 'checkout'"
    assert msg.startswith(f"{where}: title pattern {pattern!r} cannot be used: {said}")


def test_a_pattern_refused_in_exclude_names_its_line(tmp_path: Path) -> None:
    """An exclude title RE2 cannot run is refused at the exclude's line."""
    rules = "[[tactic.rule]]\ncontainer = 'A'\nexclude = { title = '(?<=x)y' }\n"
    (msg,) = problems(tmp_path, TREE + rules)
    assert f"okrs.toml:{RULE_LINE + 2}: " in msg
    assert "RE2 does not support look-behind" in msg


def test_title_case_rules_are_kept(tmp_path: Path) -> None:
    """Titles match case-sensitively unless the pattern says (?i), as before."""
    m = matcher(tmp_path, "[[tactic.rule]]\ntitle = 'Fix'\n[[tactic.rule]]\ntitle = '(?i)^fix'\n")
    assert m.match(item("fix it")) == [("checkout", "checkout#2")]
    assert m.match(item("Fix it")) == [("checkout", "checkout#1"), ("checkout", "checkout#2")]
    assert m.match(item("a Fix")) == [("checkout", "checkout#1")]


def test_titles_are_matched_on_a_capped_prefix(tmp_path: Path) -> None:
    """Only the first TITLE_PREFIX characters of a title are read, indexed or not."""
    m = matcher(
        tmp_path,
        "[[tactic.rule]]\ntitle = 'needle'\n[[tactic.rule]]\nkeys = 'A-1'\ntitle = 'pin'\n",
    )
    pad = "x" * (TITLE_PREFIX - 6)
    assert m.match(item(pad + "needle pin", "A-1")) == [("checkout", "checkout#1")]
    assert m.match(item(pad + "x needle pin", "A-1")) == []
    assert m.match(item("pin " + pad + "needle", "A-1")) == [("checkout", "checkout#2")]


def test_titles_with_unencodable_characters_still_match(tmp_path: Path) -> None:
    """A lone surrogate from a tracker's JSON neither crashes matching nor hides a match."""
    m = matcher(tmp_path, "[[tactic.rule]]\ntitle = 'checkout'\n")
    assert m.match(item("\ud800 checkout")) == [("checkout", "checkout#1")]


# -- ids are strict slugs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ('id = "grow"', 'id = "grow\\n"', 2),
        ('id = "latency"', 'id = "latency\\n"', 16),
        ('id = "checkout"', 'id = "checkout\\n"', 24),
    ],
)
def test_an_id_with_a_trailing_newline_is_not_a_slug(
    tmp_path: Path, old: str, new: str, line: int
) -> None:
    """Objective, key result and tactic ids must be slugs whole: "x\\n" is refused at its line."""
    msgs = problems(tmp_path, TREE.replace(old, new))
    assert msgs[0].startswith(f"{tmp_path / 'okrs.toml'}:{line}: id ")
    assert "is not a slug" in msgs[0]


def test_a_rule_id_with_a_trailing_newline_is_not_a_slug(tmp_path: Path) -> None:
    """An explicit rule id must be a slug whole, refused at its line."""
    (msg,) = problems(tmp_path, TREE + '[[tactic.rule]]\nid = "bugs\\n"\nkeys = "A-1"\n')
    assert msg.startswith(f"{tmp_path / 'okrs.toml'}:{RULE_LINE + 1}: rule 'bugs\\n' ")
    assert "is not a slug" in msg


def test_a_period_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    """A period must be one of the forms whole: "2026-Q4\\n" is an error at its line."""
    (msg,) = problems(tmp_path, TREE.replace('"2026-Q4"', '"2026-Q4\\n"'))
    assert msg.startswith(f"{tmp_path / 'okrs.toml'}:5: period ")


# -- the TOML index -------------------------------------------------------------------------


def scan_locate(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The scan `tomlpos.locate` made before the index (one whole pass per lookup)."""
    import re

    key = re.compile(r"""^\s*([A-Za-z0-9_\-."' ]+?)\s*=""")

    def parts(dotted: str) -> tuple[str, ...]:
        return tuple(p.strip().strip('"').strip("'") for p in dotted.split("."))

    def resolve(ps: tuple[str, ...], arrays: dict[Any, int]) -> tuple[str | int, ...]:
        out: list[str | int] = []
        for i, p in enumerate(ps):
            out.append(p)
            if i < len(ps) - 1 and tuple(out) in arrays:
                out.append(arrays[tuple(out)])
        return tuple(out)

    arrays: dict[Any, int] = {}
    current: tuple[str | int, ...] = ()
    best = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[["):
            base = resolve(parts(line[2 : line.find("]]")]), arrays)
            arrays[base] = arrays.get(base, -1) + 1
            current = (*base, arrays[base])
        elif line.startswith("["):
            current = resolve(parts(line[1 : line.find("]")]), arrays)
        else:
            m = key.match(line)
            if m and (*current, *parts(m.group(1))) == loc:
                return lineno
            continue
        if current == loc[: len(current)]:
            best = lineno
    return best


TRICKY = """
# a comment holding [[objective]] and id = "x"
[[objective]]   # trailing comment
id = "o"  # id = "other"
"title" = "Quoted key"
'owner' = "Dana"
period = "2026-Q4"

[[key_result]]
id = "k"
objective = "o"
title = "KR"
start = 0
target = 1

[[tactic]]
id = "t"
key_result = "k"
title = "T"

  [[tactic.rule]]
  custom.team = "growth"
  custom . "area" = "web"
  exclude = { labels_any = ["wontfix"], type = "Bug" }
  labels_any = ["a", "b"]

[[tactic.rule]]
id = "second"
title = '(?i)fix = [x]'

[[tactic]]
id = "t2"
key_result = "k"
title = "T2"

[[tactic.rule]]
keys = ["A-1"]
[tactic.rule.exclude]
labels_any = ["x"]
"""


def paths(data: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every table, array element and key path in parsed TOML."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield (*prefix, k)
            yield from paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            if isinstance(v, dict):
                yield (*prefix, i)
                yield from paths(v, (*prefix, i))


def test_index_gives_the_lines_the_scan_gave() -> None:
    """For arrays of tables, dotted, quoted and indented keys, comments, inline tables and
    sub-tables, every path's line is the one the old per-lookup scan found."""
    text = textwrap.dedent(TRICKY).lstrip()
    index = TomlIndex(text)
    every = list(paths(tomllib.loads(text)))
    assert len(every) == 39
    assert [index.line(p) for p in every] == [scan_locate(text, p) for p in every]
    assert index.line(("tactic", 0, "rule", 0, "custom", "area")) == 22
    assert index.line(("tactic", 0, "rule", 0, "exclude", "type")) == 20  # inline: the header
    assert index.line(("tactic", 1, "rule", 0, "exclude", "labels_any")) == 38
    assert index.line(("nothing",)) is None


MULTILINE = '''
[[objective]]
id = "o"
description = """
[[tactic]]
id = "fake" \\"""
"""
title = "O"

[[tactic]]
id = "t"
notes = \'\'\'
[[tactic.rule]]
title = "not a rule"\'\'\'
labels = [
  "x",  # a comment ]
  ["nested = 1"],
]
weight = 2

[[tactic.rule]]
keys = "A-1"
'''


def test_index_skips_multiline_strings_and_arrays() -> None:
    """Text inside multi-line strings and arrays is never taken for a header or a key."""
    text = textwrap.dedent(MULTILINE).lstrip()
    tomllib.loads(text)  # the document is valid TOML
    index = TomlIndex(text)
    assert index.line(("objective", 0, "id")) == 2
    assert index.line(("objective", 0, "title")) == 7
    assert index.line(("tactic", 0)) == 9
    assert index.line(("tactic", 0, "weight")) == 18
    assert index.line(("tactic", 0, "rule", 0)) == 20
    assert index.line(("tactic", 0, "rule", 0, "keys")) == 21
    assert index.line(("tactic", 0, "rule", 0, "title")) == 20  # no such key: the header
    assert index.line(("tactic", 1)) is None


def test_a_mapping_file_is_indexed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading and checking a file of many tactics and rules reads its text into one index,
    and problems in its rules still name their own lines."""
    built: list[int] = []

    class Counted(TomlIndex):
        def __init__(self, text: str) -> None:
            built.append(len(text))
            super().__init__(text)

    monkeypatch.setattr(okrfile, "TomlIndex", Counted)
    tactics = "".join(
        f'[[tactic]]\nid = "t{i}"\nkey_result = "conv"\ntitle = "T{i}"\n'
        f'[[tactic.rule]]\nkeys = "A-{i}"\n[[tactic.rule]]\nlabels_any = []\n'
        for i in range(200)
    )
    path = write(tmp_path / "okrs.toml", TREE + tactics)
    tree = load_tree([path])
    found = check_rules(tree.rules())[1]
    assert len(built) == 1
    assert len(found) == 200
    first = RULE_LINE + 7  # `labels_any = []` of the first generated tactic
    assert found[0].startswith(f"{path}:{first}: rule 't0#2' of tactic 't0'")
    assert found[-1].startswith(f"{path}:{first + 199 * 8}: rule 't199#2' of tactic 't199'")


# -- guards against emptying or mostly archiving the stored tree ----------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")
    yield s
    s.close()


def tree_of(tmp_path: Path, text: str) -> OkrTree:
    return load_tree([write(tmp_path / "okrs" / "main.toml", text)])


def test_an_empty_mapping_set_is_refused_unless_allowed(store: Store, tmp_path: Path) -> None:
    """No objectives, key results or tactics: refused naming the paths and --allow-empty."""
    empty = tree_of(tmp_path, "# nothing yet\n")
    paths = [tmp_path / "okrs"]
    with pytest.raises(MappingRefused) as info:
        check_load(store, empty, paths)
    assert f"[mappings].paths = {tmp_path / 'okrs'}" in str(info.value)
    assert "--allow-empty" in str(info.value)
    check_load(store, empty, paths, allow_empty=True)  # an empty store loses nothing


def test_archiving_more_than_half_needs_yes(store: Store, tmp_path: Path) -> None:
    """Dropping over half of the stored objectives/key results/tactics is refused without
    yes (nothing changes); half or less, or with yes, goes through."""
    store.apply_okr_tree(tree_of(tmp_path, TREE))  # 1 objective, 2 key results, 1 tactic
    paths = [tmp_path / "okrs"]
    empty = tree_of(tmp_path, "")
    with pytest.raises(MappingRefused) as info:
        check_load(store, empty, paths, allow_empty=True)
    msg = str(info.value)
    assert "would archive 4 of the 4 objectives, key results and tactics" in msg
    assert "key_result:conv" in msg
    assert "run the command again with --yes" in msg
    check_load(store, empty, paths, allow_empty=True, yes=True)
    half = TREE.split('[[key_result]]\nid = "latency"')[0]  # drops latency and checkout
    check_load(store, tree_of(tmp_path, half), paths)  # 2 of 4: not more than half
    three = half.split("[[key_result]]")[0] + '[[key_result]]\nid = "x"\nobjective = "grow"\n'
    three += 'title = "X"\nstart = 0\ntarget = 1\n'
    with pytest.raises(MappingRefused):
        check_load(store, tree_of(tmp_path, three), paths)  # 3 of 4 archived
    assert {o["id"] for o in active(store)} == {"grow", "conv", "latency", "checkout"}


def active(store: Store) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from okrsync.store.tables import KEY_RESULT, OBJECTIVE, TACTIC

    rows: list[dict[str, Any]] = []
    with store.engine.connect() as conn:
        for table in (OBJECTIVE, KEY_RESULT, TACTIC):
            q = sa.select(table.c.id).where(table.c.archived_at.is_(None))
            rows += [{"id": r[0]} for r in conn.execute(q)]
    return rows
