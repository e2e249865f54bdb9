"""Each signal of PRODUCT.md on hand-built cases, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from okrsync import signals
from okrsync.config import SignalsConfig
from okrsync.models import ItemKind
from okrsync.pipeline import recompute, signals_of
from okrsync.signal_types import (
    ItemCounts,
    KeyResultInfo,
    ObjectiveInfo,
    Period,
    Structure,
    TacticInfo,
)
from okrsync.store import Store
from tests.signal_fixtures import AS_OF, SIGNAL_TREE, at, days_ago, item, link, load_tree_into

Q4 = Period(date(2026, 10, 1), date(2026, 12, 31))
CFG = SignalsConfig()


@pytest.fixture
def tree(store: Store, mapping_dir: Path) -> Store:
    """The store with the signal test tree loaded."""
    load_tree_into(store, mapping_dir)
    return store


def tactic(store: Store, tid: str = "checkout", as_of: date = AS_OF) -> signals.TacticSignals:
    return signals_of(store, CFG, as_of).tactics[tid]


# -- pure functions ----------------------------------------------------------------------------


def test_forecast_floors_remaining_times_window_over_completed() -> None:
    """forecast = as-of + floor(remaining × 28 ÷ completed-in-window) days."""
    counts = ItemCounts(total=5, done=2, done_in_window=2)
    assert signals.forecast_finish(counts, AS_OF, 28) == AS_OF + timedelta(days=42)
    counts = ItemCounts(total=4, done=1, done_in_window=3)
    assert signals.forecast_finish(counts, AS_OF, 28) == AS_OF + timedelta(days=28)


def test_status_precedence() -> None:
    """no_data → done → off_track (nothing completed) → on_track → at_risk → off_track."""
    st = signals.execution_status
    assert st(ItemCounts(), None, Q4, 0.15) == "no_data"
    assert st(ItemCounts(total=2, done=2), None, Q4, 0.15) == "done"
    assert st(ItemCounts(total=2, done=1), None, Q4, 0.15) == "off_track"
    assert st(ItemCounts(total=2, done=1, done_in_window=1), Q4.end, Q4, 0.15) == "on_track"
    late = Q4.end + timedelta(days=13)  # 13 ≤ 0.15 × 91 = 13.65
    assert st(ItemCounts(total=2, done=1, done_in_window=1), late, Q4, 0.15) == "at_risk"
    later = Q4.end + timedelta(days=14)
    assert st(ItemCounts(total=2, done=1, done_in_window=1), later, Q4, 0.15) == "off_track"


def test_expected_progress_is_the_clamped_elapsed_share() -> None:
    """Expected outcome progress = clamp((as-of − start) / L, 0, 1)."""
    assert Q4.length == 91
    assert Q4.expected(AS_OF) == pytest.approx(45 / 91)
    assert Q4.expected(date(2026, 9, 1)) == 0
    assert Q4.expected(date(2027, 2, 1)) == 1


def test_outcome_status_against_expected() -> None:
    """done at 1, on_track at or above expected, at_risk within the margin, else off_track."""
    st = signals.outcome_status
    assert st(None, 0.5, 0.15) == "no_data"
    assert st(1.0, 0.5, 0.15) == "done"
    assert st(0.5, 0.5, 0.15) == "on_track"
    assert st(0.35, 0.5, 0.15) == "at_risk"
    assert st(0.34, 0.5, 0.15) == "off_track"


def test_divergence_flags_and_tolerance() -> None:
    """A gap of 0.3 either way raises its flag; a null side raises none."""
    assert signals.divergence(0.2, 0.5, 0.3) == ("output_without_outcome",)
    assert signals.divergence(0.7, 0.4, 0.3) == ("outcome_without_output",)
    assert signals.divergence(0.5, 0.79, 0.3) == ()
    assert signals.divergence(None, 1.0, 0.3) == ()
    assert signals.divergence(0.0, None, 0.3) == ()


def test_weighted_mean_with_zero_weights() -> None:
    """Weighted by default, a plain mean when all weights are 0, None without values."""
    assert signals.weighted_mean([(1.0, 3), (0.0, 1), (None, 5)]) == 0.75
    assert signals.weighted_mean([(1.0, 0), (0.0, 0)]) == 0.5
    assert signals.weighted_mean([(None, 1)]) is None


# -- tactic signals through SQL -----------------------------------------------------------------


def test_no_items_is_no_data(tree: Store) -> None:
    """A tactic without items has zero counts, null completion and status no_data."""
    s = tactic(tree)
    assert (s.items_total, s.items_done, s.completion, s.forecast_finish) == (0, 0, None, None)
    assert s.execution_status == "no_data"
    assert s.last_activity is None
    kr = signals_of(tree, CFG, AS_OF).key_results["latency"]
    assert kr.execution.completion is None
    assert kr.execution.status == "no_data"


def test_all_dropped_leaves_the_scope(tree: Store) -> None:
    """Dropped items are neither done nor remaining: total 0, completion null, no_data."""
    link(tree, [item(1, "dropped", estimate=3), item(2, "dropped")])
    s = tactic(tree)
    assert (s.items_total, s.items_dropped, s.completion) == (0, 2, None)
    assert (s.estimate_total, s.items_unestimated) == (0.0, 0)
    assert s.execution_status == "no_data"
    assert s.last_activity == days_ago(3)


def test_counts_and_estimates(tree: Store) -> None:
    """Counts per status; estimate 0 counts as estimated; dropped leave the estimate sums."""
    link(
        tree,
        [
            item(1, "done", estimate=5),
            item(2, "done", estimate=0),
            item(3, "in_progress", estimate=2),
            item(4, "todo"),
            item(5, "dropped", estimate=8),
        ],
    )
    s = tactic(tree)
    assert (s.items_total, s.items_done, s.items_in_progress, s.items_todo) == (4, 2, 1, 1)
    assert s.items_dropped == 1
    assert s.completion == 0.5
    assert (s.estimate_total, s.estimate_done, s.items_unestimated) == (7.0, 5.0, 1)


def test_no_estimates_at_all(tree: Store) -> None:
    """Without any estimate the sums are 0 and every item is unestimated."""
    link(tree, [item(1, "done"), item(2, "todo")])
    s = tactic(tree)
    assert (s.estimate_total, s.estimate_done, s.items_unestimated) == (0.0, 0.0, 2)


def test_fractional_estimates_sum_to_the_same_value_in_any_order(tree: Store) -> None:
    """0.1 + 0.2 is 0.30000000000000004 in floats: sums are rounded, so the order SQL adds
    them in (full vs incremental, SQLite vs PostgreSQL) never changes a stored value."""
    link(tree, [item(1, "done", estimate=0.1), item(2, "todo", estimate=0.2)])
    full = tactic(tree)
    assert (full.estimate_total, full.estimate_done) == (0.3, 0.1)
    part = signals_of(tree, CFG, AS_OF, tactics={"checkout"})
    assert part.tactics["checkout"].estimate_total == 0.3


def test_throughput_window_is_28_days_inclusive(tree: Store) -> None:
    """Done on the as-of date and 27 days before count; 28 days before does not."""
    link(
        tree,
        [
            item(1, "done", updated=at(AS_OF, 23)),
            item(2, "done", updated=days_ago(27, 0)),
            item(3, "done", updated=days_ago(28, 23)),
            item(4, "done", updated=at(AS_OF + timedelta(days=1), 0)),
            item(5, "todo"),
        ],
    )
    s = tactic(tree)
    assert s.throughput_per_week == 0.5
    assert s.forecast_finish == AS_OF + timedelta(days=14)  # floor(1 × 28 / 2)
    assert s.execution_status == "on_track"


def test_zero_throughput_with_work_left_is_off_track(tree: Store) -> None:
    """Nothing completed in the window and work remaining: no forecast, off_track."""
    link(tree, [item(1, "done", updated=days_ago(40)), item(2, "todo")])
    s = tactic(tree)
    assert s.throughput_per_week == 0
    assert s.forecast_finish is None
    assert s.execution_status == "off_track"


def test_everything_done_is_done(tree: Store) -> None:
    """Nothing remaining: status done and no forecast, whatever the throughput."""
    link(tree, [item(1, "done", updated=days_ago(40)), item(2, "dropped")])
    s = tactic(tree)
    assert (s.completion, s.forecast_finish, s.execution_status) == (1.0, None, "done")


def test_forecast_past_the_end_is_at_risk_then_off_track(tree: Store) -> None:
    """A forecast within 15% of L after the end is at_risk; beyond it off_track."""
    # 1 completed in window; 2 remaining → as-of + 56 = 2027-01-10: 10 days late → at_risk.
    link(tree, [item(1, "done"), item(2, "todo"), item(3, "todo")])
    s = tactic(tree)
    assert s.forecast_finish == date(2027, 1, 10)
    assert s.execution_status == "at_risk"
    link(tree, [item(4, "todo")])  # 3 remaining → 2027-02-07
    assert tactic(tree).execution_status == "off_track"


def test_period_over(tree: Store) -> None:
    """After the period ends, remaining work forecasts past the end and expected is 1."""
    link(tree, [item(1, "done", updated=at(date(2027, 1, 5))), item(2, "todo")])
    result = signals_of(tree, CFG, date(2027, 1, 10))
    s = result.tactics["checkout"]
    assert s.forecast_finish == date(2027, 2, 7)
    assert s.execution_status == "off_track"
    assert result.key_results["conv"].outcome.expected == 1.0


def test_stale_after_14_days_without_update(tree: Store) -> None:
    """In progress and as-of − last update ≥ 14 days is stale; 13 days is not."""
    link(
        tree,
        [
            item(1, "in_progress", updated=days_ago(14, 23)),
            item(2, "in_progress", updated=days_ago(13, 0)),
            item(3, "todo", updated=days_ago(30)),
        ],
    )
    assert tactic(tree).stale == 1


def test_overdue_means_open_and_due_before_as_of(tree: Store) -> None:
    """Open items due before the as-of date are overdue; due today or done are not."""
    yesterday = AS_OF - timedelta(days=1)
    link(
        tree,
        [
            item(1, "todo", due=yesterday),
            item(2, "in_progress", due=yesterday),
            item(3, "todo", due=AS_OF),
            item(4, "done", due=yesterday),
            item(5, "dropped", due=yesterday),
            item(6, "todo"),
        ],
    )
    assert tactic(tree).overdue == 2


def test_scope_added_counts_items_created_since_period_start(tree: Store) -> None:
    """Created on or after the period start and not dropped is added scope."""
    link(
        tree,
        [
            item(1, "todo", created=at(date(2026, 10, 1), 0)),
            item(2, "todo", created=at(date(2026, 9, 30), 23)),
            item(3, "dropped", created=at(date(2026, 10, 5))),
            item(4, "done", created=at(date(2026, 11, 1))),
        ],
    )
    assert tactic(tree).scope_added == 2


def test_history_before_period_start_leaves_every_count(tree: Store) -> None:
    """Done or dropped before the period start is history; open old items still count."""
    before = at(date(2026, 9, 30), 23)
    link(
        tree,
        [
            item(1, "done", created=at(date(2026, 8, 1)), updated=before),
            item(2, "dropped", created=at(date(2026, 8, 1)), updated=before),
            item(3, "todo", created=at(date(2026, 8, 1)), updated=before),
            item(4, "done", created=at(date(2026, 8, 1)), updated=at(date(2026, 10, 1), 0)),
        ],
    )
    s = tactic(tree)
    assert (s.items_total, s.items_done, s.items_todo, s.items_dropped) == (2, 1, 1, 0)
    assert s.last_activity == at(date(2026, 10, 1), 0)


def test_containers_and_deleted_items_never_count(tree: Store) -> None:
    """Epics, projects, milestones, sections and deleted items are left out."""
    containers = [
        item(f"c{k}", "todo", kind=kind)
        for k, kind in enumerate(
            (ItemKind.EPIC, ItemKind.PROJECT, ItemKind.MILESTONE, ItemKind.SECTION)
        )
    ]
    link(tree, [*containers, item(1, "todo"), item(2, "done")])
    from okrsync.models import Page

    tree.commit_page("gh", Page([], {}, deleted=["2"]))
    s = tactic(tree)
    assert (s.items_total, s.items_todo, s.items_done) == (1, 1, 0)


def test_an_item_linked_by_two_rules_counts_once(tree: Store) -> None:
    """Several rules attaching one item to one tactic count it once; other tactics count it too."""
    link(tree, [item(1, "done", estimate=2), item(2, "todo")], ["checkout", "pricing"], ["a", "b"])
    result = signals_of(tree, CFG, AS_OF)
    for tid in ("checkout", "pricing"):
        s = result.tactics[tid]
        assert (s.items_total, s.items_done, s.estimate_total) == (2, 1, 2.0)


# -- key results and objectives ------------------------------------------------------------------


def test_decrease_key_result_outcome(tree: Store) -> None:
    """A decrease key result from 40 to 10 at 25 is 50%, on track 45 days into 91."""
    tree.add_checkin("latency", 25, at=days_ago(1))
    o = signals_of(tree, CFG, AS_OF).key_results["latency"].outcome
    assert (o.current, o.progress, o.direction) == (25, 0.5, "decrease")
    assert o.expected == pytest.approx(45 / 91)
    assert o.status == "on_track"


def test_outcome_uses_the_latest_check_in_up_to_the_as_of_date(tree: Store) -> None:
    """A check-in recorded after the as-of date is not seen; none at all is no_data."""
    tree.add_checkin("conv", 9, at=days_ago(5))
    tree.add_checkin("conv", 12, at=at(AS_OF + timedelta(days=1)))
    result = signals_of(tree, CFG, AS_OF)
    assert result.key_results["conv"].outcome.progress == 0.25
    assert result.key_results["latency"].outcome.status == "no_data"
    tomorrow = signals_of(tree, CFG, AS_OF + timedelta(days=1))
    assert tomorrow.key_results["conv"].outcome.status == "done"


def test_key_result_execution_is_weighted_with_the_worst_status(tree: Store) -> None:
    """Completion averaged by tactic weight over tactics with data; the worst status wins."""
    link(tree, [item(1, "done"), item(2, "done")], "checkout")
    link(tree, [item(3, "done"), item(4, "todo", updated=days_ago(1))], "pricing")
    kr = signals_of(tree, CFG, AS_OF).key_results["conv"]
    assert kr.execution.completion == pytest.approx((1.0 * 1 + 0.5 * 3) / 4)
    assert kr.execution.status == "on_track"
    assert kr.execution.tactics_with_data == 2


def test_flags_and_objective_roll_up(tree: Store) -> None:
    """Work done without the metric moving flags output_without_outcome, up to the objective."""
    link(tree, [item(1, "done"), item(2, "done")], "checkout")
    link(tree, [item(3, "done")], "pricing")
    tree.add_checkin("conv", 8.4, at=days_ago(1))  # 10%
    tree.add_checkin("latency", 10, at=days_ago(1))  # 100%, no work linked
    result = signals_of(tree, CFG, AS_OF)
    assert result.key_results["conv"].flags == ("output_without_outcome",)
    assert result.key_results["latency"].flags == ()
    obj = result.objectives["grow"]
    assert obj.outcome.progress == pytest.approx(0.55)
    assert obj.execution.completion == 1.0
    assert obj.flags == ("output_without_outcome",)


def test_outcome_without_output(tree: Store) -> None:
    """The metric reached while planned work has not started flags outcome_without_output."""
    link(tree, [item(1, "todo"), item(2, "todo")], "cache")
    tree.add_checkin("latency", 10, at=days_ago(1))
    assert signals_of(tree, CFG, AS_OF).key_results["latency"].flags == ("outcome_without_output",)


# -- incremental path and snapshots --------------------------------------------------------------


def test_tactics_for_items(tree: Store) -> None:
    """The tactics linked to given items, for the incremental path after a sync."""
    link(tree, [item(1)], ["checkout", "cache"])
    link(tree, [item(2)], "pricing")
    assert tree.linked_tactics("gh", ["1"]) == {"checkout", "cache"}
    assert tree.linked_tactics("gh", ["9"]) == set()


def test_incremental_compute_matches_the_full_one(tree: Store) -> None:
    """Restricting to changed tactics gives the same values for everything it covers."""
    link(tree, [item(1, "done"), item(2, "todo")], "checkout")
    link(tree, [item(3, "in_progress")], "cache")
    full = signals_of(tree, CFG, AS_OF)
    part = signals_of(tree, CFG, AS_OF, tactics={"checkout"})
    assert set(part.tactics) == {"checkout", "pricing", "cache"}
    assert part.tactics == full.tactics
    assert part.key_results == full.key_results
    assert part.objectives == full.objectives


def test_snapshot_only_when_values_change(tree: Store) -> None:
    """A second recompute writes nothing; a changed item writes its tactic and roll-ups."""
    link(tree, [item(1, "todo")], "checkout")
    first = recompute(tree, CFG, AS_OF)
    assert first.snapshots_written == 3 + 2 + 1
    assert recompute(tree, CFG, AS_OF).snapshots_written == 0
    link(tree, [item(1, "done", updated=days_ago(1))], "checkout")
    changed = tree.linked_tactics("gh", ["1"])
    rep = recompute(tree, CFG, AS_OF, tactics=changed)
    assert rep.snapshots_written == 3  # checkout, conv, grow
    moves = tree.snapshot_history("checkout")
    assert [s.values["items_done"] for s in moves] == [0, 1]
    assert recompute(tree, CFG, AS_OF, tactics=set()).tactics == 0


TWO_PERIODS = (
    SIGNAL_TREE
    + """
[[objective]]
id = "ship"
title = "Ship the November release"
period = "2026-11"

[[key_result]]
id = "release"
objective = "ship"
title = "Release candidates"
start = 0
target = 3

[[tactic]]
id = "rc"
key_result = "release"
title = "Cut release candidates"
"""
)


def test_objectives_with_different_periods(store: Store, mapping_dir: Path) -> None:
    """One aggregate per period start; restricted to a tactic, the same values as in full."""
    load_tree_into(store, mapping_dir, TWO_PERIODS)
    created = at(date(2026, 10, 20))  # after the Q4 start, before the November one
    link(store, [item(1, "done", created=created, updated=days_ago(2))], "checkout")
    link(store, [item(2, "todo", created=created), item(3, "done", created=created)], "rc")
    full = signals_of(store, CFG, AS_OF)
    assert full.tactics["checkout"].scope_added == 1
    assert (full.tactics["rc"].items_total, full.tactics["rc"].scope_added) == (2, 0)
    part = signals_of(store, CFG, AS_OF, tactics={"rc"})
    assert set(part.tactics) == {"rc"}
    assert part.tactics["rc"] == full.tactics["rc"]
    assert part.objectives["ship"] == full.objectives["ship"]


def test_snapshot_values_keep_their_shape(tree: Store) -> None:
    """Snapshot values are the signals' fields in order, dates as ISO 8601 (digests stable)."""
    link(tree, [item(1, "done", updated=days_ago(1)), item(2, "todo", due=AS_OF)], "checkout")
    tree.add_checkin("conv", 9, at=days_ago(2))
    s = signals_of(tree, CFG, AS_OF)

    def iso(v: object) -> object:
        return v.isoformat() if isinstance(v, date) else v  # datetime is a date

    for ts in s.tactics.values():
        assert list(ts.as_json()) == list(signals.TACTIC_SIGNALS)
        assert ts.as_json() == {k: iso(getattr(ts, k)) for k in signals.TACTIC_SIGNALS}
    for ks in s.key_results.values():
        assert ks.as_json() == {
            "outcome": {k: iso(v) for k, v in asdict(ks.outcome).items()},
            "execution": asdict(ks.execution),
            "flags": list(ks.flags),
        }
    assert s.key_results["conv"].as_json()["outcome"]["checked_in_at"] == days_ago(2).isoformat()
    for os_ in s.objectives.values():
        assert os_.as_json() == {
            "outcome": asdict(os_.outcome),
            "execution": asdict(os_.execution),
            "flags": list(os_.flags),
        }
    values = dict(s.tactics["checkout"].as_json())
    assert (
        signals.digest(values)
        == hashlib.sha256(
            json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
    )


def test_incremental_recompute_leaves_the_connection_as_it_was(tree: Store) -> None:
    """The memory map of the incremental read (SQLite) is undone when it returns."""
    link(tree, [item(1, "todo")], "checkout")
    recompute(tree, CFG, AS_OF)
    link(tree, [item(1, "done", updated=days_ago(1))], "checkout")
    rep = recompute(tree, CFG, AS_OF, tactics={"checkout"})
    assert rep.snapshots_written == 3
    if tree.dialect == "sqlite":
        with tree.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar_one() == 0


def test_compute_runs_on_plain_values_without_a_store() -> None:
    """signals.compute turns a tree, counts per tactic and check-ins into signals: no store."""
    structure = Structure(
        objectives={
            "o": ObjectiveInfo("o", "O", None, None, date(2026, 1, 1), date(2026, 4, 1), None, 1.0)
        },
        key_results={"k": KeyResultInfo("k", "o", "K", None, 0.0, 10.0, "increase", 1.0)},
        tactics={"t": TacticInfo("t", "k", "T", 1.0)},
    )
    counts = {"t": ItemCounts(total=4, done=3, done_in_window=3)}
    checkins = {"k": (5.0, at(date(2026, 2, 1)))}
    result = signals.compute(structure, counts, checkins, date(2026, 2, 15), CFG)
    assert result.tactics["t"].completion == 0.75
    assert result.key_results["k"].outcome.progress == 0.5
    assert result.key_results["k"].execution.completion == 0.75
    assert result.objectives["o"].outcome.progress == 0.5
    assert [kind for kind, *_ in signals.snapshot_subjects(result)] == [
        "tactic", "key_result", "objective"
    ]  # fmt: skip
