"""Properties: the links never depend on the order of rules, tactics or files."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from okrsync.linking import Ancestry, derive
from okrsync.mapping import Matcher, check_rules
from okrsync.models import KeyNode
from okrsync.okrfile import RawRule, Source, load_tree
from okrsync.store import StoredItem

WORDS = ["ALPHA", "BETA", "A-1", "A-2", "B-1", "bug", "ui", "jira", "asana", "v1", "Bug"]
KEYS = ["A-1", "A-2", "A-3", "B-1", "B-2"]
SET_KEYS = [
    "connector",
    "container",
    "epic",
    "parent",
    "labels_any",
    "labels_all",
    "milestone",
    "type",
    "keys",
    "assignee",
]

values = st.lists(st.sampled_from(WORDS), min_size=1, max_size=2, unique=True)
conditions = st.dictionaries(st.sampled_from(SET_KEYS), values, min_size=1, max_size=3)


@st.composite
def rule_data(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = draw(conditions)
    if draw(st.booleans()):
        data["title"] = draw(st.sampled_from(["(?i)fix", "Ship", "^A"]))
    if draw(st.booleans()):
        data["exclude"] = {"labels_any": draw(values)}
    return data


@st.composite
def stored_items(draw: st.DrawFn) -> list[StoredItem]:
    out = []
    for i, key in enumerate(KEYS):
        parent = draw(st.sampled_from([None, *KEYS[:i]]))
        out.append(
            StoredItem(
                draw(st.sampled_from(["jira", "asana"])),
                key,
                key,
                draw(st.sampled_from(["issue", "epic"])),
                draw(st.sampled_from([None, "Bug"])),
                draw(st.sampled_from(["Fix ui", "Ship it", "A thing"])),
                draw(st.sampled_from(["ALPHA", "BETA"])),
                parent,
                tuple(draw(st.lists(st.sampled_from(["bug", "ui", "BUG"]), max_size=2))),
                draw(st.sampled_from([None, "v1"])),
                None,
                draw(st.sampled_from([None, "a-1"])),
                {},
                (),
            )
        )
    return out


def links_of(raws: list[RawRule], items: list[StoredItem]) -> dict[Any, list[Any]]:
    """Links under the valid rules (a contradictory rule is rejected in any order)."""
    return derive(items, Matcher(check_rules(raws)[0]))


@settings(max_examples=60, deadline=None)
@given(
    rules=st.lists(
        st.tuples(st.sampled_from(["t1", "t2", "t3"]), rule_data()), min_size=1, max_size=8
    ),
    items=stored_items(),
    order=st.randoms(use_true_random=False),
)
def test_rule_order_never_changes_links(
    rules: list[tuple[str, dict[str, Any]]], items: list[StoredItem], order: Any
) -> None:
    """The same rules (same ids) in any order give the same links for every item."""
    raws = [
        RawRule(tactic, 0, {**data, "id": f"r{i}"}, Source("f.toml", i))
        for i, (tactic, data) in enumerate(rules)
    ]
    shuffled = raws[:]
    order.shuffle(shuffled)
    assert links_of(shuffled, items) == links_of(raws, items)


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value + "'"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"


def tactic_text(tactic: str, rules: list[dict[str, Any]]) -> str:
    head = f'[[tactic]]\nid = "{tactic}"\nkey_result = "kr"\ntitle = "{tactic}"\n'
    body = "".join(
        "[[tactic.rule]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in r.items())
        for r in rules
    )
    return head + body


TREE = (
    '[[objective]]\nid = "o"\ntitle = "O"\nperiod = "2026-Q4"\n'
    '[[key_result]]\nid = "kr"\nobjective = "o"\ntitle = "K"\nstart = 0\ntarget = 1\n'
)


@settings(max_examples=30, deadline=None)
@given(
    first=st.lists(rule_data(), min_size=1, max_size=3),
    second=st.lists(rule_data(), min_size=1, max_size=3),
    items=stored_items(),
)
def test_file_order_never_changes_links(
    first: list[dict[str, Any]], second: list[dict[str, Any]], items: list[StoredItem]
) -> None:
    """Tactics split over two files give the same links whichever file is read first."""
    with tempfile.TemporaryDirectory() as tmp:
        a, b, tree = Path(tmp, "a.toml"), Path(tmp, "b.toml"), Path(tmp, "tree.toml")
        tree.write_text(TREE)
        a.write_text(tactic_text("t1", first))
        b.write_text(tactic_text("t2", second))
        forward = load_tree([tree, a, b]).rules()
        backward = load_tree([b, a, tree]).rules()
    assert links_of(backward, items) == links_of(forward, items)


# -- the index never changes what a rule means ------------------------------------------

MORE_KEYS = [*SET_KEYS, "section"]
rich_conditions = st.dictionaries(st.sampled_from(MORE_KEYS), values, min_size=1, max_size=4)
customs = st.dictionaries(
    st.sampled_from(["project", "Team", "team"]), st.sampled_from(WORDS), max_size=2
)


@st.composite
def rich_rule(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = draw(rich_conditions)
    if draw(st.booleans()):
        data["custom"] = {draw(st.sampled_from(["team", "Team", "project"])): draw(values)}
    if draw(st.booleans()):
        data["title"] = draw(st.sampled_from(["(?i)fix", "Ship", "^A", "(i)t"]))
    if draw(st.booleans()):
        ex = draw(st.dictionaries(st.sampled_from(MORE_KEYS), values, min_size=1, max_size=2))
        data["exclude"] = ex
    return data


@st.composite
def rich_items(draw: st.DrawFn) -> list[StoredItem]:
    out = []
    for i, key in enumerate(KEYS):
        out.append(
            StoredItem(
                draw(st.sampled_from(["jira", "asana", "JIRA"])),
                key,
                key,
                draw(st.sampled_from(["issue", "epic", "bug"])),
                draw(st.sampled_from([None, "Bug", "bug", ""])),
                draw(st.sampled_from(["Fix ui", "Ship it", "A thing"])),
                draw(st.sampled_from([None, "ALPHA", "BETA", "alpha"])),
                draw(st.sampled_from([None, *KEYS[:i], "B-1", "OLD"])),
                tuple(draw(st.lists(st.sampled_from(["bug", "ui", "BUG", "v1", ""]), max_size=3))),
                draw(st.sampled_from([None, "v1", "V1"])),
                draw(st.sampled_from([None, "ui", "A-1"])),
                draw(st.sampled_from([None, "a-1", "Bug"])),
                draw(customs),
                tuple(draw(st.lists(st.sampled_from(["OLD", "A-9", "B-1"]), max_size=2))),
            )
        )
    return out


def item_facts(it: StoredItem, ancestors: Any, parent_keys: Any) -> dict[str, set[str]]:
    """What each condition compares, read naively (as the module documents it)."""

    def fold(vs: Any) -> set[str]:
        return {v.casefold() for v in vs if v}

    project = it.custom.get("project")
    facts = {
        "connector": fold([it.connector]),
        "container": fold([it.container, project] if project else [it.container]),
        "epic": fold([it.parent_key, *ancestors]),
        "parent": fold([it.parent_key, *parent_keys]),
        "labels_any": fold(it.labels),
        "labels_all": fold(it.labels),
        "milestone": fold([it.milestone]),
        "section": fold([it.section]),
        "type": fold([it.kind, it.item_type]),
        "keys": fold([it.key, *it.previous_keys]),
        "assignee": fold([it.assignee]),
    }
    for name in ("project", "team"):
        facts[f"custom.{name}"] = fold(v for k, v in it.custom.items() if k.casefold() == name)
    return facts


def holds(key: str, wanted: Any, facts: dict[str, set[str]]) -> bool:
    vals = {v.strip().casefold() for v in ([wanted] if isinstance(wanted, str) else wanted)}
    have = facts[key]
    return vals <= have if key == "labels_all" else bool(vals & have)


def naive_match(data: dict[str, Any], it: StoredItem, facts: dict[str, set[str]]) -> bool:
    """One rule evaluated directly: every include condition, then no exclude condition."""

    def conditions(d: dict[str, Any]) -> list[bool]:
        out = [holds(k, v, facts) for k, v in d.items() if k in MORE_KEYS]
        out += [holds(f"custom.{k.casefold()}", v, facts) for k, v in d.get("custom", {}).items()]
        if "title" in d:
            out.append(re.search(d["title"], it.title) is not None)
        return out

    return all(conditions(data)) and not any(conditions(data.get("exclude", {})))


@settings(max_examples=150, deadline=None)
@given(rules=st.lists(rich_rule(), min_size=1, max_size=10), items=rich_items())
def test_index_matches_like_evaluating_every_rule(
    rules: list[dict[str, Any]], items: list[StoredItem]
) -> None:
    """Whatever level or fallback a rule is filed at, its links are exactly the items that
    satisfy it when evaluated on its own."""
    raws = [RawRule("t1", i, data, Source("f.toml", i)) for i, data in enumerate(rules)]
    valid, _ = check_rules(raws)
    ids = {r.id for r in valid}
    matcher = Matcher(valid)
    ancestry = Ancestry()
    for it in items:
        ancestry.add(it.connector, KeyNode(it.key, it.parent_key, it.previous_keys))
    for it in items:
        anc = ancestry.chain(it.connector, it.parent_key)
        parent_keys = ancestry.earlier_keys(it.connector, it.parent_key)
        facts = item_facts(it, anc, parent_keys)
        expected = [
            ("t1", f"t1#{i + 1}")
            for i, data in enumerate(rules)
            if f"t1#{i + 1}" in ids and naive_match(data, it, facts)
        ]
        assert matcher.match(it, anc, parent_keys) == sorted(expected)
