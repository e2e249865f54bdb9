"""Properties: the links never depend on the order of rules, tactics or files."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from okrsync.mapping import Matcher, check_rules
from okrsync.okrfile import RawRule, Source, load_tree
from okrsync.remap import StoredItem, derive

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
