"""report, export, history and recompute through the real CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema

from okrsync.report import CSV_COLUMNS
from okrsync.signals import TACTIC_SIGNALS
from okrsync.store import Store
from tests.helpers import run_cli, write
from tests.signal_fixtures import SIGNAL_TREE, days_ago, item, link

SCHEMA = Path(__file__).resolve().parents[2] / "okrsync" / "schema" / "export.schema.json"
CONFIG = """
[store]
url = "sqlite:///data/okrsync.db"

[mappings]
paths = ["okrs"]
"""
AS_OF = ("--as-of", "2026-11-15")


def setup(tmp_path: Path) -> Path:
    """A config, the tree loaded, a check-in and linked items as of 2026-11-15."""
    write(tmp_path / "okrsync.toml", CONFIG)
    write(tmp_path / "okrs" / "main.toml", SIGNAL_TREE)
    assert run_cli("okrs", "sync", cwd=tmp_path).code == 0
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'okrsync.db'}")
    store.add_checkin("conv", 8.2, at=days_ago(1))
    link(store, [item(1, "done"), item(2, "done"), item(3, "in_progress", updated=days_ago(20))])
    link(store, [item(4, "todo")], "cache")
    store.close()
    return tmp_path


def test_report_shows_outcome_beside_execution_with_flags(tmp_path: Path) -> None:
    """The terminal report shows bars, pace, tactic signals and the divergence flag."""
    cwd = setup(tmp_path)
    r = run_cli("report", *AS_OF, cwd=cwd)
    assert r.code == 0, r.stderr
    for text in ("OKR report", "as of 2026-11-15", "expected 49%", "output without outcome",
                 "2/3 done (67%)", "1 stale", "forecast 2026-11-29", "no data"):  # fmt: skip
        assert text in r.stdout, text
    data = json.loads(run_cli("report", "--json", "--objective", "grow", *AS_OF, cwd=cwd).stdout)
    assert data["objectives"][0]["key_results"][0]["flags"] == ["output_without_outcome"]
    assert (
        json.loads(run_cli("report", "--json", "--period", "2027-Q1", cwd=cwd).stdout)["objectives"]
        == []
    )


def test_export_json_matches_the_schema_and_csv_has_a_row_per_subject(tmp_path: Path) -> None:
    """The JSON export validates against its schema; the CSV has the documented columns."""
    cwd = setup(tmp_path)
    r = run_cli("export", "--format", "json", *AS_OF, cwd=cwd)
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(data)
    tactics = [t for o in data["objectives"] for k in o["key_results"] for t in k["tactics"]]
    assert [t["id"] for t in tactics] == ["checkout", "pricing", "cache"]
    assert all(list(t["signals"]) == list(TACTIC_SIGNALS) for t in tactics)
    r = run_cli("export", "--format", "csv", "--output", "out.csv", *AS_OF, cwd=cwd)
    assert r.code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO((cwd / "out.csv").read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["subject_type"], r["id"]) for r in rows][:3] == [
        ("objective", "grow"), ("key_result", "conv"), ("tactic", "checkout")
    ]  # fmt: skip
    assert rows[2]["items_done"] == "2"


def test_recompute_and_history(tmp_path: Path) -> None:
    """recompute snapshots what changed; history shows how a tactic's signals moved."""
    cwd = setup(tmp_path)
    r = run_cli("recompute", *AS_OF, cwd=cwd)
    assert r.code == 0, r.stderr
    assert "6 snapshot(s) written" in r.stdout
    assert "0 snapshot(s) written" in run_cli("recompute", *AS_OF, cwd=cwd).stdout
    store = Store.open(f"sqlite:///{cwd / 'data' / 'okrsync.db'}")
    link(store, [item(3, "done", updated=days_ago(0))])
    store.close()
    assert "snapshot(s) written" in run_cli("recompute", *AS_OF, cwd=cwd).stdout
    r = run_cli("history", "checkout", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "first snapshot" in r.stdout
    assert "items_done: 2 → 3" in r.stdout


def test_bad_input_exits_2(tmp_path: Path) -> None:
    """A malformed date, an unknown objective and an unknown history id exit 2, no traceback."""
    cwd = setup(tmp_path)
    for args in (("report", "--as-of", "15/11/2026"), ("report", "--objective", "nope"),
                 ("report", "--period", "Q9"), ("history", "nope")):  # fmt: skip
        r = run_cli(*args, cwd=cwd)
        assert r.code == 2, args
        assert "Traceback" not in r.stderr
