"""Output that fits: tables keep their id, status and error columns at 80 columns, piped
output honours COLUMNS, error messages are one line each, the report reads at 80 and 160."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from okrsync.models import RunResult
from okrsync.render import render_runs
from okrsync.store import Store
from tests.helpers import CliResult, run_cli
from tests.integration.test_cli_signals import AS_OF, setup

# A tracker error with a URL longer than a narrow error cell: it must be folded, not lost.
ERROR = (
    "network error (ConnectError) talking to https://jira.example.internal/rest/api/3/search"
    "?jql=project%3DOPS after 4 attempts over 16.0 s: connection refused by the remote host"
)
CONNECTOR = "github-enterprise-mirror"


@pytest.fixture(scope="module")
def cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signal fixture's store (tree, check-in, linked items) plus an ok and a failed run."""
    where = setup(tmp_path_factory.mktemp("width"))
    store = Store.open(f"sqlite:///{where / 'data' / 'okrsync.db'}")
    try:
        store.finish_run(store.start_run("jira"), "ok")
        store.finish_run(store.start_run(CONNECTOR), "failed", error=ERROR)
    finally:
        store.close()
    return where


def cli(cwd: Path, columns: int, *args: str) -> CliResult:
    """The CLI with its stdout and stderr piped and COLUMNS set."""
    r = run_cli(*args, cwd=cwd, env={"COLUMNS": str(columns)})
    assert r.code == 0, r.stderr
    return r


def widest(text: str) -> int:
    return max(cell_len(line) for line in text.splitlines())


def header(text: str) -> list[str]:
    """The column names of the first table in `text` (rich's heavy header row)."""
    line = next(line for line in text.splitlines() if line.startswith("┃"))
    return [cell.strip() for cell in line.strip("┃").split("┃")]


def column(text: str, name: str) -> list[str]:
    """Every line's piece of column `name`, top to bottom, in the table's body rows."""
    index = header(text).index(name)
    rows = [line for line in text.splitlines() if line.startswith("│")]
    return [row.strip("│").split("│")[index].strip() for row in rows]


@pytest.mark.parametrize("args", [("runs",), ("runs", "--failed")])
def test_runs_keep_id_status_and_the_whole_error_at_80_columns(
    cwd: Path, args: tuple[str, ...]
) -> None:
    """At 80 columns `runs` keeps id, connector, status and error; the full error wraps in
    its cell (the URL folded), several words a line, and no line passes 80 cells."""
    r = cli(cwd, 80, *args)
    assert widest(r.stdout) <= 80, r.stdout
    assert {"id", "connector", "status", "error"} <= set(header(r.stdout)), r.stdout
    pieces = [p for p in column(r.stdout, "error") if p]
    assert "".join(pieces).replace(" ", "") == ERROR.replace(" ", ""), r.stdout
    assert len(pieces) <= math.ceil(len(ERROR) / 24) + 1, r.stdout  # never a word a line
    assert CONNECTOR in column(r.stdout, "connector")
    assert "failed" in column(r.stdout, "status")


def test_piped_output_honours_columns(cwd: Path) -> None:
    """Piped `runs` is laid out for COLUMNS (not a fixed 120): at 175 every column shows and
    the table is wider than 120; at 80 it fits 80."""
    wide = cli(cwd, 175, "runs")
    assert 120 < widest(wide.stdout) <= 175, wide.stdout
    assert header(wide.stdout) == ["id", "connector", "started (UTC)", "took", "status",
                                   "trigger", "pages", "requests", "retries", "rl wait",
                                   "+/~/-", "host", "error"]  # fmt: skip
    assert widest(cli(cwd, 80, "runs").stdout) <= 80


@pytest.mark.parametrize("columns", [30, 80, 200])
def test_error_messages_are_one_line_whatever_the_width(cwd: Path, columns: int) -> None:
    """The CLI's error handler prints a long message (135 characters) as one line, at any
    COLUMNS: never hard-wrapped mid-sentence."""
    r = run_cli("items", cwd=cwd, env={"COLUMNS": str(columns)})
    assert r.code == 2
    assert r.stderr.splitlines() == [
        "error: give a tactic: `okrsync items --tactic ID` (ids: `okrsync report`), "
        "or `--unlinked --connector NAME` for the items no tactic counts"
    ]


def test_report_reads_at_80_and_160_columns(cwd: Path) -> None:
    """`report` fits 80 and 160 columns; a flag has its own line; at 160 a tactic's signals
    stay on one line, at 80 `forecast DATE` is never split from its date."""
    for columns in (80, 160):
        r = cli(cwd, columns, "report", *AS_OF)
        lines = r.stdout.splitlines()
        assert widest(r.stdout) <= columns, r.stdout
        flag = [line for line in lines if "⚠" in line]
        assert flag, r.stdout
        assert all("execution" not in line for line in flag), r.stdout
        assert any("forecast 2026-11-29" in line for line in lines), r.stdout
    assert any(
        "2/3 done (67%) · 0.5/wk · forecast 2026-11-29 · 1 stale · 3 scope added" in line
        for line in lines
    ), r.stdout


def test_items_fit_columns_keeping_key_status_and_url(cwd: Path) -> None:
    """Piped `items` honours COLUMNS=80 (not widened to 240): key, title, status and url
    stay, the dates go first; with no COLUMNS a pipe still gets a row a line."""
    narrow = cli(cwd, 80, "items", "--tactic", "checkout", *AS_OF)
    table = "\n".join(line for line in narrow.stdout.splitlines() if line[:1] in "┏┃┡│└")
    assert widest(table) <= 80, narrow.stdout
    assert {"key", "title", "status", "url"} <= set(header(narrow.stdout)), narrow.stdout
    assert column(narrow.stdout, "key") == ["o/r#1", "o/r#2", "o/r#3"]
    unset = run_cli("items", "--tactic", "checkout", *AS_OF, cwd=cwd, env={"COLUMNS": ""})
    assert "created" in header(unset.stdout)
    assert widest(unset.stdout) > 80, unset.stdout


def test_sync_runs_table_keeps_run_and_status_with_errors_below_at_80() -> None:
    """`sync`'s run table fits 80 columns with connector, run and status; each error is one
    whole line below it."""
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    results = [
        RunResult(CONNECTOR, 12, "failed", pages=3, created=140, updated=9, requests=1234,
                  retries=17, duration_s=1234.5, error=ERROR),
        RunResult("jira", 13, pages=52, created=5000, updated=250, deleted=3, requests=60),
    ]  # fmt: skip
    render_runs(console, results)
    text = buf.getvalue()
    table = text.split(f"{CONNECTOR}: ")[0]
    assert widest(table) <= 80, text
    assert {"connector", "run", "status", "new", "changed", "deleted"} <= set(header(text))
    assert column(text, "run") == ["12", "13"]
    assert column(text, "status") == ["failed", "ok"]
    assert f"{CONNECTOR}: {ERROR}" in text.splitlines()
