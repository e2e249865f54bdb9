"""`okrsync measure` and `okrsync mappings check` with sources, through the real CLI: a
SQLite KPI database and a CSV export as the places the metrics live."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from okrsync.store import Store
from tests.helpers import CliResult, run_cli, write

CONFIG = """
[store]
url = "sqlite:///data/okrsync.db"

[mappings]
paths = ["okrs"]
"""
OKRS = """
[[objective]]
id = "grow"
title = "Grow"
period = "2026-Q4"

[[key_result]]
id = "conv"
objective = "grow"
title = "Trial conversion"
start = 0
target = 10
source = { kind = "sql", url_env = "KPI_DB", query = "select v from kpi order by day desc limit 1",\
backfill_query = "select day, v from kpi where day >= :since", schedule = "every 1h" }

[[key_result]]
id = "nps"
objective = "grow"
title = "NPS"
start = 0
target = 50
source = { kind = "file", path = "nps.csv", schedule = "every 1d" }

[[key_result]]
id = "manual"
objective = "grow"
title = "By hand"
start = 0
target = 10
"""


def setup(tmp_path: Path) -> dict[str, str]:
    """Config, mapping files, a KPI database (Oct 1 = 1, Nov 1 = 2.5, Dec 1 = 4) and an NPS
    CSV; the tree loaded. Returns the environment naming the database."""
    write(tmp_path / "okrsync.toml", CONFIG)
    write(tmp_path / "okrs" / "main.toml", OKRS)
    write(tmp_path / "okrs" / "nps.csv", "date,value\n2026-10-05,31\n2026-11-05,35\n")
    with sqlite3.connect(tmp_path / "kpi.db") as c:
        c.execute("create table kpi (day text, v real)")
        c.executemany(
            "insert into kpi values (?, ?)",
            [("2026-10-01", 1.0), ("2026-11-01", 2.5), ("2026-12-01", 4.0)],
        )
    assert run_cli("okrs", "sync", cwd=tmp_path).code == 0  # KPI_DB unset: loading is fine
    return {"KPI_DB": f"sqlite:///{tmp_path / 'kpi.db'}"}


def cli(cwd: Path, env: dict[str, str], *args: str) -> CliResult:
    return run_cli(*args, cwd=cwd, env=env)


def stored(cwd: Path, kr: str) -> list[tuple[str | None, float]]:
    store = Store.open(f"sqlite:///{cwd / 'data' / 'okrsync.db'}")
    try:
        return [(c.author, c.value) for c in store.checkins(kr)]
    finally:
        store.close()


def test_measure_records_each_source_as_a_checkin_and_leaves_manual_krs_alone(
    tmp_path: Path,
) -> None:
    """`measure` prints a line per key result with a source, records each reading as a
    check-in by source:<kind> and writes snapshots; a key result without a source gets none;
    a second run records the unchanged value again (a flat line is information)."""
    env = setup(tmp_path)
    r = cli(tmp_path, env, "measure")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("conv  sql  4 at ")
    assert lines[0].endswith(" UTC (recorded)")
    assert lines[1] == "nps  file  35 at 2026-11-05 00:00 UTC (recorded)"
    assert "signal snapshot(s) written" in lines[2]
    assert stored(tmp_path, "conv") == [("source:sql", 4.0)]
    assert stored(tmp_path, "manual") == []
    assert '"event": "source.read"' in r.stderr
    again = cli(tmp_path, env, "measure", "conv")
    assert again.code == 0
    assert stored(tmp_path, "conv") == [("source:sql", 4.0), ("source:sql", 4.0)]
    history = cli(tmp_path, env, "history", "conv")
    assert history.code == 0
    assert "outcome.progress 0.4" in history.stdout


def test_backfill_draws_the_past_once(tmp_path: Path) -> None:
    """`--since` records every reading since the date (sql through :since, file rows); run
    twice, it adds nothing the second time."""
    env = setup(tmp_path)
    r = cli(tmp_path, env, "measure", "conv", "nps", "--since", "2026-10-02")
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines()[:2] == [
        "conv  sql  2 readings, 2026-11-01 00:00 UTC … 4 at 2026-12-01 00:00 UTC (2 recorded)",
        "nps  file  2 readings, 2026-10-05 00:00 UTC … 35 at 2026-11-05 00:00 UTC (2 recorded)",
    ]
    twice = cli(tmp_path, env, "measure", "conv", "nps", "--since", "2026-10-02")
    assert "(0 recorded, 2 already recorded)" in twice.stdout
    assert stored(tmp_path, "conv") == [("source:sql", 2.5), ("source:sql", 4.0)]
    assert stored(tmp_path, "nps") == [("source:file", 31.0), ("source:file", 35.0)]


def test_a_failing_source_records_a_failed_run_and_keeps_the_last_good_value(
    tmp_path: Path,
) -> None:
    """After a good reading, the database losing its table makes `measure` exit 1 with the
    reason; `runs` shows the failure, the earlier check-in is untouched and the other
    source still records."""
    env = setup(tmp_path)
    assert cli(tmp_path, env, "measure", "conv").code == 0
    with sqlite3.connect(tmp_path / "kpi.db") as c:
        c.execute("drop table kpi")
    r = cli(tmp_path, env, "measure")
    assert r.code == 1
    assert "conv  sql  failed: no such table: kpi" in r.stdout
    assert r.stdout.count("(recorded)") == 1  # nps
    assert '"event": "source.failed"' in r.stderr
    assert stored(tmp_path, "conv") == [("source:sql", 4.0)]
    runs = cli(tmp_path, env, "runs", "--failed")
    assert "source:conv" in runs.stdout
    assert "no such table" in runs.stdout


def test_probe_reads_without_recording(tmp_path: Path) -> None:
    """`measure --probe` and `mappings check --probe` print each reading, record nothing;
    a source that fails its probe makes the check exit 1."""
    env = setup(tmp_path)
    r = cli(tmp_path, env, "measure", "--probe")
    assert r.code == 0, r.stderr
    assert "conv  sql  4 at " in r.stdout
    assert "(probe: not recorded)" in r.stdout
    check = cli(tmp_path, env, "mappings", "check", "--probe")
    assert check.code == 0, check.stdout
    assert "nps  file  35 at 2026-11-05 00:00 UTC (probe: not recorded)" in check.stdout
    assert stored(tmp_path, "conv") == []
    (tmp_path / "okrs" / "nps.csv").unlink()
    failed = cli(tmp_path, env, "mappings", "check", "--probe")
    assert failed.code == 1
    assert "nps  file  failed: " in failed.stdout


def test_mappings_check_names_a_missing_variable_with_file_line(tmp_path: Path) -> None:
    """Without KPI_DB, `mappings check` exits 2 naming the variable and file:line, while
    `okrs sync` still loads the tree and `measure` fails that source only (exit 1)."""
    setup(tmp_path)
    r = run_cli("mappings", "check", cwd=tmp_path)
    assert r.code == 2
    path = tmp_path / "okrs" / "main.toml"
    assert (
        f"error: {path}:12: source of key result 'conv': environment variable KPI_DB (url_env) "
        "is not set" in r.stdout
    )
    assert "Traceback" not in r.stdout + r.stderr
    assert run_cli("okrs", "sync", cwd=tmp_path).code == 0
    m = run_cli("measure", cwd=tmp_path)
    assert m.code == 1
    assert "conv  sql  failed: environment variable KPI_DB (url_env) is not set" in m.stdout


def test_bad_sources_and_bad_arguments_exit_2(tmp_path: Path) -> None:
    """A malformed source is a mapping error (exit 2, file:line, the fix); `measure` of an
    unknown key result suggests one, of one without a source says how to add it."""
    env = setup(tmp_path)
    assert cli(tmp_path, env, "measure", "conw").code == 2
    assert "did you mean 'conv'?" in cli(tmp_path, env, "measure", "conw").stderr
    r = cli(tmp_path, env, "measure", "manual")
    assert r.code == 2
    assert "has no source; add" in r.stderr
    assert cli(tmp_path, env, "measure", "--since", "2099-01-01").code == 2
    write(tmp_path / "okrs" / "main.toml", OKRS.replace('"every 1d"', '"daily"'))
    bad = cli(tmp_path, env, "mappings", "check")
    assert bad.code == 2
    assert f"{tmp_path / 'okrs' / 'main.toml'}:20: schedule must be" in bad.stdout
    assert cli(tmp_path, env, "measure").code == 2


def test_measure_reads_the_sandbox_kpi_api_over_http_and_records_its_failure(
    tmp_path: Path,
) -> None:
    """An http_json source against the sandbox's KPI JSON API on 127.0.0.1 (bearer token
    from the environment): the value and its own `as_of` are recorded; with a NaN fault the
    run fails (exit 1) and the earlier check-in stays; the token never shows."""
    from okrsync.sandbox import Sandbox

    write(tmp_path / "okrsync.toml", CONFIG)
    source = (
        'source = { kind = "http_json", url_env = "KPI_URL", token_env = "KPI_TOKEN", '
        'expression = "data.conversion.pct", time_expression = "data.conversion.as_of" }'
    )
    okrs = OKRS.split("[[key_result]]")[0] + (
        '[[key_result]]\nid = "conv"\nobjective = "grow"\ntitle = "Conversion"\n'
        f"start = 0\ntarget = 10\n{source}\n"
    )
    write(tmp_path / "okrs" / "main.toml", okrs)
    assert run_cli("okrs", "sync", cwd=tmp_path).code == 0
    with Sandbox() as sb:
        token = sb.credentials["metrics_json_token"]
        env = {"KPI_URL": f"{sb.base_url('metrics_json')}/kpi", "KPI_TOKEN": token}
        r = cli(tmp_path, env, "measure")
        assert r.code == 0, r.stdout + r.stderr
        assert r.stdout.startswith("conv  http_json  ")
        assert r.stdout.splitlines()[0].endswith(" UTC (recorded)")
        (got,) = stored(tmp_path, "conv")
        assert got[0] == "source:http_json"
        assert 0 < got[1] < 10
        sb.inject("metrics_json", "nan")
        failed = cli(tmp_path, env, "measure")
        assert failed.code == 1
        assert "conv  http_json  failed: NaN" in failed.stdout
        assert stored(tmp_path, "conv") == [got]
        assert token not in failed.stdout + failed.stderr


def test_a_key_result_not_yet_in_the_store_is_reported_not_recorded(tmp_path: Path) -> None:
    """Before `okrs sync` has loaded a key result, `measure` reads its source but says it
    cannot record it and how to fix that (exit 1), without a traceback."""
    env = setup(tmp_path)
    write(tmp_path / "okrs" / "main.toml", OKRS.replace('id = "nps"', 'id = "nps-2"'))
    r = cli(tmp_path, env, "measure", "nps-2")
    assert r.code == 1
    assert "nps-2  file  failed: not recorded: no key result 'nps-2'; run `okrsync okrs sync`" in (
        r.stdout
    )
    assert "Traceback" not in r.stderr
