"""Mapping rules: every matcher, the index, and the messages a manager sees."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from okrsync.cli_mapping import _parse_day
from okrsync.errors import ConfigError
from okrsync.linking import Ancestry, derive, link_page
from okrsync.mapping import MappingError, Matcher, Rule, check_rules, compile_rules
from okrsync.models import ItemKind, KeyNode, Lineage, Page, StatusCategory, WorkItem
from okrsync.okrfile import load_tree
from okrsync.pipeline import page_linker, remap
from okrsync.preview import analyse
from okrsync.store import Store, StoredItem
from okrsync.store.tables import ITEM_LINK
from tests.helpers import TREE, write

T0 = datetime(2026, 10, 5, tzinfo=UTC)


def item(key: str = "ALPHA-1", **kw: Any) -> WorkItem:
    """A work item with sensible defaults."""
    base: dict[str, Any] = {
        "connector": "jira",
        "external_id": key,
        "key": key,
        "kind": ItemKind.ISSUE,
        "title": "Fix checkout",
        "status": StatusCategory.TODO,
        "status_raw": "To Do",
        "created": T0,
        "updated": T0,
    }
    return WorkItem(**{**base, **kw})


def load(tmp_path: Path, rules: str, connectors: list[str] | None = None) -> list[Rule]:
    """Compile rules written under the tactic `checkout` of the shared test tree."""
    path = write(tmp_path / "okrs.toml", TREE + rules)
    return compile_rules(load_tree([path]).rules(), connectors)


def problems(tmp_path: Path, rules: str, connectors: list[str] | None = None) -> list[str]:
    path = write(tmp_path / "okrs.toml", TREE + rules)
    return check_rules(load_tree([path]).rules(), connectors)[1]


def links(tmp_path: Path, rules: str, it: WorkItem, ancestors: tuple[str, ...] = ()) -> list[Any]:
    return Matcher(load(tmp_path, rules)).match(it, ancestors)


HIT = [("checkout", "checkout#1")]


# -- each condition -------------------------------------------------------------------------


def test_connector_equality_ignores_case(tmp_path: Path) -> None:
    """`connector` compares names case-insensitively."""
    rules = '[[tactic.rule]]\nconnector = "JIRA"\n'
    assert links(tmp_path, rules, item()) == HIT
    assert links(tmp_path, rules, item(connector="asana")) == []


def test_container_matches_key_or_asana_project_name(tmp_path: Path) -> None:
    """`container` matches the container itself or its name (an Asana project's), not a custom
    field that happens to be called project."""
    rules = '[[tactic.rule]]\ncontainer = ["alpha", "growth"]\n'
    assert links(tmp_path, rules, item(container="ALPHA")) == HIT
    asana = item(connector="asana", container="1201", container_name="Growth")
    assert links(tmp_path, rules, asana) == HIT
    assert links(tmp_path, rules, item(container="BETA")) == []
    custom_only = item(connector="other", container="9", custom={"project": "Growth"})
    assert links(tmp_path, rules, custom_only) == []


def test_assignee_matches_any_identity_ignoring_case(tmp_path: Path) -> None:
    """`assignee` matches the display name or any stored identity (e-mail, username, account
    id), ignoring case; an item without ids matches on its display name only."""
    rules = '[[tactic.rule]]\nassignee = ["ADA@example.com", "557058:f58131cb"]\n'
    ada = item(assignee="Ada Lovelace", assignee_ids=("ada@example.com", "ada"))
    assert links(tmp_path, rules, ada) == HIT
    grace = item(assignee="Grace Hopper", assignee_ids=("557058:F58131CB",))
    assert links(tmp_path, rules, grace) == HIT
    assert links(tmp_path, rules, item(assignee="Ada Lovelace")) == []
    by_name = '[[tactic.rule]]\nassignee = "ada lovelace"\n'
    assert links(tmp_path, by_name, item(assignee="Ada Lovelace")) == HIT


def test_epic_matches_ancestors_transitively_not_itself(tmp_path: Path) -> None:
    """`epic` matches the parent and every ancestor given, never the epic itself."""
    rules = '[[tactic.rule]]\nepic = "ALPHA-1"\n'
    assert links(tmp_path, rules, item("ALPHA-2", parent_key="ALPHA-1")) == HIT
    assert links(tmp_path, rules, item("ALPHA-3", parent_key="ALPHA-2"), ("ALPHA-1",)) == HIT
    assert links(tmp_path, rules, item("ALPHA-1", kind=ItemKind.EPIC)) == []


def test_parent_matches_direct_parent_only(tmp_path: Path) -> None:
    """`parent` looks at the direct parent, not at grandparents."""
    matcher = Matcher(load(tmp_path, '[[tactic.rule]]\nparent = "ALPHA-2"\n'))
    assert matcher.match(item("ALPHA-3", parent_key="ALPHA-2")) == HIT
    assert matcher.match(item("ALPHA-4", parent_key="ALPHA-3"), ("ALPHA-2",)) == []
    assert matcher.match(item("ALPHA-4", parent_key="BETA-9"), (), ("ALPHA-2",)) == HIT


def test_labels_any_and_labels_all(tmp_path: Path) -> None:
    """`labels_any` needs one of the labels, `labels_all` every one of them."""
    any_rule = '[[tactic.rule]]\nlabels_any = ["growth", "okr"]\n'
    all_rule = '[[tactic.rule]]\nlabels_all = ["growth", "okr"]\n'
    assert links(tmp_path, any_rule, item(labels=("OKR",))) == HIT
    assert links(tmp_path, any_rule, item(labels=("bug",))) == []
    assert links(tmp_path, all_rule, item(labels=("okr", "Growth", "bug"))) == HIT
    assert links(tmp_path, all_rule, item(labels=("okr",))) == []


def test_milestone_section_and_assignee(tmp_path: Path) -> None:
    """`milestone`, `section` and `assignee` are plain case-insensitive equalities."""
    rules = (
        '[[tactic.rule]]\nmilestone = "web v2.0"\n'
        '[[tactic.rule]]\nsection = "In Progress"\n'
        '[[tactic.rule]]\nassignee = "ada lovelace"\n'
    )
    m = Matcher(load(tmp_path, rules))
    assert m.match(item(milestone="Web v2.0")) == [("checkout", "checkout#1")]
    assert m.match(item(section="in progress")) == [("checkout", "checkout#2")]
    assert m.match(item(assignee="Ada Lovelace")) == [("checkout", "checkout#3")]
    assert m.match(item()) == []


def test_type_matches_kind_or_tracker_type(tmp_path: Path) -> None:
    """`type` matches the normalised kind or the tracker's own type name."""
    rules = '[[tactic.rule]]\ntype = ["pull_request", "bug"]\n'
    assert links(tmp_path, rules, item(kind=ItemKind.PULL_REQUEST)) == HIT
    assert links(tmp_path, rules, item(item_type="Bug")) == HIT
    assert links(tmp_path, rules, item(item_type="Story")) == []


def test_keys_match_current_and_earlier_keys(tmp_path: Path) -> None:
    """`keys` also matches an item moved away from a listed key."""
    rules = '[[tactic.rule]]\nkeys = ["ALPHA-7"]\n'
    assert links(tmp_path, rules, item("alpha-7")) == HIT
    assert links(tmp_path, rules, item("BETA-3", previous_keys=("ALPHA-7",))) == HIT
    assert links(tmp_path, rules, item("ALPHA-8")) == []


def test_title_is_a_case_sensitive_search_unless_flagged(tmp_path: Path) -> None:
    """`title` is searched as a regex, case-sensitive unless it says (?i)."""
    assert links(tmp_path, "[[tactic.rule]]\ntitle = 'checkout'\n", item()) == HIT
    assert links(tmp_path, "[[tactic.rule]]\ntitle = 'Checkout'\n", item()) == []
    assert links(tmp_path, "[[tactic.rule]]\ntitle = '(?i)CHECKOUT$'\n", item()) == HIT


def test_custom_field_equality(tmp_path: Path) -> None:
    """`custom` compares the named custom fields, case-insensitively."""
    rules = '[[tactic.rule]]\ncustom = { Author = ["octocat"], repo = "acme/web" }\n'
    hit = item(custom={"author": "OctoCat", "repo": "acme/web"})
    assert links(tmp_path, rules, hit) == HIT
    assert links(tmp_path, rules, item(custom={"author": "octocat"})) == []


def test_exclude_drops_items_matching_any_of_its_conditions(tmp_path: Path) -> None:
    """An item matching any one exclude condition is left out of that rule only."""
    rules = (
        '[[tactic.rule]]\ncontainer = "ALPHA"\n'
        'exclude = { labels_any = ["wontfix"], type = "Sub-task" }\n'
        '[[tactic.rule]]\ncontainer = "ALPHA"\n'
    )
    m = Matcher(load(tmp_path, rules))
    both = [("checkout", "checkout#1"), ("checkout", "checkout#2")]
    assert m.match(item(container="ALPHA")) == both
    assert m.match(item(container="ALPHA", labels=("wontfix",))) == [("checkout", "checkout#2")]
    assert m.match(item(container="ALPHA", item_type="Sub-task")) == [("checkout", "checkout#2")]


def test_all_conditions_of_a_rule_must_hold(tmp_path: Path) -> None:
    """A rule attaches an item only when every condition matches."""
    rules = '[[tactic.rule]]\nconnector = "jira"\ncontainer = "ALPHA"\ntitle = "Fix"\n'
    assert links(tmp_path, rules, item(container="ALPHA")) == HIT
    assert links(tmp_path, rules, item(container="ALPHA", title="Ship it")) == []
    assert links(tmp_path, rules, item(container="ALPHA", connector="jira-dc")) == []


def test_explicit_rule_id_and_several_tactics(tmp_path: Path) -> None:
    """Links name the rule (explicit id or tactic#n) and list every matching tactic."""
    tree = TREE + (
        '[[tactic.rule]]\nid = "web-bugs"\ncontainer = "acme/web"\n'
        '[[tactic]]\nid = "speed"\nkey_result = "latency"\ntitle = "Speed"\n'
        '[[tactic.rule]]\ncontainer = "acme/web"\n'
    )
    path = write(tmp_path / "okrs.toml", tree)
    m = Matcher.from_tree(load_tree([path]))
    assert m.match(item(container="acme/web")) == [("checkout", "web-bugs"), ("speed", "speed#1")]


def test_title_only_rules_are_scanned_and_others_indexed(tmp_path: Path) -> None:
    """Rules without equality conditions are scanned; others are filed by their best key."""
    rules = (
        "[[tactic.rule]]\ntitle = 'Fix'\n"
        '[[tactic.rule]]\ncontainer = "ALPHA"\nkeys = ["ALPHA-9"]\n'
        '[[tactic.rule]]\nconnector = "jira"\ncontainer = "BETA"\n'
    )
    m = Matcher(load(tmp_path, rules))
    assert [link for link, _ in m.title_only] == [("checkout", "checkout#1")]
    assert set(m.index) == {"keys", "container"}
    assert m.match(item("ALPHA-9", container="alpha", title="x")) == [("checkout", "checkout#2")]
    assert m.match(item(container="beta", title="x")) == [("checkout", "checkout#3")]


# -- ancestors through stored items ---------------------------------------------------------


def stored(key: str, parent: str | None = None, prev: tuple[str, ...] = ()) -> StoredItem:
    return StoredItem(
        "jira", key, key, "issue", None, "t", "ALPHA", parent, (), None, None, None, {}, prev
    )


def test_derive_walks_parents_through_moved_keys(tmp_path: Path) -> None:
    """A sub-task of a story under a moved epic matches the epic's old key."""
    m = Matcher(load(tmp_path, '[[tactic.rule]]\nepic = "OLD-1"\n'))
    items = [stored("NEW-1", prev=("OLD-1",)), stored("A-2", "NEW-1"), stored("A-3", "A-2")]
    got = derive(items, m)
    assert got[("jira", "NEW-1")] == []
    assert got[("jira", "A-2")] == HIT
    assert got[("jira", "A-3")] == HIT


def test_ancestry_survives_a_parent_cycle() -> None:
    """A parent cycle in tracker data ends the walk instead of looping."""
    a = Ancestry()
    a.add("jira", KeyNode("A-1", "A-2"))
    a.add("jira", KeyNode("A-2", "A-1"))
    assert a.chain("jira", "A-2") == {"A-1", "A-2"}


def test_preview_counts_unmapped_and_overlaps(tmp_path: Path) -> None:
    """Preview counts per rule, groups unmapped items by container and lists overlaps."""
    tree = TREE + (
        '[[tactic.rule]]\nkeys = ["A-1", "A-2"]\n'
        '[[tactic]]\nid = "speed"\nkey_result = "latency"\ntitle = "Speed"\n'
        '[[tactic.rule]]\nkeys = ["A-2", "Z-9"]\n'
    )
    m = Matcher.from_tree(load_tree([write(tmp_path / "okrs.toml", tree)]))
    report = analyse([stored("A-1"), stored("A-2"), stored("A-3")], m)
    assert [(t.tactic_id, t.items) for t in report.tactics] == [("checkout", 2), ("speed", 1)]
    assert report.unmapped_count == 1
    assert [(o.item.key, o.tactics) for o in report.overlaps] == [("A-2", ("checkout", "speed"))]
    assert report.unmatched_rules == []


# -- messages a manager sees ----------------------------------------------------------------


def test_unknown_tactic_and_bad_date_messages(tmp_path: Path) -> None:
    """preview --tactic suggests the id meant; --as-of names the expected format."""
    m = Matcher(load(tmp_path, '[[tactic.rule]]\nkeys = "A-1"\n'))
    with pytest.raises(ConfigError) as exc:
        analyse([], m, "chekout")
    assert str(exc.value) == "no tactic 'chekout' in the mapping files; did you mean 'checkout'?"
    with pytest.raises(ConfigError) as exc:
        _parse_day("01/11/2026")
    assert str(exc.value) == "--as-of '01/11/2026' is not a date; write it as YYYY-MM-DD"


def one(tmp_path: Path, rules: str, connectors: list[str] | None = None) -> str:
    found = problems(tmp_path, rules, connectors)
    assert len(found) == 1, found
    return found[0].replace(str(tmp_path), "DIR")


FIRST = 'DIR/okrs.toml:{}: rule "checkout#1" of tactic "checkout": '.replace('"', "'")
RULE_LINE = TREE.strip().count("\n") + 2  # the first [[tactic.rule]] header


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    """A misspelt key names the line and the key it probably meant."""
    msg = one(tmp_path, '[[tactic.rule]]\ncontainer = "A"\nlables_any = ["x"]\n')
    assert msg == FIRST.format(RULE_LINE + 2) + (
        "unknown key 'lables_any' in a rule; did you mean 'labels_any'?"
    )


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(tmp_path: Path) -> None:
    """An unrecognisable key lists every allowed key."""
    msg = one(tmp_path, '[[tactic.rule]]\ncontainer = "A"\nzzz = 1\n')
    assert msg == FIRST.format(RULE_LINE + 2) + (
        "unknown key 'zzz' in a rule; allowed: assignee, connector, container, custom, "
        "description, epic, exclude, id, iteration, keys, labels_all, labels_any, milestone, "
        "parent, section, title, type"
    )


def test_invalid_title_pattern(tmp_path: Path) -> None:
    """A broken regular expression says why and how to write a literal character."""
    msg = one(tmp_path, "[[tactic.rule]]\ntitle = 'fix (checkout'\n")
    assert msg == FIRST.format(RULE_LINE + 1) + (
        "title pattern 'fix (checkout' is not a valid regular expression (missing ), "
        "unterminated subpattern at position 4); fix it, or put a backslash before a special "
        r"character you mean literally: \( \[ \. \* \+ \?"
    )


def test_empty_list_can_never_match(tmp_path: Path) -> None:
    """An empty list is reported as a rule that can never match."""
    msg = one(tmp_path, '[[tactic.rule]]\ncontainer = "A"\nlabels_any = []\n')
    assert msg == FIRST.format(RULE_LINE + 2) + (
        "'labels_any' is an empty list, so this rule can never match; "
        "list at least one value or remove the key"
    )


def test_rule_without_a_positive_condition(tmp_path: Path) -> None:
    """A rule with only an exclude attaches nothing and says so."""
    msg = one(tmp_path, '[[tactic.rule]]\nexclude = { labels_any = ["x"] }\n')
    assert msg == FIRST.format(RULE_LINE) + (
        "has no condition, so it would attach nothing; add at least one of connector, "
        "container, epic, parent, labels_any, labels_all, milestone, section, type, keys, "
        "assignee, iteration, title, custom (an 'exclude' alone selects nothing)"
    )


def test_connector_that_is_not_configured(tmp_path: Path) -> None:
    """A connector name missing from the config is a dangling reference with a suggestion."""
    msg = one(tmp_path, '[[tactic.rule]]\nconnector = "jria"\n', ["jira", "asana"])
    assert msg == FIRST.format(RULE_LINE + 1) + (
        "connector 'jria' is not configured in the config file's [[connectors]]; "
        "did you mean 'jira'?"
    )
    msg = one(tmp_path, '[[tactic.rule]]\nconnector = "gitlab"\n', ["jira", "asana"])
    assert msg.endswith("configured connectors: asana, jira")


def test_labels_all_clashing_with_exclude(tmp_path: Path) -> None:
    """Requiring a label that the exclude removes can never match."""
    rules = '[[tactic.rule]]\nlabels_all = ["Okr", "web"]\nexclude = { labels_any = ["okr"] }\n'
    assert one(tmp_path, rules) == FIRST.format(RULE_LINE + 1) + (
        "can never match: 'labels_all' requires 'Okr' but 'exclude.labels_any' leaves out "
        "items with 'Okr'; remove it from one side"
    )


def test_same_values_included_and_excluded(tmp_path: Path) -> None:
    """Excluding every included value of a key can never match."""
    rules = '[[tactic.rule]]\ncontainer = "ALPHA"\nexclude = { container = "alpha" }\n'
    assert one(tmp_path, rules) == FIRST.format(RULE_LINE + 1) + (
        "can never match: every value of 'container' ('ALPHA') is also in "
        "'exclude.container'; remove it from one side"
    )


def test_duplicate_rule_ids(tmp_path: Path) -> None:
    """Two rules with one id are reported with both places."""
    rules = '[[tactic.rule]]\nid = "x"\nkeys = "A-1"\n[[tactic.rule]]\nid = "x"\nkeys = "A-2"\n'
    assert one(tmp_path, rules) == (
        f"DIR/okrs.toml:{RULE_LINE + 3}: rule id 'x' (tactic 'checkout') is already used by "
        f"the rule at DIR/okrs.toml:{RULE_LINE} (tactic 'checkout'); "
        "rule ids must be unique: rename one"
    )


def test_bad_id_and_wrong_value_types(tmp_path: Path) -> None:
    """Ids must be slugs; values must be strings in quotes, with an example."""
    rules = '[[tactic.rule]]\nid = "Web Bugs"\ncontainer = 12\ncustom = { project = 3 }\n'
    found = [p.replace(str(tmp_path), "DIR") for p in problems(tmp_path, rules)]
    head = "DIR/okrs.toml:{}: rule 'Web Bugs' of tactic 'checkout': "
    assert found == [
        head.format(RULE_LINE + 1) + "id 'Web Bugs' is not a slug: use lower-case letters, "
        "digits, '-', '_' or '.' (in quotes), e.g. id = \"checkout-bugs\"",
        head.format(RULE_LINE + 2) + "'container' must be a string or a list of strings in "
        'quotes, e.g. container = "ALPHA" or container = ["acme/web", "acme/api"]',
        head.format(RULE_LINE + 3) + "'custom.project' must be a string or a list of strings "
        'in quotes, e.g. custom = { project = "value" }',
    ]


def test_exclude_must_be_a_table(tmp_path: Path) -> None:
    """A non-table exclude shows how to write one."""
    msg = one(tmp_path, '[[tactic.rule]]\nkeys = "A-1"\nexclude = "bug"\n')
    assert msg == FIRST.format(RULE_LINE + 2) + (
        "'exclude' must be a table of conditions, e.g. exclude = { labels_any = [\"wontfix\"] }"
    )


def test_compile_rules_raises_with_every_problem(tmp_path: Path) -> None:
    """compile_rules raises one MappingError carrying every problem."""
    with pytest.raises(MappingError) as exc:
        load(tmp_path, '[[tactic.rule]]\nkeys = []\n[[tactic.rule]]\ntitle = "("\n')
    assert len(exc.value.problems) == 2


# -- the store: remap and the sync linker (SQLite and PostgreSQL) ---------------------------


def store_links(store: Store) -> list[tuple[str, str, str]]:
    q = sa.select(ITEM_LINK.c.external_id, ITEM_LINK.c.tactic_id, ITEM_LINK.c.rule_id)
    with store.engine.connect() as conn:
        return sorted((r[0], r[1], r[2]) for r in conn.execute(q))


EPIC_RULES = '[[tactic.rule]]\nepic = "ALPHA-1"\n[[tactic.rule]]\nkeys = "OLD-9"\n'


def test_linker_resolves_ancestors_and_moves_through_the_store(
    store: Store, tmp_path: Path
) -> None:
    """A page's sub-task finds its epic through stored parents; a moved item keeps its keys."""
    store.commit_page("jira", Page([item("ALPHA-1"), item("ALPHA-2", parent_key="ALPHA-1")], {}))
    store.commit_page("jira", Page([item("OLD-9", external_id="77")], {}))
    matcher = Matcher(load(tmp_path, EPIC_RULES))
    linker = page_linker(store, lambda: matcher)
    page = [item("ALPHA-3", parent_key="ALPHA-2"), item("NEW-1", external_id="77")]
    assert linker(page) == {
        "ALPHA-3": [("checkout", "checkout#1")],
        "77": [("checkout", "checkout#2")],
    }
    assert linker([]) == {}


def test_link_page_is_pure_over_the_page_and_its_lineage(tmp_path: Path) -> None:
    """link_page needs no store: stored keys and ancestors come in a Lineage, and the store's
    lineage of a page is exactly what the page's links need."""
    m = Matcher(load(tmp_path, EPIC_RULES))
    lineage = Lineage(
        stored={("jira", "77"): KeyNode("OLD-9", None)},
        ancestors=[("jira", KeyNode("ALPHA-2", "ALPHA-1")), ("jira", KeyNode("ALPHA-1", None))],
    )
    page = [item("ALPHA-3", parent_key="ALPHA-2"), item("NEW-1", external_id="77")]
    assert link_page(page, lineage, m) == {
        "ALPHA-3": [("checkout", "checkout#1")],
        "77": [("checkout", "checkout#2")],
    }
    assert link_page(page, Lineage(), m) == {"ALPHA-3": [], "77": []}


def test_store_lineage_reads_stored_keys_and_ancestors_level_by_level(store: Store) -> None:
    """Store.lineage returns the page items' stored keys and every stored ancestor (nearest
    first), and a parent key nothing stores as a root."""
    store.commit_page("jira", Page([item("ALPHA-1"), item("ALPHA-2", parent_key="ALPHA-1")], {}))
    store.commit_page("jira", Page([item("OLD-9", external_id="77")], {}))
    page = [
        item("ALPHA-3", parent_key="ALPHA-2"),
        item("NEW-1", external_id="77"),
        item("B-1", parent_key="NOWHERE-1"),
    ]
    got = store.lineage(page)
    assert got.stored == {("jira", "77"): KeyNode("OLD-9", None)}
    assert got.ancestors == [
        ("jira", KeyNode("ALPHA-2", "ALPHA-1")),
        ("jira", KeyNode("NOWHERE-1", None)),
        ("jira", KeyNode("ALPHA-1", None)),
    ]


def test_remap_writes_only_what_changed(store: Store, tmp_path: Path) -> None:
    """remap adds and removes exactly the changed links and reports the counts."""
    items = [item("ALPHA-1"), item("ALPHA-2", parent_key="ALPHA-1"), item("OLD-9")]
    store.commit_page("jira", Page(items, {}), {"ALPHA-1": [("gone", "gone#1")]})
    report = remap(store, Matcher(load(tmp_path, EPIC_RULES)))
    assert (report.items, report.links, report.added, report.removed) == (3, 2, 2, 1)
    assert report.per_tactic == {"checkout": 2}
    assert store_links(store) == [
        ("ALPHA-2", "checkout", "checkout#1"),
        ("OLD-9", "checkout", "checkout#2"),
    ]
    again = remap(store, Matcher(load(tmp_path, EPIC_RULES)))
    assert (again.added, again.removed) == (0, 0)
