"""The two-level rule index: every path an item can take to a rule gives the rule's links.

A rule is filed under its most selective equality condition, then (within that bucket) under
its next one; checks left over run on the item, rules without any equality are scanned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from okrsync.mapping import Matcher
from tests.unit.test_mapping import item, load

R1, R2, R3 = ("checkout", "checkout#1"), ("checkout", "checkout#2"), ("checkout", "checkout#3")


def matcher(tmp_path: Path, *rules: str) -> Matcher:
    return Matcher(load(tmp_path, "".join(f"[[tactic.rule]]\n{r}\n" for r in rules)))


def seconds(m: Matcher, fact: str, value: str) -> dict[str, Any]:
    """The second-level tables of one first-level bucket."""
    return m.index[fact][value][2]


def test_second_level_labels_any_under_container(tmp_path: Path) -> None:
    """container + labels_any: filed under the container, then under each label."""
    m = matcher(tmp_path, 'container = "ALPHA"\nlabels_any = ["growth", "OKR"]')
    assert set(seconds(m, "container", "alpha")["labels"]) == {"growth", "okr"}
    assert m.match(item(container="alpha", labels=("okr",))) == [R1]
    assert m.match(item(container="ALPHA", labels=("Growth", "okr", "bug"))) == [R1]
    assert m.match(item(container="ALPHA", labels=("bug",))) == []
    assert m.match(item(container="BETA", labels=("okr",))) == []


def test_second_level_labels_all_checks_the_other_labels(tmp_path: Path) -> None:
    """labels_all of two: filed under one label; the other is still checked."""
    m = matcher(tmp_path, 'container = "ALPHA"\nlabels_all = ["growth", "okr"]')
    assert m.match(item(container="ALPHA", labels=("okr", "growth"))) == [R1]
    assert m.match(item(container="ALPHA", labels=("growth",))) == []
    assert m.match(item(container="ALPHA", labels=("okr",))) == []
    assert m.match(item(container="BETA", labels=("okr", "growth"))) == []


def test_connector_under_container(tmp_path: Path) -> None:
    """connector + container: filed under the container (any of them), then the connector."""
    m = matcher(tmp_path, 'connector = ["jira", "asana"]\ncontainer = ["ALPHA", "Growth"]')
    assert set(seconds(m, "container", "growth")["connector"]) == {"jira", "asana"}
    assert m.match(item(container="alpha")) == [R1]
    assert m.match(item(connector="Asana", container="1", container_name="GROWTH")) == [R1]
    assert m.match(item(connector="github", container="alpha")) == []
    assert m.match(item(container="beta")) == []


def test_labels_all_alone_and_with_labels_any(tmp_path: Path) -> None:
    """Both label conditions on the one `labels` fact, at either level."""
    m = matcher(
        tmp_path,
        'labels_all = ["a", "b"]',
        'labels_all = ["a"]\nlabels_any = ["c", "d"]',
    )
    assert m.match(item(labels=("b", "a"))) == [R1]
    assert m.match(item(labels=("a", "d"))) == [R2]
    assert m.match(item(labels=("A", "B", "C"))) == [R1, R2]
    assert m.match(item(labels=("b", "c"))) == []


def test_second_level_container_under_milestone_with_asana_project(tmp_path: Path) -> None:
    """milestone + container: the second level reads the Asana project name too."""
    m = matcher(tmp_path, 'milestone = "v2"\ncontainer = "Growth"')
    assert "container" in seconds(m, "milestone", "v2")
    asana = item(connector="asana", container="1201", milestone="V2", container_name="growth")
    assert m.match(asana) == [R1]
    assert m.match(item(container="growth", milestone="v2")) == [R1]
    assert m.match(item(container="growth", milestone="v3")) == []
    assert m.match(item(container="other", milestone="v2", container_name="x")) == []


def test_second_level_proves_and_checks_the_rest(tmp_path: Path) -> None:
    """Filed two deep, the third condition (`type`, `connector`) is checked on the item."""
    m = matcher(
        tmp_path,
        'container = "ALPHA"\nassignee = "Ada"\ntype = "Bug"',
        'container = "ALPHA"\ncustom = { author = "ada" }',
        'connector = "jira"\ncontainer = "ALPHA"\nmilestone = "v1"',
    )
    assert set(seconds(m, "container", "alpha")) == {"assignee", "custom:author"}
    assert set(seconds(m, "milestone", "v1")) == {"container"}
    bug = item(container="ALPHA", assignee="ada", item_type="bug")
    assert m.match(bug) == [R1]
    assert m.match(item(container="ALPHA", assignee="ada", item_type="Story")) == []
    assert m.match(item(container="ALPHA", assignee="bob", item_type="Bug")) == []
    assert m.match(item(container="ALPHA", custom={"Author": "ADA"})) == [R2]
    assert m.match(item(container="ALPHA", milestone="V1")) == [R3]
    assert m.match(item(container="ALPHA", milestone="V1", connector="asana")) == []


def test_exclude_applies_on_every_index_path(tmp_path: Path) -> None:
    """An exclude clause leaves the item out whichever level proved the rule."""
    m = matcher(
        tmp_path,
        'keys = ["ALPHA-1"]\nexclude = { labels_any = ["wontfix"] }',
        'container = "ALPHA"\nlabels_any = ["okr"]\nexclude = { labels_all = ["x", "y"] }',
        "title = 'Fix'\nexclude = { assignee = \"bob\", title = 'later' }",
    )
    assert m.scan
    assert not m.title_only
    assert m.match(item("ALPHA-1", container="ALPHA", labels=("okr",))) == [R1, R2, R3]
    assert m.match(item("ALPHA-1", labels=("WontFix",))) == [R3]
    assert m.match(item("ALPHA-2", container="ALPHA", labels=("okr", "x"))) == [R2, R3]
    assert m.match(item("ALPHA-2", container="ALPHA", labels=("okr", "x", "y"))) == [R3]
    assert m.match(item("ALPHA-2", container="ALPHA", labels=("okr",), assignee="Bob")) == [R2]
    assert m.match(item("ALPHA-2", title="Fix later")) == []


def test_unindexed_rules_with_and_without_a_gate(tmp_path: Path) -> None:
    """Title-only rules (one combined quick reject) and scanned rules still match."""
    m = matcher(tmp_path, "title = '(?i)^fix'", "title = 'checkout$'", "title = '(a)b'")
    assert len(m.title_only) == 3
    assert not m.index
    assert m.match(item(title="fix checkout")) == [R1, R2]
    assert m.match(item(title="ab")) == [R3]
    assert m.match(item(title="nothing")) == []


def test_a_rule_reached_twice_is_linked_once(tmp_path: Path) -> None:
    """Several of the item's values hitting one rule give one link, at either level."""
    m = matcher(
        tmp_path,
        'labels_any = ["a", "b"]',
        'container = "ALPHA"\nlabels_any = ["a", "b"]',
        'epic = ["E-1", "E-2"]',
    )
    hit = item(container="ALPHA", labels=("a", "b"), parent_key="E-1")
    assert m.match(hit, ("E-1", "E-2", "e-1")) == [R1, R2, R3]


def test_second_level_reads_ancestors_and_earlier_parent_keys(tmp_path: Path) -> None:
    """epic and parent as second conditions read the ancestors given to `match`."""
    m = matcher(tmp_path, 'keys = ["A-9"]\nepic = "E-1"', 'keys = ["A-9"]\nparent = "P-1"')
    assert set(seconds(m, "keys", "a-9")) == {"epic", "parent"}
    assert m.match(item("A-9", parent_key="S-1"), ("S-1", "E-1")) == [R1]
    assert m.match(item("A-9", parent_key="P-2"), ("P-2",), ("p-1",)) == [R2]
    assert m.match(item("A-9", parent_key="P-1")) == [R2]
    assert m.match(item("A-9")) == []
