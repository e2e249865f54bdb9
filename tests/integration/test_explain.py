"""`okrsync explain KEY` and `okrsync explain --tactic ID` through the real CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from okrsync.models import Page, StatusCategory
from okrsync.store import Store
from tests.helpers import run_cli
from tests.integration.test_cli_mapping import item, setup


def said(text: str) -> str:
    """Text with its line wrapping undone (errors are wrapped at 120 columns)."""
    return " ".join(text.split())


def add_items(cwd: Path, connector: str, *items: Any) -> None:
    store = Store.open(f"sqlite:///{cwd / 'data' / 'okrsync.db'}")
    store.commit_page(connector, Page(list(items), {"v": 2}))
    store.close()


def test_explain_names_each_condition_that_held(tmp_path: Path) -> None:
    """ALPHA-3 matches both tactics: the epic through its parent, the connector, the title."""
    r = run_cli("explain", "ALPHA-3", cwd=setup(tmp_path))
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == [
        "ALPHA-3  Slow pay button",
        "  jira issue; in ALPHA; ancestors ALPHA-2 > ALPHA-1",
        "matches 2 rule(s) of 2 tactic(s):",
    ]
    assert '    epic = "ALPHA-1" (ancestor ALPHA-1 via ALPHA-2)' in lines
    assert '    connector = "jira" (item connector jira)' in lines
    assert "    title =~ '(?i)slow' (title \"Slow pay button\")" in lines
    assert any(x.startswith("  tactic speed (Speed), rule slow-pages at ") for x in lines)


def test_explain_an_unmatched_item_shows_the_condition_that_failed(tmp_path: Path) -> None:
    """ALPHA-4 meets slow-pages' connector but not its title: that is what is shown."""
    r = run_cli("explain", "ALPHA-4", cwd=setup(tmp_path))
    assert r.code == 0, r.stderr
    assert "matches none of the 2 rule(s) of 2 tactic(s)." in r.stdout
    assert "rule slow-pages at " in r.stdout
    assert '    held:   connector = "jira" (item connector jira)' in r.stdout
    assert "    failed: title =~ '(?i)slow': not met (title \"Fix login\")" in r.stdout
    assert "rule checkout#1" not in r.stdout  # it meets none of its conditions


def test_explain_refuses_an_unknown_or_ambiguous_key(tmp_path: Path) -> None:
    """An unknown key, or one two connectors store without --connector, exits 2."""
    cwd = setup(tmp_path)
    r = run_cli("explain", "ZETA-1", cwd=cwd)
    assert r.code == 2
    assert "no stored item has the key 'ZETA-1'" in said(r.stderr)
    add_items(cwd, "legacy", replace(item("ALPHA-4", "Old login"), connector="legacy"))
    r = run_cli("explain", "ALPHA-4", cwd=cwd)
    assert r.code == 2
    assert "stored by several connectors (jira, legacy); add --connector jira" in said(r.stderr)
    r = run_cli("explain", "ALPHA-4", "--connector", "legacy", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "ALPHA-4  Old login" in r.stdout


def test_explain_finds_an_item_by_an_earlier_key(tmp_path: Path) -> None:
    """A key the item had before a move still finds it."""
    cwd = setup(tmp_path)
    add_items(cwd, "jira", replace(item("GAMMA-1", "Pay"), external_id="x-100"))
    add_items(cwd, "jira", replace(item("GAMMA-2", "Moved pay"), external_id="x-100"))
    r = run_cli("explain", "GAMMA-1", cwd=cwd)
    assert r.code == 0, r.stderr
    assert r.stdout.startswith("GAMMA-2  Moved pay\n")


def tactic_signals(cwd: Path, tactic: str, as_of: str) -> dict[str, Any]:
    r = run_cli("report", "--json", "--as-of", as_of, cwd=cwd)
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    tactics = [t for o in data["objectives"] for k in o["key_results"] for t in k["tactics"]]
    found: dict[str, Any] = next(t["signals"] for t in tactics if t["id"] == tactic)
    return found


def test_explain_tactic_shows_the_figures_the_report_uses(tmp_path: Path) -> None:
    """Forecast and status in `explain --tactic` are those `report` shows for the tactic."""
    cwd = setup(tmp_path)
    done = datetime(2026, 11, 10, tzinfo=UTC)
    add_items(
        cwd,
        "jira",
        replace(item("ALPHA-2", "Pay button", "ALPHA-1"), status=StatusCategory.DONE,
                completed_at=done, updated=done),
    )  # fmt: skip
    assert run_cli("remap", "--as-of", "2026-11-15", cwd=cwd).code == 0
    r = run_cli("explain", "--tactic", "checkout", "--as-of", "2026-11-15", cwd=cwd)
    assert r.code == 0, r.stderr
    want = tactic_signals(cwd, "checkout", "2026-11-15")
    assert want["execution_status"] == "on_track"
    lines = r.stdout.splitlines()
    assert (
        lines[0] == "tactic checkout (Checkout revamp) as of 2026-11-15: execution status on_track"
    )
    assert "  done in window: 1 item(s) closed in the 28 days ending 2026-11-15" in lines
    assert (
        "  forecast: as-of + remaining × window ÷ done in window = 2026-11-15 + 1 × 28 ÷ 1 "
        f"days = 2026-11-15 + 28 days = {want['forecast_finish']}"
    ) in lines
    assert "  decided by: forecast on or before the period end → on_track" in lines


def test_explain_tactic_refuses_an_unknown_tactic_with_a_suggestion(tmp_path: Path) -> None:
    """A misspelt tactic exits 2 with a did-you-mean."""
    cwd = setup(tmp_path)
    assert run_cli("okrs", "sync", cwd=cwd).code == 0
    r = run_cli("explain", "--tactic", "chekout", cwd=cwd)
    assert r.code == 2
    assert "no active tactic 'chekout' in the store; did you mean 'checkout'?" in said(r.stderr)


def test_explain_needs_a_key_or_a_tactic(tmp_path: Path) -> None:
    """Neither or both: exit 2 saying which to give."""
    cwd = setup(tmp_path)
    for args in (("explain",), ("explain", "ALPHA-3", "--tactic", "checkout")):
        r = run_cli(*args, cwd=cwd)
        assert r.code == 2, args
        assert "give an item key" in said(r.stderr)
