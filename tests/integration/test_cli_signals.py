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
    assert all("items" not in t for t in tactics)
    with_items = json.loads(run_cli("export", "--items", *AS_OF, cwd=cwd).stdout)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(with_items)
    rows = with_items["objectives"][0]["key_results"][0]["tactics"][0]["items"]
    assert [(i["key"], i["status"], i["rule"]) for i in rows] == [
        ("o/r#1", "done", "r1"), ("o/r#2", "done", "r1"), ("o/r#3", "in_progress", "r1")
    ]  # fmt: skip
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


PERIOD_TREE = """
[[objective]]
id = "y26"
title = "The year"
period = "2026"

[[objective]]
id = "h1"
title = "First half"
period = "2026-H1"

[[objective]]
id = "h2"
title = "Second half"
period = "2026-h2"

[[objective]]
id = "nov"
title = "November"
period = "2026-11"

[[objective]]
id = "dated"
title = "Mid-October to November"
start = 2026-10-15
end = 2026-11-30

[[objective]]
id = "last-year"
title = "Last year's Q4"
period = "2025-Q4"
"""


def period_setup(tmp_path: Path) -> Path:
    """The signal tree (grow: 2026-Q4) plus objectives of a year, halves, a month and dates."""
    cwd = setup(tmp_path)
    write(cwd / "okrs" / "periods.toml", PERIOD_TREE)
    assert run_cli("okrs", "sync", cwd=cwd).code == 0
    return cwd


def selected(cwd: Path, command: str, period: str) -> list[str]:
    """The objective ids `report --json` or `export` keeps for `--period`."""
    fmt = ("--json",) if command == "report" else ("--format", "json")
    r = run_cli(command, *fmt, "--period", period, *AS_OF, cwd=cwd)
    assert r.code == 0, r.stderr
    return [o["id"] for o in json.loads(r.stdout)["objectives"]]


def words(text: str) -> str:
    """Text with rich's line wrapping undone."""
    return " ".join(text.split())


def test_period_holds_its_halves_quarters_and_months(tmp_path: Path) -> None:
    """`--period 2026` keeps the year's halves, quarters, months and dated objectives;
    `2026-H2` its quarters and months; `2026-q4` works; export selects the same way."""
    cwd = period_setup(tmp_path)
    assert selected(cwd, "report", "2026") == ["dated", "grow", "h1", "h2", "nov", "y26"]
    assert selected(cwd, "report", "2026-H2") == ["dated", "grow", "h2", "nov"]
    assert selected(cwd, "report", "2026-q4") == ["dated", "grow", "nov"]
    assert selected(cwd, "export", "2026-h1") == ["h1"]
    args = ("--format", "csv", "--period", "2026-Q4", "--objective", "grow", *AS_OF)
    r = run_cli("export", *args, cwd=cwd)
    assert r.code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["id"] for row in rows if row["subject_type"] == "objective"] == ["grow"]
    data = json.loads(run_cli("report", "--json", "--period", "2026-H2", *AS_OF, cwd=cwd).stdout)
    assert [o["period"] for o in data["objectives"] if o["id"] == "h2"] == ["2026-H2"]


def test_period_without_objectives_names_the_periods_that_have_some(tmp_path: Path) -> None:
    """An empty period exits 0 with a note naming the periods that hold objectives; with
    --json and export the note is on stderr and stdout stays valid JSON."""
    cwd = period_setup(tmp_path)
    r = run_cli("report", "--period", "2027-q1", *AS_OF, cwd=cwd)
    assert r.code == 0, r.stderr
    note = "no objective lies within 2027-Q1 (2027-01-01 … 2027-03-31); periods with objectives: "
    assert note + "2025, 2025-Q4, 2026, 2026-H1, 2026-H2, 2026-Q4, 2026-11" in words(r.stdout)
    for fmt in (("report", "--json"), ("export", "--format", "json")):
        r = run_cli(*fmt, "--period", "2027-Q1", *AS_OF, cwd=cwd)
        assert r.code == 0, r.stderr
        assert json.loads(r.stdout)["objectives"] == []
        assert note in words(r.stderr)
    r = run_cli("export", "--period", "2026-Q5", cwd=cwd)
    assert r.code == 2
    assert "--period: period '2026-Q5' is not one of" in r.stderr
    assert "Traceback" not in r.stderr


def test_report_footer_and_help_point_at_the_signal_definitions(tmp_path: Path) -> None:
    """The report ends with where every signal is defined, by a path that exists; --help too."""
    cwd = setup(tmp_path)
    r = run_cli("report", *AS_OF, cwd=cwd)
    assert r.code == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("What each signal, status and flag means: ")
    assert Path(last.split(": ", 1)[1]).is_file()
    assert last.endswith("docs/signals.md")
    for command in ("report", "export"):
        help_text = run_cli(command, "--help", cwd=cwd).stdout
        assert "docs/signals.md" in help_text
        assert "2026-H2" in help_text
