"""Reading sources on real engines: SQLite files for `sql`, CSV/JSON files for `file`, a
local JSON API (Starlette in process, and real sockets) for `http_json`; every failure is a
one-line SourceFailure without secrets."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from okrsync.sources import CLOCK_SKEW, Reading, SourceFailure, SourceSpec, read

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)


def spec(kind: str, **options: Any) -> SourceSpec:
    return SourceSpec(kind, options, 3600, "okrs.toml:12")


def take(
    s: SourceSpec,
    *,
    since: datetime | None = None,
    env: Mapping[str, str] | None = None,
    own: str = "sqlite:////nowhere/okrsync.db",
    http: httpx.AsyncClient | None = None,
) -> list[Reading]:
    return asyncio.run(read(s, since=since, now=NOW, env=env or {}, own_store_url=own, http=http))


def failure(s: SourceSpec, **kw: Any) -> str:
    with pytest.raises(SourceFailure) as caught:
        take(s, **kw)
    assert "\n" not in caught.value.reason
    return caught.value.reason


# -- sql on SQLite --------------------------------------------------------------------------


@pytest.fixture
def kpi_db(tmp_path: Path) -> str:
    """A SQLite file with kpi(day, v) rows on Oct 1, Nov 1 and Dec 1 2026; its URL."""
    path = tmp_path / "kpi.db"
    with sqlite3.connect(path) as c:
        c.execute("create table kpi (day text, v)")
        c.executemany(
            "insert into kpi values (?, ?)",
            [("2026-10-01", 1.0), ("2026-11-01", 2.5), ("2026-12-01", 4.0)],
        )
        c.execute("create table odd (v)")
        c.executemany("insert into odd values (?)", [("abc",), (float("nan"),), (1e999,)])
    return f"sqlite:///{path}"


def sql(query: str, **options: Any) -> SourceSpec:
    return spec("sql", url_env="KPI_DB", query=query, **options)


def test_sql_one_number_is_measured_now_and_a_timed_row_at_its_own_time(kpi_db: str) -> None:
    """One row of one column is a reading timed now; (time, value) carries the query's own
    timestamp."""
    env = {"KPI_DB": kpi_db}
    assert take(sql("select v from kpi order by day desc limit 1"), env=env) == [Reading(NOW, 4.0)]
    timed = sql("select day, v from kpi order by day desc limit 1")
    assert take(timed, env=env) == [Reading(datetime(2026, 12, 1, tzinfo=UTC), 4.0)]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("select v from kpi where day > '2027'", "empty result"),
        ("select v from kpi", "3 rows; the query must return one row"),
        ("select v from odd where rowid = 1", "not a number: 'abc'"),
        ("select null", "not a number: None"),
        ("select 1e999", "infinity"),
        ("select -1e999", "-infinity"),
        ("select 1, 2, 3", "3 columns; return (value) or (time, value)"),
        ("select nope from kpi", "no such column: nope"),
    ],
)
def test_sql_results_that_are_not_one_finite_number_fail(
    kpi_db: str, query: str, reason: str
) -> None:
    """Empty, several rows, a non-number, infinity, a bad shape or bad SQL: one line each."""
    assert failure(sql(query), env={"KPI_DB": kpi_db}) == reason


def test_sql_opens_sqlite_read_only_so_a_write_is_refused(kpi_db: str) -> None:
    """An UPDATE in a source's query is refused by SQLite itself (the file is opened
    mode=ro), and the data is unchanged."""
    reason = failure(sql("update kpi set v = 99 returning v"), env={"KPI_DB": kpi_db})
    assert reason == "attempt to write a readonly database"
    with sqlite3.connect(kpi_db.removeprefix("sqlite:///")) as c:
        assert c.execute("select max(v) from kpi").fetchone() == (4.0,)


def test_sql_refuses_okrsyncs_own_store_by_path(kpi_db: str, tmp_path: Path) -> None:
    """A URL naming the store's SQLite file, even spelled through another path, is refused
    before anything is read."""
    other = str(tmp_path / "sub" / ".." / "kpi.db")
    (tmp_path / "sub").mkdir()
    reason = failure(sql("select 1"), env={"KPI_DB": f"sqlite:///{other}"}, own=kpi_db)
    assert reason.startswith("this URL is okrsync's own store")


def test_sql_missing_variable_and_missing_file_fail_without_creating_it(tmp_path: Path) -> None:
    """An unset url_env names the variable; a SQLite file that does not exist is not created."""
    assert failure(sql("select 1")) == "environment variable KPI_DB (url_env) is not set"
    gone = tmp_path / "gone.db"
    assert failure(sql("select 1"), env={"KPI_DB": f"sqlite:///{gone}"}) == (
        "unable to open database file"
    )
    assert not gone.exists()


def test_sql_backfill_reads_rows_since_through_the_since_bind(kpi_db: str) -> None:
    """With `since`, backfill_query gets :since and every (time, value) row since is a
    reading, oldest first; without a backfill_query the current reading is taken."""
    s = sql(
        "select v from kpi order by day desc limit 1",
        backfill_query="select day, v from kpi where day >= :since order by day desc",
    )
    nov = datetime(2026, 10, 15, tzinfo=UTC)
    assert take(s, since=nov, env={"KPI_DB": kpi_db}) == [
        Reading(datetime(2026, 11, 1, tzinfo=UTC), 2.5),
        Reading(datetime(2026, 12, 1, tzinfo=UTC), 4.0),
    ]
    plain = sql("select v from kpi order by day desc limit 1")
    assert take(plain, since=OCT_1, env={"KPI_DB": kpi_db}) == [Reading(NOW, 4.0)]


def test_sql_statement_timeout_interrupts_a_long_query(kpi_db: str) -> None:
    """A query running past timeout_s is interrupted and says so."""
    slow = (
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < 100000000) "
        "select count(*) from n"
    )
    reason = failure(sql(slow, timeout_s=0.2), env={"KPI_DB": kpi_db})
    assert reason == "interrupted (the statement timeout passed)"


# -- file ----------------------------------------------------------------------------------


def test_file_csv_newest_row_is_the_reading_and_backfill_takes_rows_since(tmp_path: Path) -> None:
    """A `date,value` CSV (any row order, extra columns ignored): the newest dated row is the
    reading; a backfill takes every row since, oldest first; a future row is left out."""
    csv = tmp_path / "kpi.csv"
    csv.write_text(
        "Date,Value,comment\n2026-11-01,2.5,x\n2026-10-01,1,\n2026-12-01T06:00:00+01:00,4,\n"
        "2027-01-01,9,future\n"
    )
    assert take(spec("file", path=str(csv))) == [
        Reading(datetime(2026, 12, 1, 5, 0, tzinfo=UTC), 4.0)
    ]
    got = take(spec("file", path=str(csv)), since=datetime(2026, 10, 2, tzinfo=UTC))
    assert [r.value for r in got] == [2.5, 4.0]


def test_a_reading_a_little_ahead_of_our_clock_counts_as_taken_now(tmp_path: Path) -> None:
    """Clock skew (or the source's minute starting while we asked): a reading up to
    CLOCK_SKEW ahead of now is recorded at now; one further ahead is a forecast, left out."""
    js = tmp_path / "kpi.json"
    ahead = (NOW + timedelta(seconds=30)).timestamp()
    js.write_text(f'[{{"date": "2026-10-01", "value": 1}}, {{"date": {ahead}, "value": 2}}]')
    assert take(spec("file", path=str(js))) == [Reading(NOW, 2.0)]
    far = (NOW + CLOCK_SKEW + timedelta(seconds=1)).timestamp()
    js.write_text(f'[{{"date": "2026-10-01", "value": 1}}, {{"date": {far}, "value": 2}}]')
    assert take(spec("file", path=str(js))) == [Reading(datetime(2026, 10, 1, tzinfo=UTC), 1.0)]


def test_file_json_list_of_date_value_objects(tmp_path: Path) -> None:
    """A JSON list of {date, value}, dates as ISO text or epoch seconds: the newest is the
    reading."""
    js = tmp_path / "kpi.json"
    js.write_text('[{"date": "2026-10-01", "value": 1}, {"date": "2026-11-01", "value": "2.5"}]')
    assert take(spec("file", path=str(js))) == [Reading(datetime(2026, 11, 1, tzinfo=UTC), 2.5)]
    epoch = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
    js.write_text(f'[{{"date": {epoch}, "value": 3}}, {{"date": "{epoch + 60:.0f}", "value": 4}}]')
    assert take(spec("file", path=str(js))) == [
        Reading(datetime(2026, 11, 2, 0, 1, tzinfo=UTC), 4.0)
    ]


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("a.csv", "day,amount\n2026-10-01,1\n", "the CSV's first row must be a header naming"),
        ("a.csv", "date,value\n", "empty result"),
        ("a.csv", "date,value\n2026-10-01,abc\n", "row 2: not a number: 'abc'"),
        ("a.csv", "date,value\n2026-10-01,nan\n", "row 2: NaN"),
        ("a.csv", "date,value\n2026-10-01,inf\n", "row 2: infinity"),
        ("a.csv", "date,value\nsoon,1\n", "row 2: not a date: 'soon'"),
        ("a.json", '{"date": "2026-10-01"}', "the JSON must be a list of"),
        ("a.json", "[1,", "not JSON:"),
        ("a.csv", 'date,value\n2026-10-01,"1\n', "not CSV: unexpected end of data"),
    ],
)
def test_file_problems_fail_with_the_row(tmp_path: Path, name: str, text: str, reason: str) -> None:
    """A wrong header, no rows, a non-number, NaN, infinity, a bad date or bad JSON."""
    path = tmp_path / name
    path.write_text(text)
    assert failure(spec("file", path=str(path))).startswith(reason)


def test_file_that_does_not_exist_fails(tmp_path: Path) -> None:
    """A missing file names its path."""
    assert (
        failure(spec("file", path=str(tmp_path / "no.csv"))) == f"{tmp_path}/no.csv does not exist"
    )


# -- http_json -----------------------------------------------------------------------------

SEEN: list[dict[str, str]] = []


async def kpis(request: Request) -> Response:
    SEEN.append(dict(request.headers))
    return JSONResponse(
        {"data": {"kpis": [{"name": "nps", "value": 41.5, "at": "2026-12-07T09:00:00Z"},
                           {"name": "text", "value": "high"}, {"name": "nan", "value": "NaN"}]}}
    )  # fmt: skip


async def big(_: Request) -> Response:
    return Response(b"[" + b"1," * 600_000 + b"1]", media_type="application/json")


async def page(_: Request) -> Response:
    return Response("<html>not json</html>", media_type="text/html")


async def broken(_: Request) -> Response:
    return JSONResponse({"error": "down"}, status_code=503)


API = Starlette(
    routes=[
        Route("/kpis", kpis),
        Route("/big", big),
        Route("/page", page),
        Route("/broken", broken),
        Route("/moved", lambda _: RedirectResponse("/kpis")),
        Route("/away", lambda _: RedirectResponse("http://elsewhere.example/kpis")),
    ]
)


def api() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=API), base_url="http://kpi.test")


def hj(url: str = "http://kpi.test/kpis", **options: Any) -> SourceSpec:
    options.setdefault("expression", "data.kpis[?name=='nps'].value | [0]")
    return spec("http_json", url=url, **options)


def test_http_json_picks_the_number_with_jmespath_and_sends_env_headers() -> None:
    """The expression picks the value; time_expression its time; token_env and headers_env
    become headers."""
    SEEN.clear()
    s = hj(time_expression="data.kpis[?name=='nps'].at | [0]", token_env="TOK",
           headers_env={"X-Api-Key": "KEY"})  # fmt: skip
    got = take(s, env={"TOK": "sekrit-token", "KEY": "k-123"}, http=api())
    assert got == [Reading(datetime(2026, 12, 7, 9, 0, tzinfo=UTC), 41.5)]
    assert SEEN[0]["authorization"] == "Bearer sekrit-token"
    assert SEEN[0]["x-api-key"] == "k-123"
    assert take(hj(), http=api()) == [Reading(NOW, 41.5)]


@pytest.mark.parametrize(
    ("s", "reason"),
    [
        (hj(expression="data.kpis[?name=='x'].value | [0]"), "empty result: the expression"),
        (hj(expression="data.kpis[?name=='text'].value | [0]"), "not a number: 'high'"),
        (hj(expression="data.kpis[?name=='nan'].value | [0]"), "NaN"),
        (hj(expression="data.kpis"), "not a number: [{"),
        (hj("http://kpi.test/big"), "response over 1048576 bytes"),
        (hj("http://kpi.test/page"), "not JSON: http://kpi.test/page"),
        (hj("http://kpi.test/broken"), "HTTP 503 from http://kpi.test/broken"),
        (hj("http://kpi.test/away"), "redirect to another origin refused"),
        (hj("file:///etc/passwd"), "only http and https URLs are read"),
        (hj(token_env="TOK"), "environment variable TOK (token_env) is not set"),
    ],
)
def test_http_json_failures(s: SourceSpec, reason: str) -> None:
    """Nothing picked, a non-number, NaN, a list, an oversized, non-JSON or failed response,
    a redirect off origin, a non-http URL and an unset variable: each a one-line reason."""
    assert failure(s, http=api()).startswith(reason)


def test_http_json_follows_a_redirect_within_its_origin() -> None:
    """A redirect to the same origin is followed."""
    assert take(hj("http://kpi.test/moved"), http=api()) == [Reading(NOW, 41.5)]


def test_http_json_refuses_an_off_origin_redirect_even_on_a_following_client() -> None:
    """A caller's client that follows redirects still never carries the token elsewhere."""
    SEEN.clear()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=API), base_url="http://kpi.test", follow_redirects=True
    )
    s = hj("http://kpi.test/away", token_env="TOK")
    assert failure(s, env={"TOK": "sekrit-token"}, http=client).startswith(
        "redirect to another origin refused: http://kpi.test/away -> http://elsewhere.example/"
    )
    assert SEEN == []


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield server.getsockname()[1]
    stop.set()
    t.join()
    for c in held:
        c.close()
    server.close()


def test_http_json_timeout_and_unreachable_over_real_sockets(silent_port: int) -> None:
    """A server that never answers times out after timeout_s; a closed port is unreachable;
    a token in the URL's query never shows in the reason."""
    slow = hj(f"http://127.0.0.1:{silent_port}/kpis", timeout_s=0.3)
    assert failure(slow) == f"timeout after 0.3s: http://127.0.0.1:{silent_port}/kpis"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    reason = failure(hj(f"http://127.0.0.1:{closed}/kpis?token=abc123secret"))
    assert reason.startswith(f"unreachable: http://127.0.0.1:{closed}/kpis?token=")
    assert "abc123secret" not in reason
