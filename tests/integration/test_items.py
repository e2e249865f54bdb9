"""`okrsync items` and `export --items`: the items behind every count, through the real CLI."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from okrsync.config import SignalsConfig
from okrsync.models import ItemKind, Page, WorkItem
from okrsync.store import ITEM_FILTERS, Store
from tests.helpers import run_cli, write
from tests.signal_fixtures import AS_OF, SIGNAL_TREE, at, days_ago, item, link

CONFIG = """
[store]
url = "sqlite:///data/okrsync.db"

[mappings]
paths = ["okrs"]
"""
ARGS = ("--as-of", AS_OF.isoformat())
# filter flags of `okrsync items` → the export's tactic signal they drill into
FLAG_SIGNAL = {
    (): None,  # every counted item: items_total + items_dropped
    ("--status", "todo"): "items_todo",
    ("--status", "in_progress"): "items_in_progress",
    ("--status", "done"): "items_done",
    ("--status", "dropped"): "items_dropped",
    ("--stale",): "stale",
    ("--overdue",): "overdue",
    ("--scope-added",): "scope_added",
    ("--unestimated",): "items_unestimated",
    ("--in-window",): "throughput_per_week",  # done in the window = throughput × window ÷ 7
}
PERIOD_START = date(2026, 10, 1)
LEGACY = """
[[tactic]]
id = "legacy"
key_result = "conv"
title = "Old plan"
"""


def tracked(n: int, status: str = "todo", *, title: str | None = None, **kw: Any) -> WorkItem:
    """`signal_fixtures.item` with an assignee, a tracker URL and maybe its own title."""
    base = item(n, status, **kw)
    url = f"https://github.com/o/r/issues/{n}"
    return dataclasses.replace(base, url=url, assignee="dana", title=title or base.title)


def fill(store: Store) -> None:
    """Items that every count, and every exclusion of docs/signals.md, has to get right."""
    old = at(PERIOD_START - timedelta(days=30))
    checkout = [
        tracked(1, "done", estimate=2, title="item 1 \x1b[2Jfixed\x07"),  # in window
        tracked(2, "done", created=old, completed=at(date(2026, 10, 5))),  # not in window
        tracked(3, "in_progress", created=old, updated=days_ago(20), due=date(2026, 11, 1)),
        tracked(5, "dropped", completed=days_ago(10), updated=days_ago(10)),
        tracked(6, "done", created=old, completed=at(date(2026, 9, 20))),  # history
        tracked(7, "dropped", created=old, completed=at(date(2026, 9, 15))),  # history
        tracked(8, "todo", kind=ItemKind.EPIC),  # a container never counts
        tracked(9, "todo"),  # deleted below
        tracked(10, "in_progress", updated=days_ago(13)),  # not stale yet (14 days)
        tracked(11, "in_progress", updated=days_ago(14), estimate=0),  # stale at 14 days
        tracked(12, "todo", due=AS_OF),  # due today: not overdue
    ]
    link(store, checkout, "checkout")
    link(store, [tracked(4, "todo", due=AS_OF - timedelta(days=1))], ["checkout", "pricing"],
         ["r2", "r1"])  # fmt: skip
    link(store, [tracked(13, "done", completed=days_ago(1))], "cache")
    unlinked = [
        tracked(20, "todo"),
        tracked(21, "in_progress", updated=days_ago(30)),
        tracked(22, "todo", kind=ItemKind.MILESTONE),
        tracked(23, "todo"),
    ]
    link(store, unlinked, [])
    link(store, [tracked(24, "todo")], "legacy")  # a tactic archived below
    store.commit_page("gh", Page([], {}, deleted=["9", "23"]))


@pytest.fixture(scope="module")
def cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config, the tree loaded, `fill`'s items stored, then tactic `legacy` archived
    (shared: the tests only read)."""
    root = tmp_path_factory.mktemp("items")
    write(root / "okrsync.toml", CONFIG)
    write(root / "okrs" / "main.toml", SIGNAL_TREE + LEGACY)
    assert run_cli("okrs", "sync", cwd=root).code == 0
    store = Store.open(f"sqlite:///{root / 'data' / 'okrsync.db'}")
    fill(store)
    store.close()
    write(root / "okrs" / "main.toml", SIGNAL_TREE)
    assert run_cli("okrs", "sync", cwd=root).code == 0
    return root


def items_json(cwd: Path, *args: str) -> dict[str, Any]:
    r = run_cli("items", *args, "--json", *ARGS, cwd=cwd)
    assert r.code == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def keys(data: dict[str, Any]) -> list[str]:
    return [i["key"] for i in data["items"]]


def export_signals(cwd: Path) -> dict[str, dict[str, Any]]:
    r = run_cli("export", *ARGS, cwd=cwd)
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    return {t["id"]: t for o in data["objectives"] for k in o["key_results"] for t in k["tactics"]}


def expected_count(signals: dict[str, Any], signal: str | None) -> int:
    if signal is None:
        return int(signals["items_total"]) + int(signals["items_dropped"])
    if signal == "throughput_per_week":
        return round(float(signals[signal]) * 28 / 7)
    return int(signals[signal])


def test_every_filter_lists_as_many_items_as_the_export_counts(cwd: Path) -> None:
    """For each filter, `items --tactic` lists exactly as many items as export's count."""
    tactics = export_signals(cwd)
    for tactic in ("checkout", "pricing"):
        signals = tactics[tactic]["signals"]
        for flags, signal in FLAG_SIGNAL.items():
            data = items_json(cwd, "--tactic", tactic, *flags)
            want = expected_count(signals, signal)
            assert data["count"] == len(keys(data)) == want, (tactic, flags)


def test_lists_are_the_documented_items(cwd: Path) -> None:
    """History, containers and deleted items are left out; thresholds decide stale/overdue."""
    assert keys(items_json(cwd, "--tactic", "checkout")) == [
        "o/r#1", "o/r#10", "o/r#11", "o/r#12", "o/r#2", "o/r#3", "o/r#4", "o/r#5"
    ]  # fmt: skip
    assert keys(items_json(cwd, "--tactic", "checkout", "--stale")) == ["o/r#11", "o/r#3"]
    assert keys(items_json(cwd, "--tactic", "checkout", "--overdue")) == ["o/r#3", "o/r#4"]
    assert keys(items_json(cwd, "--tactic", "checkout", "--scope-added")) == [
        "o/r#1", "o/r#10", "o/r#11", "o/r#12", "o/r#4"
    ]  # fmt: skip
    both = items_json(cwd, "--tactic", "checkout", "--status", "in_progress", "--stale")
    assert keys(both) == ["o/r#11", "o/r#3"]
    assert both["filters"] == ["in_progress", "stale"]
    earlier = run_cli("items", "--tactic", "checkout", "--stale", "--json", "--as-of",
                      "2026-11-01", cwd=cwd)  # fmt: skip
    assert [i["key"] for i in json.loads(earlier.stdout)["items"]] == []


def test_item_rows_carry_key_title_status_dates_and_url(cwd: Path) -> None:
    """A JSON row has every field; an item linked by two rules shows once, its lowest rule."""
    rows = {i["key"]: i for i in items_json(cwd, "--tactic", "checkout")["items"]}
    four = rows["o/r#4"]
    assert four["rule"] == "r1"
    assert four["tactic"] == "checkout"
    assert four["due"] == "2026-11-14"
    assert four["assignee"] == "dana"
    assert four["url"] == "https://github.com/o/r/issues/4"
    assert rows["o/r#5"]["completed_at"].startswith("2026-11-05")
    assert set(four) == {"tactic", "rule", "connector", "key", "title", "status", "assignee",
                         "created", "updated", "due", "completed_at", "url", "boards",
                         "board_names", "iteration"}  # fmt: skip


def test_table_output_is_printable(cwd: Path) -> None:
    """The table shows the rows and the tactic's counts; tracker text loses its escapes."""
    r = run_cli("items", "--tactic", "checkout", "--status", "done", *ARGS, cwd=cwd)
    assert r.code == 0, r.stderr
    assert "2 item(s) counted in items_done" in r.stdout
    assert "counts: 7 items (2 done, 3 in progress, 2 to do), 1 dropped; 2 stale" in r.stdout
    for text in ("o/r#1", "item 1 fixed", "https://github.com/o/r/issues/2", "2026-10-05"):
        assert text in r.stdout, text
    assert "\x1b" not in r.stdout
    assert "\x07" not in r.stdout
    assert "o/r#3" not in r.stdout


def test_unlinked_lists_live_items_no_tactic_counts(cwd: Path) -> None:
    """--unlinked --connector lists present work items linked to no active tactic."""
    unlinked = ["o/r#20", "o/r#21", "o/r#24"]  # 22 a container, 23 deleted, 24's tactic archived
    assert keys(items_json(cwd, "--unlinked", "--connector", "gh")) == unlinked
    assert keys(items_json(cwd, "--unlinked", "--connector", "gh", "--stale")) == ["o/r#21"]
    r = run_cli("items", "--unlinked", "--connector", "gh", *ARGS, cwd=cwd)
    assert r.code == 0, r.stderr
    assert "linked to no tactic" in r.stdout
    assert "o/r#20" in r.stdout


def test_bad_input_exits_2_with_a_hint(cwd: Path) -> None:
    """Unknown tactic or connector get a did-you-mean; wrong combinations exit 2, no traceback."""
    cases = {
        ("--tactic", "chekout"): "did you mean 'checkout'?",
        ("--unlinked", "--connector", "ghh"): "did you mean 'gh'?",
        ("--unlinked", "--connector", "gh", "--scope-added"): "needs a tactic's period",
        ("--unlinked",): "--unlinked needs --connector",
        (): "give a tactic",
        ("--tactic", "checkout", "--connector", "gh"): "--connector goes with --unlinked",
    }
    for args, hint in cases.items():
        r = run_cli("items", *args, *ARGS, cwd=cwd)
        assert r.code == 2, args
        assert hint in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    r = run_cli("export", "--items", "--format", "csv", *ARGS, cwd=cwd)
    assert r.code == 2
    assert "--items is for the JSON export" in r.stderr


def test_store_lists_match_the_aggregate_for_any_date_and_thresholds(cwd: Path) -> None:
    """Store.tactic_items under each count name has that many items, whatever as-of/config."""
    store = Store.open(f"sqlite:///{cwd / 'data' / 'okrsync.db'}")
    try:
        for cfg in (SignalsConfig(), SignalsConfig(stale_days=3, throughput_window_days=7)):
            for day in (AS_OF, AS_OF - timedelta(days=12), AS_OF + timedelta(days=40)):
                structure, counts, _ = store.signal_inputs(day, cfg)
                for name in ITEM_FILTERS:
                    listed = store.tactic_items(structure, day, cfg, filters=[name])
                    for tid in structure.tactics:
                        want = getattr(counts[tid], name) if tid in counts else 0
                        assert len(listed[tid]) == want, (cfg, day, name, tid)
    finally:
        store.close()


def test_export_items_lists_each_tactics_items(cwd: Path) -> None:
    """export --items puts key, url, status and rule under each tactic, as `items` lists them."""
    tactics = {t["id"]: t for t in _export_items(cwd)}
    assert [i["key"] for i in tactics["pricing"]["items"]] == ["o/r#4"]
    assert tactics["pricing"]["items"][0] == {
        "connector": "gh", "key": "o/r#4", "url": "https://github.com/o/r/issues/4",
        "status": "todo", "rule": "r1",
    }  # fmt: skip
    for tid, t in tactics.items():
        assert [i["key"] for i in t["items"]] == keys(items_json(cwd, "--tactic", tid))
    assert "items" not in next(iter(export_signals(cwd).values()))


def _export_items(cwd: Path) -> list[dict[str, Any]]:
    r = run_cli("export", "--items", *ARGS, cwd=cwd)
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    return [t for o in data["objectives"] for k in o["key_results"] for t in k["tactics"]]
