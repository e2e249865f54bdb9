"""Output safety through the real CLI and daemon: no terminal escapes from stored or tracker
text, CSV cells neutralised, health details only for loopback callers, private file modes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from okrsync.config import ConnectorConfig, Settings
from okrsync.pipeline import MappingState
from okrsync.service import NOT_READY, Service
from okrsync.store import Store
from okrsync.web.app import WebContext, create_app
from tests.helpers import TREE, CliResult, run_cli, write
from tests.integration.test_service import daemon, events, wait_for, world

# Clear screen, an OSC 8 hyperlink ended by BEL, a C1 CSI: each one alone is enough to leak.
HOSTILE = "A\x1b[2J B \x1b]8;;http://evil\x07click\x1b]8;;\x07 C\x9b31m D"
LEAKS = ("\x1b", "\x07", "\x9b")
CONFIG = """
[store]
url = "sqlite:///data/okrsync.db"

[mappings]
paths = ["okrs"]
"""
AS_OF = ("--as-of", "2026-11-15")


def assert_clean(result: CliResult, *visible: str) -> None:
    """No ESC, BEL or C1 CSI anywhere (the CLI runs piped: rich adds no styling of its own)."""
    for stream in (result.stdout, result.stderr):
        for leak in LEAKS:
            assert leak not in stream, (leak, stream)
    for text in visible:
        assert text in result.stdout + result.stderr, text


def _sql(store: Store, statement: str, **params: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A store whose titles, owner, check-in note, snapshot and failed run all carry escapes."""
    write(tmp_path / "okrsync.toml", CONFIG)
    write(tmp_path / "okrs" / "main.toml", TREE)
    assert run_cli("okrs", "sync", cwd=tmp_path).code == 0
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'okrsync.db'}")
    try:
        for table in ("objective", "key_result", "tactic"):
            _sql(store, f"UPDATE {table} SET title = :t", t=f"{table} {HOSTILE}")
        _sql(store, "UPDATE objective SET owner = :o", o=f"owner {HOSTILE}")
        store.add_checkin("conv", 9.0, note=f"note {HOSTILE}")
        run_id = store.start_run("github")
        store.finish_run(run_id, "failed", error=f"tracker said {HOSTILE}")
        _sql(store, "UPDATE sync_run SET lost_scopes = :s", s=json.dumps([f"o/r {HOSTILE}"]))
    finally:
        store.close()
    return tmp_path


def test_runs_and_runs_show_strip_escapes_from_stored_errors(hostile: Path) -> None:
    """`runs` and `runs show` print a failed run's tracker error without ESC/BEL/C1."""
    listed = run_cli("runs", cwd=hostile)
    assert listed.code == 0, listed.stderr
    assert_clean(listed, "A B", "C D")  # the narrow error column wraps the text
    shown = run_cli("runs", "show", "1", cwd=hostile)
    assert shown.code == 0, shown.stderr
    assert_clean(shown, "tracker said A B click C", "o/r A B")


def test_report_tree_and_checkins_strip_escapes_from_stored_text(hostile: Path) -> None:
    """report, okrs show and checkins print titles, owner and notes without ESC/BEL/C1."""
    report = run_cli("report", *AS_OF, cwd=hostile)
    assert report.code == 0, report.stderr
    assert_clean(report, "objective A B click C", "tactic A B", "owner A B")
    tree = run_cli("okrs", "show", cwd=hostile)
    assert tree.code == 0, tree.stderr
    assert_clean(tree, "key_result A B click C")
    notes = run_cli("checkins", "conv", cwd=hostile)
    assert notes.code == 0, notes.stderr
    assert_clean(notes, "note A B")


def test_history_strips_escapes_from_stored_snapshots(hostile: Path) -> None:
    """`history` prints a stored snapshot's text values without ESC/BEL/C1."""
    assert run_cli("recompute", *AS_OF, cwd=hostile).code == 0
    store = Store.open(f"sqlite:///{hostile / 'data' / 'okrsync.db'}")
    try:
        with store.engine.connect() as conn:
            sid, values = conn.execute(
                sa.text("SELECT id, \"values\" FROM signal_snapshot WHERE subject_id = 'checkout'")
            ).one()
        data = json.loads(values) if isinstance(values, str) else dict(values)
        data["execution_status"] = f"status {HOSTILE}"
        _sql(
            store,
            'UPDATE signal_snapshot SET "values" = :v WHERE id = :i',
            v=json.dumps(data),
            i=sid,
        )
    finally:
        store.close()
    shown = run_cli("history", "checkout", cwd=hostile)
    assert shown.code == 0, shown.stderr
    assert_clean(shown, "status A B")


def test_logs_strip_escapes_from_log_events(tmp_path: Path) -> None:
    """`logs` (readable and --json) prints events quoting a tracker without ESC/BEL/C1."""
    event = {"timestamp": "2026-11-15T10:00:00Z", "level": "error", "event": "sync.failed",
             "connector": "github", "error": HOSTILE, HOSTILE: "key too"}  # fmt: skip
    log = tmp_path / "okrsync.log"
    # JSON writers escape control characters; a raw one is what a tampered file could hold.
    log.write_text(json.dumps(event) + "\n" + json.dumps(event, ensure_ascii=False) + "\n")
    readable = run_cli("logs", "--file", str(log), cwd=tmp_path)
    assert readable.code == 0, readable.stderr
    assert_clean(readable, "error=A B click C", "connector=github")
    assert len(readable.stdout.splitlines()) == 2
    raw = run_cli("logs", "--file", str(log), "--json", cwd=tmp_path)
    assert raw.code == 0, raw.stderr
    assert_clean(raw, '"connector": "github"')


def test_error_messages_strip_escapes(tmp_path: Path) -> None:
    """An error quoting hostile text (here a file name) reaches stderr without ESC/BEL/C1."""
    missing = tmp_path / f"{HOSTILE}.log"
    r = run_cli("logs", "--file", str(missing), cwd=tmp_path)
    assert r.code == 2
    assert_clean(r, "cannot read log file", "A B click C")


# -- CSV export --------------------------------------------------------------------------------
FORMULAS = {
    ("objective", "grow"): '=HYPERLINK("http://evil","x")',
    ("key_result", "conv"): "+1+cmd|' /C calc'!A0",
    ("key_result", "latency"): "-2+3",
    ("tactic", "checkout"): "@SUM(1+1)",
}


def test_csv_export_neutralises_formula_cells_and_keeps_numbers(tmp_path: Path) -> None:
    """CSV text cells starting = + - @ get a leading quote; numbers and JSON stay as they are."""
    write(tmp_path / "okrsync.toml", CONFIG)
    write(tmp_path / "okrs" / "main.toml", TREE)
    assert run_cli("okrs", "sync", cwd=tmp_path).code == 0
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'okrsync.db'}")
    try:
        for (table, ident), title in FORMULAS.items():
            _sql(store, f"UPDATE {table} SET title = :t WHERE id = :i", t=title, i=ident)
        _sql(store, "UPDATE key_result SET start_value = -0.5 WHERE id = 'conv'")
    finally:
        store.close()
    r = run_cli("export", "--format", "csv", "--output", "out.csv", *AS_OF, cwd=tmp_path)
    assert r.code == 0, r.stderr
    text = (tmp_path / "out.csv").read_text()
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(text))}
    for (_, ident), title in FORMULAS.items():
        assert rows[ident]["title"] == "'" + title
    assert rows["conv"]["outcome_start"] == "-0.5"
    assert stat.S_IMODE((tmp_path / "out.csv").stat().st_mode) == 0o600
    data = json.loads(run_cli("export", "--format", "json", *AS_OF, cwd=tmp_path).stdout)
    conv = data["objectives"][0]["key_results"][0]
    assert (conv["title"], conv["outcome"]["start"]) == (FORMULAS["key_result", "conv"], -0.5)


# -- /healthz and /readyz ----------------------------------------------------------------------
REMOTE = "203.0.113.9"
LOCAL = "127.0.0.1"


@pytest.fixture
def failing_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """A daemon's Service whose connector failed twice with a hostile error, mapping broken."""
    monkeypatch.setenv("OKRSYNC_TEST_TOKEN", "t0ken")
    write(tmp_path / "okrs" / "main.toml", TREE)
    cc = ConnectorConfig.model_validate(
        {"name": "gh", "type": "github", "base_url": "http://127.0.0.1:9",
         "scope": ["o/r"], "token_env": "OKRSYNC_TEST_TOKEN"}
    )  # fmt: skip
    settings = Settings(
        store={"url": f"sqlite:///{tmp_path / 'okrsync.db'}"},
        mappings={"paths": [str(tmp_path / "okrs")]},
        connectors=[cc],
        service={"ready_max_failures": 2},
        base_dir=tmp_path,
    )
    store = Store.open(settings.store_url())
    for _ in range(2):
        store.finish_run(store.start_run("gh"), "failed", error=f"evil {HOSTILE} secret-ish")
    service = Service(settings, store, MappingState.load(settings), None)
    service.reload_errors["mapping"] = "okrs/main.toml:3: bad value"
    try:
        yield service
    finally:
        store.close()


def probe(service: Service, path: str, client: str | None) -> tuple[int, str, bytes]:
    """GET `path` from the daemon's web app as a caller at `client` (None: no address)."""
    app = create_app(WebContext(service.settings, service.store, service))
    peer = None if client is None else (client, 40000)
    transport = httpx.ASGITransport(app=app, client=peer)  # type: ignore[arg-type]

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://okrsync") as http:
            return await http.get(path)

    reply = asyncio.run(get())
    return reply.status_code, reply.headers["content-type"], reply.content


def _body(reply: tuple[int, str, bytes]) -> dict[str, Any]:
    result = json.loads(reply[2])
    assert isinstance(result, dict)
    return result


def test_readyz_gives_remote_callers_only_codes(failing_service: Service) -> None:
    """A non-loopback caller gets not-ready and stable codes, never the tracker's error text."""
    status, _, raw = probe(failing_service, "/readyz", REMOTE)
    assert status == 503
    assert _body((status, "", raw)) == {
        "ready": False,
        "codes": ["mapping_invalid", "connector_failing"],
    }
    assert b"evil" not in raw
    assert b"main.toml" not in raw
    assert set(_body((status, "", raw))["codes"]) <= set(NOT_READY)


def test_readyz_keeps_details_for_loopback_callers(failing_service: Service) -> None:
    """A loopback caller (IPv4 or IPv6) still gets each reason's detail and the mapping time."""
    for client in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        status, _, raw = probe(failing_service, "/readyz", client)
        body = json.loads(raw)
        assert status == 503
        assert body["codes"] == ["mapping_invalid", "connector_failing"]
        assert any("evil" in r for r in body["reasons"])
        assert any("main.toml:3" in r for r in body["reasons"])
        assert "mapping_loaded_at" in body


def test_healthz_shows_the_pid_only_on_loopback(failing_service: Service) -> None:
    """/healthz says alive to everyone; only a loopback caller sees the pid."""
    remote = _body(probe(failing_service, "/healthz", "10.1.2.3"))
    local = _body(probe(failing_service, "/healthz", LOCAL))
    unknown = _body(probe(failing_service, "/healthz", None))
    assert remote == {"status": "alive"}
    assert unknown == {"status": "alive"}
    assert set(local) == {"status", "pid"}


# -- file modes --------------------------------------------------------------------------------
def test_daemon_creates_store_wal_lock_and_log_private(tmp_path: Path) -> None:
    """A fresh SQLite store, its -wal/-shm, the lock file and the log file are all 0600."""
    log = tmp_path / "okrsync.log"
    db = tmp_path / "okrsync.db"
    with world(tmp_path, schedule="every 1s") as (_sb, cfg, env), daemon(cfg, env, log) as d:
        wait_for(lambda: any(e["event"] == "service.started" for e in events(log)), "start")
        wait_for(lambda: Path(f"{db}-wal").exists(), "the store's write-ahead log")
        paths = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}.lock"), log]
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths}
        assert d.stop() == 0
    assert modes == {p.name: 0o600 for p in paths}
