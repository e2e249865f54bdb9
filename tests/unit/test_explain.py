"""`okrsync explain` as pure functions: every rule condition by condition, the closest rules
when none matches, the figures behind a tactic's status; and `mappings check`'s warnings
for condition values no stored item carries."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from okrsync import signals
from okrsync.config import SignalsConfig
from okrsync.explain import describe, explain_item, item_lines, tactic_lines
from okrsync.linking import Ancestry
from okrsync.mapping import Matcher, Rule, compile_rules
from okrsync.models import StoredItem
from okrsync.okrfile import load_tree
from okrsync.preview import analyse, unknown_values
from okrsync.signal_types import ItemCounts, Period
from tests.helpers import TREE, write

Q4 = Period(date(2026, 10, 1), date(2026, 12, 31))
CFG = SignalsConfig()
TITLES = {"checkout": "Checkout revamp"}


def stored(key: str, **kw: Any) -> StoredItem:
    """A stored Jira issue in project ALPHA with sensible defaults."""
    base = StoredItem(
        "jira", key, key, "issue", "Bug", "Fix checkout", "ALPHA", None, (), None, None, None,
        {}, (),
    )  # fmt: skip
    return replace(base, **kw)


def rules_of(tmp_path: Path, rules: str) -> list[Rule]:
    """Rules written under the tactic `checkout` of the shared test tree."""
    path = write(tmp_path / "okrs.toml", TREE + rules)
    return compile_rules(load_tree([path]).rules())


EVERY_KIND = """
[[tactic.rule]]
id = "by-container"
container = "ALPHA"
epic = "ALPHA-1"
[[tactic.rule]]
id = "by-labels"
labels_all = ["okr", "web"]
exclude = { labels_any = ["wontfix"] }
[[tactic.rule]]
id = "by-people"
assignee = ["ada@example.com", "grace"]
type = "bug"
[[tactic.rule]]
id = "by-fields"
custom = { team = "Growth" }
milestone = "v2"
section = "Doing"
[[tactic.rule]]
id = "by-title"
title = '(?i)checkout'
exclude = { keys = ["ALPHA-99"] }
[[tactic.rule]]
id = "by-parent"
parent = "ALPHA-7"
connector = "jira"
"""


@pytest.mark.parametrize(
    "item",
    [
        stored("ALPHA-12", parent_key="ALPHA-7", labels=("okr", "web")),
        stored("ALPHA-13", parent_key="ALPHA-7", labels=("OKR", "web", "wontfix")),
        stored("ALPHA-14", labels=("okr",), assignee="Ada", assignee_ids=("ada@example.com",)),
        stored("ALPHA-15", custom={"Team": "growth"}, milestone="V2", section="doing"),
        stored("ALPHA-99", title="checkout again", container="BETA"),
        stored("ALPHA-16", title="Login", container=None, item_type=None, parent_key="X-1"),
        stored("NEW-3", previous_keys=("ALPHA-99",), container_name="Alpha project"),
    ],
)
def test_explain_agrees_with_match_for_every_condition_kind(
    tmp_path: Path, item: StoredItem
) -> None:
    """The rules `explain` finds matching are exactly the links `match` returns."""
    matcher = Matcher(rules_of(tmp_path, EVERY_KIND))
    ancestry = Ancestry()
    for node in (stored("ALPHA-7", parent_key="ALPHA-1"), stored("ALPHA-1", kind="epic"), item):
        ancestry.add("jira", node)
    chain = ancestry.chain("jira", item.parent_key)
    earlier = ancestry.earlier_keys("jira", item.parent_key)
    explained = [c.rule.link for c in matcher.explain(item, chain, earlier) if c.matches]
    assert explained == matcher.match(item, chain, earlier)
    assert len(matcher.explain(item, chain, earlier)) == 6


def chain_items() -> tuple[StoredItem, list[StoredItem]]:
    """ALPHA-12 under the story ALPHA-7 under the epic ALPHA-1 (nearest ancestor first)."""
    epic = stored("ALPHA-1", kind="epic", title="Checkout epic")
    story = stored("ALPHA-7", parent_key="ALPHA-1", title="Pay story")
    return stored("ALPHA-12", parent_key="ALPHA-7", labels=("okr",)), [story, epic]


def test_each_condition_that_held_names_the_item_value(tmp_path: Path) -> None:
    """A match lists every condition with the value behind it, the epic with its path."""
    rules = '[[tactic.rule]]\ncontainer = "ALPHA"\nepic = "ALPHA-1"\n'
    item, ancestors = chain_items()
    ex = explain_item(item, ancestors, Matcher(rules_of(tmp_path, rules)))
    assert item_lines(ex, TITLES) == [
        "ALPHA-12  Fix checkout",
        "  jira issue, Bug; in ALPHA; ancestors ALPHA-7 > ALPHA-1",
        "matches 1 rule(s) of 1 tactic(s):",
        f"  tactic checkout (Checkout revamp), rule checkout#1 at {ex.checks[0].rule.source}",
        '    container = "ALPHA" (item container ALPHA)',
        '    epic = "ALPHA-1" (ancestor ALPHA-1 via ALPHA-7)',
    ]


def test_an_epic_known_by_an_earlier_key_is_named_with_both(tmp_path: Path) -> None:
    """An epic moved from OLD-1 to ALPHA-1 still matches `epic = "OLD-1"`, and says so."""
    item, (story, epic) = chain_items()
    moved = replace(epic, previous_keys=("OLD-1",))
    ex = explain_item(
        item, [story, moved], Matcher(rules_of(tmp_path, '[[tactic.rule]]\nepic = "OLD-1"\n'))
    )
    assert [describe(c, ex.path) for c in ex.matched[0].conditions] == [
        'epic = "OLD-1" (ancestor ALPHA-1 via ALPHA-7, known as OLD-1 before a move)'
    ]


def test_no_match_shows_the_closest_rules_and_what_failed(tmp_path: Path) -> None:
    """With no match, rules meeting some condition are listed, fewest failures first, each
    failed condition with the item's value; rules meeting none are left out."""
    rules = (
        '[[tactic.rule]]\nid = "two-off"\ncontainer = "ALPHA"\nmilestone = "v9"\n'
        'labels_all = ["okr", "web"]\n'
        '[[tactic.rule]]\nid = "one-off"\ncontainer = "ALPHA"\nlabels_any = "growth"\n'
        '[[tactic.rule]]\nid = "far"\ncontainer = "BETA"\n'
    )
    item, ancestors = chain_items()
    lines = item_lines(explain_item(item, ancestors, Matcher(rules_of(tmp_path, rules))), TITLES)
    said = "\n".join(lines)
    assert "matches none of the 3 rule(s) of 1 tactic(s)." in said
    assert said.index("rule one-off") < said.index("rule two-off")
    assert "rule far" not in said
    assert '    failed: labels_any = "growth": not met (item labels okr)' in lines
    assert '    held:   container = "ALPHA" (item container ALPHA)' in lines
    assert '    failed: milestone = "v9": not met (item has no milestone)' in lines
    assert '    failed: labels_all = ["okr", "web"]: not met (item lacks web)' in lines


def test_an_exclude_that_applies_is_named_as_the_reason(tmp_path: Path) -> None:
    """An item left out by `exclude` shows that condition as the one that failed."""
    rules = '[[tactic.rule]]\ncontainer = "ALPHA"\nexclude = { labels_any = ["okr", "x"] }\n'
    item, ancestors = chain_items()
    lines = item_lines(explain_item(item, ancestors, Matcher(rules_of(tmp_path, rules))), TITLES)
    assert (
        '    failed: exclude.labels_any = ["okr", "x"]: leaves the item out (item labels okr)'
        in (lines)
    )


def test_a_deleted_item_or_a_container_is_flagged() -> None:
    """Explaining a deleted item or an epic says it counts in no signal."""
    empty = Matcher([])
    gone = item_lines(explain_item(stored("A-1", deleted=True), [], empty), {})
    epic = item_lines(explain_item(stored("A-2", kind="epic"), [], empty), {})
    assert "  note: deleted in the tracker, so it counts in no signal" in gone
    assert "  note: epic items are containers: linked, but never counted" in epic


# -- a tactic's status ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "status", "clause"),
    [
        (ItemCounts(), "no_data", "no items"),
        (ItemCounts(total=3, done=3, done_in_window=1), "done", "nothing remaining"),
        (ItemCounts(total=3, done=1), "off_track", "nothing done in the window"),
        (ItemCounts(total=10, done=8, done_in_window=8), "on_track", "on or before"),
        (ItemCounts(total=20, done=8, done_in_window=4), "off_track", "by more than"),
    ],
)
def test_status_figures_are_the_ones_tactic_signals_uses(
    counts: ItemCounts, status: str, clause: str
) -> None:
    """Status, forecast and throughput of status_figures equal the tactic's signals."""
    as_of = date(2026, 12, 7)
    fig = signals.status_figures(counts, Q4, as_of, CFG)
    ts = signals.tactic_signals(counts, Q4, as_of, CFG)
    assert (fig.status, fig.forecast, fig.throughput_per_week) == (
        ts.execution_status, ts.forecast_finish, ts.throughput_per_week,
    )  # fmt: skip
    assert fig.status == status
    assert clause in fig.clause


def test_an_at_risk_forecast_shows_the_allowance() -> None:
    """A forecast 7 days past the end of a 91-day period is at_risk under 0.15 × 91 days."""
    counts = ItemCounts(total=4, done=2, done_in_window=2)  # 2 × 28 ÷ 2 = 28 days
    fig = signals.status_figures(counts, Q4, date(2026, 12, 10), CFG)
    lines = tactic_lines("checkout", "Checkout revamp", fig)
    assert fig.status == "at_risk"
    assert (
        "  against the period end 2026-12-31: 7 day(s) after it; at_risk allows up to "
        "0.15 × 91 = 13.65 day(s) after it"
    ) in lines


def test_tactic_lines_show_the_figures_behind_the_status() -> None:
    """Remaining, done in window, throughput, the forecast sum and the deciding threshold."""
    counts = ItemCounts(total=20, done=8, in_progress=5, todo=7, dropped=1, done_in_window=4)
    fig = signals.status_figures(counts, Q4, date(2026, 12, 7), CFG)
    assert tactic_lines("checkout", "Checkout revamp", fig) == [
        "tactic checkout (Checkout revamp) as of 2026-12-07: execution status off_track",
        "  period 2026-10-01 .. 2026-12-31 (L = 91 days)",
        "  items counted: 20 (not dropped): 8 done, 12 remaining (5 in progress, 7 to do); "
        "1 dropped",
        "  done in window: 4 item(s) closed in the 28 days ending 2026-12-07",
        "  throughput: 4 × 7 ÷ 28 = 1.00 items/week",
        "  forecast: as-of + remaining × window ÷ done in window = 2026-12-07 + 12 × 28 ÷ 4 "
        "days = 2026-12-07 + 84 days = 2027-03-01",
        "  against the period end 2026-12-31: 60 day(s) after it; at_risk allows up to "
        "0.15 × 91 = 13.65 day(s) after it",
        "  decided by: forecast after the period end by more than at_risk_share × L → off_track",
        "  thresholds: [signals] throughput_window_days = 28, at_risk_share = 0.15 "
        "(docs/signals.md)",
    ]


# -- condition values no stored item carries ----------------------------------------------------

VALUES: dict[str, list[tuple[str, int, tuple[str, ...]]]] = {
    "labels": [("growth", 41, ()), ("okr", 3, ()), ("web", 1, ())],
    "container": [("ALPHA", 44, ("Alpha project",))],
    "custom.team": [("Growth", 40, ())],
}


def test_a_value_no_item_carries_gets_a_did_you_mean_at_its_line(tmp_path: Path) -> None:
    """`labels_any = "grwoth"` warns at its own line, suggesting the stored "growth"."""
    rules = '[[tactic.rule]]\ncontainer = "Alpha project"\nlabels_any = ["okr", "grwoth"]\n'
    path = write(tmp_path / "okrs.toml", TREE + rules)
    raws = load_tree([path]).rules()
    got = unknown_values(compile_rules(raws), VALUES, raws)
    line = TREE.strip().count("\n") + 4
    assert got == [
        f"{path}:{line}: rule 'checkout#1' of tactic 'checkout': 'labels_any' value 'grwoth' "
        "is on no stored item; did you mean 'growth' (41 item(s))? "
        "(`okrsync mappings values --field labels` lists them)"
    ]


def test_unknown_custom_fields_and_excludes_are_checked_too(tmp_path: Path) -> None:
    """A custom field no item has suggests the stored one; an exclude value is checked."""
    rules = (
        '[[tactic.rule]]\ncontainer = "ALPHA"\ncustom = { tema = "Growth" }\n'
        'exclude = { milestone = "v2" }\n'
    )
    got = unknown_values(rules_of(tmp_path, rules), VALUES)
    assert len(got) == 2
    assert (
        "no stored item has the custom field in 'custom.tema'; did you mean 'custom.team'?"
        in (got[0])
    )
    assert "'exclude.milestone' value 'v2' is on no stored item; no stored item has any" in got[1]


def test_preview_warnings_lead_with_unknown_values(tmp_path: Path) -> None:
    """analyse() with value counts puts the unknown-value warnings among its warnings."""
    rules = '[[tactic.rule]]\nlabels_any = "okrr"\n'
    report = analyse(
        [stored("A-1", labels=("okr",))], Matcher(rules_of(tmp_path, rules)), values=VALUES
    )
    warnings = report.warnings()
    assert "did you mean 'okr' (3 item(s))?" in warnings[0]
    assert "matches none of the 1 stored items" in warnings[1]
