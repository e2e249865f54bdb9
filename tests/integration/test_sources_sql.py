"""The `sql` source on the throwaway PostgreSQL: read-only transaction, statement timeout,
NaN, and refusal of okrsync's own store (same host, port and database); and readings
recorded through the store on both backends: check-ins with their source, run rows, no
duplicates on a second backfill, earlier check-ins untouched by a failure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from okrsync.okrfile import load_tree
from okrsync.sources import Reading, SourceFailure, SourceSpec, read
from okrsync.store import Store
from tests.helpers import TREE, write

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.postgres


@pytest.fixture
def kpi_pg(pg_url: str) -> str:
    """A PostgreSQL database with kpi(day, v): Oct 1 = 1, Nov 1 = 2.5, Dec 1 = 4."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as c:
        c.execute(sa.text("create table kpi (day date, v numeric)"))
        c.execute(sa.text("insert into kpi values ('2026-10-01', 1), ('2026-11-01', 2.5), "
                          "('2026-12-01', 4)"))  # fmt: skip
    engine.dispose()
    return pg_url


def take(
    query: str, url: str, *, own: str = "sqlite:////x/okrsync.db", **opts: object
) -> list[Reading]:
    s = SourceSpec("sql", {"url_env": "KPI", "query": query, **opts}, 3600, "okrs.toml:3")
    return asyncio.run(read(s, since=None, now=NOW, env={"KPI": url}, own_store_url=own))


def reason(query: str, url: str, **kw: object) -> str:
    with pytest.raises(SourceFailure) as caught:
        take(query, url, **kw)  # type: ignore[arg-type]
    return caught.value.reason


def test_postgresql_reads_a_numeric_and_refuses_writes_in_a_read_only_transaction(
    kpi_pg: str,
) -> None:
    """A numeric is read as a float; an UPDATE is refused by PostgreSQL (read-only
    transaction) and the row is unchanged."""
    assert take("select v from kpi order by day desc limit 1", kpi_pg) == [Reading(NOW, 4.0)]
    assert reason("update kpi set v = 99 returning v", kpi_pg) == (
        "cannot execute UPDATE in a read-only transaction"
    )
    assert take("select max(v) from kpi", kpi_pg) == [Reading(NOW, 4.0)]


def test_postgresql_statement_timeout_and_nan(kpi_pg: str) -> None:
    """pg_sleep past timeout_s is cancelled by statement_timeout; 'NaN'::float is NaN."""
    assert reason("select pg_sleep(5), 1", kpi_pg, timeout_s=0.5) == (
        "canceling statement due to statement timeout"
    )
    assert reason("select 'NaN'::float", kpi_pg) == "NaN"
    assert reason("select 'Infinity'::float", kpi_pg) == "infinity"


def test_postgresql_own_store_is_refused_by_host_port_and_database(kpi_pg: str) -> None:
    """The store's own database, even as `localhost` for 127.0.0.1, is refused; another
    database on the same server is read."""
    same = kpi_pg.replace("127.0.0.1", "localhost")
    assert reason("select 1", same, own=kpi_pg).startswith("this URL is okrsync's own store")
    other = kpi_pg.rsplit("/", 1)[0] + "/postgres"
    assert take("select 1", other, own=kpi_pg) == [Reading(NOW, 1.0)]


def test_postgresql_unreachable_server_fails_in_one_line_without_the_password() -> None:
    """A closed port fails fast, in one line, and the URL's password is not in it."""
    got = reason("select 1", "postgresql+psycopg://u:hunter2pw@127.0.0.1:1/db", timeout_s=2)
    assert "hunter2pw" not in got
    assert "127.0.0.1" in got


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql")])
def test_recorded_readings_are_checkins_with_their_source_and_never_duplicated(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Readings become check-ins (author source:sql, at their own time, no confidence, no
    note) with a run row "ok"; the same backfill again adds none; a failure adds a "failed"
    run and leaves every check-in as it was."""
    url = (
        f"sqlite:///{tmp_path / 's.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    store = Store.open(url)
    try:
        write(tmp_path / "m" / "okrs.toml", TREE)
        store.apply_okr_tree(load_tree([tmp_path / "m"]))
        store.add_checkin("conv", 8.5, author="dana", at=datetime(2026, 10, 1, tzinfo=UTC))
        rows = [(datetime(2026, 10, d, tzinfo=UTC), float(d)) for d in (1, 2, 3)]
        first = store.record_readings("conv", "sql", rows)
        again = store.record_readings("conv", "sql", rows)
        assert (first.added, first.skipped, again.added, again.skipped) == (3, 0, 0, 3)
        failed = store.record_source_failure("conv", "empty result")
        got = store.checkins("conv")
        assert [(c.author, c.value) for c in got] == [
            ("dana", 8.5), ("source:sql", 1.0), ("source:sql", 2.0), ("source:sql", 3.0)
        ]  # fmt: skip
        assert {(c.confidence, c.note) for c in got if c.author == "source:sql"} == {(None, None)}
        runs = store.runs("source:conv")
        assert [(r.id, r.status, r.error) for r in runs] == [
            (failed, "failed", "empty result"), (again.run_id, "ok", None),
            (first.run_id, "ok", None),
        ]  # fmt: skip
        assert [a.action for a in store.checkin_audit("conv")] == ["add"] * 4
    finally:
        store.close()
