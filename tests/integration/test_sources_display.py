"""A key result's source in `okrsync report`, `okrsync export` (JSON and CSV) and the
dashboard: its kind, its last good reading, a newer failure with its reason, and the
`stale_source` flag (docs/signals.md), through the real CLI on a SQLite KPI database."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import jsonschema

from okrsync.config import Settings
from okrsync.store import Store
from okrsync.web.app import WebContext, create_app
from tests.helpers import run_cli
from tests.integration.test_dashboard_pages import call
from tests.integration.test_measure import cli, setup

SCHEMA = Path(__file__).parents[2] / "okrsync" / "schema" / "export.schema.json"


def key_results(cwd: Path, env: dict[str, str]) -> dict[str, dict[str, object]]:
    """The JSON export's key results by id, checked against the export schema."""
    r = cli(cwd, env, "export")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(data)
    return {k["id"]: k for o in data["objectives"] for k in o["key_results"]}


def age_runs(cwd: Path, kr: str, days: int) -> None:
    """Move a key result's source runs `days` into the past (as if made then)."""
    with sqlite3.connect(cwd / "data" / "okrsync.db") as c:
        c.execute(
            "update sync_run set started_at = datetime(started_at, ?) where connector = ?",
            (f"-{days} days", f"source:{kr}"),
        )


def test_export_shows_kind_last_reading_and_a_newer_failure(tmp_path: Path) -> None:
    """After one measure where `conv` reads and `nps` fails, the export gives `conv` its kind
    and reading time, `nps` its failure with the reason, and `manual` no source at all."""
    env = setup(tmp_path)
    (tmp_path / "okrs" / "nps.csv").unlink()
    assert cli(tmp_path, env, "measure").code == 1
    krs = key_results(tmp_path, env)
    conv, nps = krs["conv"]["source"], krs["nps"]["source"]
    assert isinstance(conv, dict)
    assert isinstance(nps, dict)
    assert (conv["kind"], conv["every_s"], conv["last_failure"]) == ("sql", 3600, None)
    assert conv["last_reading_at"] is not None
    assert (nps["kind"], nps["last_reading_at"]) == ("file", None)
    assert "nps.csv" in str(nps["last_failure"])
    assert "does not exist" in str(nps["last_failure"])
    assert nps["last_failure_at"] is not None
    assert "source" not in krs["manual"]
    assert "stale_source" not in (krs["conv"]["flags"] + krs["nps"]["flags"])  # type: ignore[operator]


def test_a_good_reading_after_a_failure_hides_the_failure(tmp_path: Path) -> None:
    """A failure older than the last good reading is not shown: the source is fine now."""
    env = setup(tmp_path)
    assert cli(tmp_path, {}, "measure", "conv").code == 1  # KPI_DB unset: fails
    assert cli(tmp_path, env, "measure", "conv").code == 0
    conv = key_results(tmp_path, env)["conv"]["source"]
    assert isinstance(conv, dict)
    assert conv["last_reading_at"] is not None
    assert (conv["last_failure_at"], conv["last_failure"]) == (None, None)


def test_no_good_reading_for_three_intervals_raises_stale_source(tmp_path: Path) -> None:
    """`nps` (every 1d) last read 4 days ago is stale; `conv` (every 1h) read now is not; the
    flag shows in the JSON, the CSV and the report."""
    env = setup(tmp_path)
    assert cli(tmp_path, env, "measure").code == 0
    age_runs(tmp_path, "nps", 4)
    krs = key_results(tmp_path, env)
    assert krs["nps"]["flags"] == ["stale_source"]
    assert krs["conv"]["flags"] == []
    r = cli(tmp_path, env, "export", "--format", "csv")
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    assert rows["nps"]["flags"] == "stale_source"
    assert (rows["nps"]["source_kind"], rows["conv"]["source_kind"]) == ("file", "sql")
    assert rows["manual"]["source_kind"] == ""
    report = cli(tmp_path, env, "report")
    assert report.code == 0, report.stderr
    assert "stale source: no good reading for 3 schedule intervals" in report.stdout
    assert "source    file · read " in report.stdout


def test_report_shows_a_failing_source_with_its_reason(tmp_path: Path) -> None:
    """The report's key result line names the source kind and its newer failure's reason."""
    setup(tmp_path)
    assert cli(tmp_path, {}, "measure", "conv").code == 1
    r = run_cli("report", cwd=tmp_path, env={"COLUMNS": "200"})
    assert r.code == 0, r.stderr
    assert "source    sql · never read · failed " in r.stdout
    assert "KPI_DB (url_env) is not set" in r.stdout


def test_demo_measures_one_key_result_from_its_source_and_another_by_hand(
    tmp_path: Path,
) -> None:
    """`okrsync demo`: trial-conversion's check-ins all come from its sql source over the
    sandbox's analytics database (a daily history since the period start, then today's figure
    changed upstream), activation-time's all by hand, and the report shows the source."""
    r = run_cli("demo", "--workdir", str(tmp_path / "demo"), "--no-serve", cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert r.stdout.count("measured trial-conversion from its sql source") == 2
    assert "source    sql · read " in r.stdout
    store = Store.open(f"sqlite:///{tmp_path / 'demo' / 'okrsync.db'}")
    try:
        sourced = sorted(store.checkins("trial-conversion"), key=lambda c: c.recorded_at)
        by_hand = store.checkins("activation-time")
    finally:
        store.close()
    assert len(sourced) >= 2
    assert {c.author for c in sourced} == {"source:sql"}
    assert [c.value for c in sourced[-2:]] == [10.9, 11.2]  # today's figure, then upstream's
    assert len({c.recorded_at.date() for c in sourced}) == len(sourced) - 1  # one a day
    assert by_hand
    assert {c.author for c in by_hand} == {"demo"}


def test_dashboard_and_api_show_the_source_and_the_stale_flag(tmp_path: Path) -> None:
    """The tree page and the key result's page show the source's kind, reading time and a
    newer failure with its reason; a stale source's flag shows there and in the read API."""
    env = setup(tmp_path)
    (tmp_path / "okrs" / "nps.csv").unlink()
    assert cli(tmp_path, env, "measure").code == 1  # conv reads, nps fails
    age_runs(tmp_path, "conv", 4)
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'okrsync.db'}")
    settings = Settings(
        store={"url": "sqlite://"},
        mappings={"paths": [str(tmp_path / "okrs")]},
        logging={"file": str(tmp_path / "okrsync.log")},
    )
    app = create_app(WebContext(settings, store))
    try:
        tree = call(app, "GET", "/").text
        nps = call(app, "GET", "/kr/nps").text
        api = call(app, "GET", "/api/v1/tree").json()
    finally:
        store.close()
    assert "source <strong>sql</strong> · read <time" in tree
    assert "⚑ stale source" in tree
    assert 'source <strong>file</strong> · never read · <span class="source-failure">' in nps
    assert "does not exist" in nps
    krs = {k["id"]: k for o in api["objectives"] for k in o["key_results"]}
    assert krs["conv"]["flags"] == ["stale_source"]
    assert krs["nps"]["source"]["kind"] == "file"
    assert "source" not in krs["manual"]


def test_the_read_apis_now_tree_shows_a_failure_recorded_after_it_was_cached(
    tmp_path: Path,
) -> None:
    """The API's cached "now" tree is rebuilt when a source run is recorded: a new failure
    shows on the next request."""
    env = setup(tmp_path)
    assert cli(tmp_path, env, "measure", "conv").code == 0
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'okrsync.db'}")
    settings = Settings(
        store={"url": "sqlite://"},
        mappings={"paths": [str(tmp_path / "okrs")]},
        logging={"file": str(tmp_path / "okrsync.log")},
    )
    app = create_app(WebContext(settings, store))

    def conv() -> dict[str, object]:
        doc = call(app, "GET", "/api/v1/tree").json()
        return next(k for o in doc["objectives"] for k in o["key_results"] if k["id"] == "conv")

    try:
        assert conv()["source"]["last_failure"] is None  # type: ignore[index]
        store.record_source_failure("conv", "empty result")
        assert conv()["source"]["last_failure"] == "empty result"  # type: ignore[index]
    finally:
        store.close()
