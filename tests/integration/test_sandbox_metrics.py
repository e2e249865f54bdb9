"""The sandbox's metric APIs over a real socket: the fake Prometheus answers in the shapes of
Prometheus's own example responses (tests/fixtures/prometheus/), with its error types, limits,
auth and faults; the KPI JSON API serves current values and a daily history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from okrsync.sandbox import Sandbox, metrics

FIXTURES = Path(__file__).parents[1] / "fixtures" / "prometheus"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONVERSION = "kpi_trial_conversion_pct"


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(seed=1, sizes={}) as sandbox:
        yield sandbox


def prom(sb: Sandbox, **headers: str) -> httpx.Client:
    auth = {"Authorization": f"Bearer {sb.credentials['prometheus_token']}"}
    return httpx.Client(base_url=sb.base_url("prometheus"), timeout=5, headers=headers or auth)


def kpi(sb: Sandbox) -> httpx.Client:
    auth = {"Authorization": f"Bearer {sb.credentials['metrics_json_token']}"}
    return httpx.Client(base_url=sb.base_url("metrics_json"), timeout=5, headers=auth)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def keys(value: Any) -> Any:
    """The shape of a JSON value: dict keys (recursively, labels aside), the distinct shapes
    of a list's items, leaf types."""
    if isinstance(value, dict):
        return {k: keys(v) for k, v in value.items() if k != "metric"}
    if isinstance(value, list):
        shapes: list[Any] = []
        for shape in map(keys, value):
            if shape not in shapes:
                shapes.append(shape)
        return shapes
    return "number" if isinstance(value, int | float) else type(value).__name__


def instant(sb: Sandbox, query: str, at: datetime = T0) -> httpx.Response:
    with prom(sb) as c:
        return c.get("/api/v1/query", params={"query": query, "time": at.timestamp()})


def ranged(sb: Sandbox, query: str, step: str = "1h", hours: int = 3) -> httpx.Response:
    start = T0 - timedelta(hours=hours)
    params = {"query": query, "start": start.isoformat(), "end": T0.isoformat(), "step": step}
    with prom(sb) as c:
        return c.get("/api/v1/query_range", params=params)


# --- Prometheus: shapes ---------------------------------------------------------------------


def test_instant_vector_has_the_documented_shape(sb: Sandbox) -> None:
    """An instant query answers like Prometheus's vector example, stamped at `time`."""
    resp = instant(sb, CONVERSION)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert keys(body) == keys(fixture("query_vector.json"))
    (series,) = body["data"]["result"]
    assert series["metric"] == {"__name__": CONVERSION, "job": "analytics", "product": "app"}
    assert series["value"] == [
        T0.timestamp(),
        metrics.fmt_value(metrics.sample(CONVERSION, T0.timestamp())),
    ]


def test_scalar_has_the_documented_shape(sb: Sandbox) -> None:
    """`scalar(...)` and a number literal answer like Prometheus's scalar example."""
    for query, value in [("scalar(kpi_weekly_active_users)", None), ("42", "42")]:
        body = instant(sb, query).json()
        assert keys(body) == keys(fixture("query_scalar.json"))
        assert body["data"]["result"][0] == T0.timestamp()
        if value is not None:
            assert body["data"]["result"][1] == value


def test_range_query_has_the_documented_shape_and_step(sb: Sandbox) -> None:
    """A range query answers a matrix like Prometheus's example, samples at start + k·step."""
    body = ranged(sb, CONVERSION, step="1h", hours=3).json()
    assert keys(body) == keys(fixture("query_range_matrix.json"))
    (series,) = body["data"]["result"]
    stamps = [(T0 - timedelta(hours=h)).timestamp() for h in (3, 2, 1, 0)]
    assert [t for t, _ in series["values"]] == stamps
    assert [v for _, v in series["values"]] == [
        metrics.fmt_value(metrics.sample(CONVERSION, t)) for t in stamps
    ]


def test_two_series_come_back_for_up(sb: Sandbox) -> None:
    """`up` has two series, as in Prometheus's documented examples."""
    body = instant(sb, "up").json()
    assert keys(body) == keys(fixture("docs_query_vector.json"))
    assert [s["metric"]["job"] for s in body["data"]["result"]] == ["prometheus", "node"]
    assert len(ranged(sb, "up").json()["data"]["result"]) == 2


def test_label_matchers_and_sum_select_series(sb: Sandbox) -> None:
    """`{job="node"}` keeps one `up` series; `sum(up)` is one series without labels."""
    (node,) = instant(sb, 'up{job="node"}').json()["data"]["result"]
    assert node["value"][1] == "0"
    (total,) = instant(sb, "sum(up)").json()["data"]["result"]
    assert total == {"metric": {}, "value": [T0.timestamp(), "1"]}
    assert instant(sb, 'up{job!="node"}').json()["data"]["result"][0]["value"][1] == "1"


def test_no_samples_before_the_series_start(sb: Sandbox) -> None:
    """Before SERIES_START there is nothing: an empty vector."""
    at = datetime.fromtimestamp(metrics.SERIES_START, UTC) - timedelta(days=1)
    assert instant(sb, CONVERSION, at).json()["data"] == {"resultType": "vector", "result": []}


def test_post_form_encoded_query_is_served(sb: Sandbox) -> None:
    """POST with form-encoded parameters works as GET does."""
    with prom(sb) as c:
        resp = c.post("/api/v1/query", data={"query": "sum(up)", "time": str(T0.timestamp())})
    assert resp.json()["data"]["result"][0]["value"] == [T0.timestamp(), "1"]


# --- Prometheus: errors and auth ----------------------------------------------------------------


def test_parse_error_is_bad_data(sb: Sandbox) -> None:
    """An expression outside the subset is a 400 bad_data in Prometheus's error shape."""
    resp = instant(sb, "rate(x[5m]")
    assert resp.status_code == 400
    assert keys(resp.json()) == keys(fixture("error_bad_data.json"))
    assert resp.json()["errorType"] == "bad_data"


def test_too_many_points_is_prometheus_own_error(sb: Sandbox) -> None:
    """Over 11,000 points per series the answer is Prometheus's own bad_data message."""
    resp = ranged(sb, CONVERSION, step="1m", hours=24 * 8)
    assert resp.status_code == 400
    assert resp.json() == fixture("error_bad_data.json")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"step": "0"}, 'invalid parameter "step": zero or negative'),
        ({"step": "fast"}, 'invalid parameter "step": cannot parse "fast"'),
        ({"start": "yesterday"}, 'invalid parameter "start": cannot parse "yesterday"'),
    ],
)
def test_bad_range_parameters_are_bad_data(
    sb: Sandbox, params: dict[str, str], message: str
) -> None:
    """Bad start or step answer 400 with Prometheus's invalid-parameter message."""
    query = {"query": "up", "start": "0", "end": "3600", "step": "60", **params}
    with prom(sb) as c:
        resp = c.get("/api/v1/query_range", params=query)
    assert resp.status_code == 400
    assert resp.json()["error"].startswith(message)


def test_auth_bearer_or_basic_else_401(sb: Sandbox) -> None:
    """Bearer token or basic auth is served; anything else is a plain-text 401."""
    c = sb.credentials
    with prom(sb, Authorization="Bearer nope") as bad:
        resp = bad.get("/api/v1/query", params={"query": "up"})
    assert resp.status_code == 401
    assert resp.text == "Unauthorized\n"
    basic = httpx.BasicAuth(c["prometheus_username"], c["prometheus_password"])
    with httpx.Client(base_url=sb.base_url("prometheus"), auth=basic, timeout=5) as ok:
        assert ok.get("/api/v1/query", params={"query": "up"}).status_code == 200


def test_unknown_path_is_404(sb: Sandbox) -> None:
    """Only the two query endpoints exist."""
    with prom(sb) as c:
        assert c.get("/api/v1/labels").status_code == 404


# --- Prometheus: faults -------------------------------------------------------------------------


def test_injected_500_has_the_error_shape(sb: Sandbox) -> None:
    """A transport 500 answers Prometheus's error envelope, then the next request is served."""
    sb.inject("prometheus", "500")
    resp = instant(sb, CONVERSION)
    assert resp.status_code == 500
    assert keys(resp.json()) == keys(fixture("error_tsdb_not_ready.json"))
    assert instant(sb, CONVERSION).status_code == 200


def test_nan_fault(sb: Sandbox) -> None:
    """`nan` makes the instant value "NaN" and every 2nd range sample from the first."""
    sb.inject("prometheus", "nan")
    assert instant(sb, CONVERSION).json()["data"]["result"][0]["value"][1] == "NaN"
    sb.inject("prometheus", "nan", value="+Inf")
    assert instant(sb, CONVERSION).json()["data"]["result"][0]["value"][1] == "+Inf"
    sb.inject("prometheus", "nan")
    values = ranged(sb, CONVERSION).json()["data"]["result"][0]["values"]
    assert [v == "NaN" for _, v in values] == [True, False, True, False]


def test_empty_and_two_series_faults(sb: Sandbox) -> None:
    """`empty` answers no series; `two_series` a twin labelled replica="b"."""
    sb.inject("prometheus", "empty")
    assert instant(sb, CONVERSION).json()["data"]["result"] == []
    sb.inject("prometheus", "two_series", path_contains="query_range")
    result = ranged(sb, CONVERSION).json()["data"]["result"]
    assert [s["metric"].get("replica") for s in result] == [None, "b"]
    assert result[0]["values"] == result[1]["values"]


def test_error_status_fault(sb: Sandbox) -> None:
    """`error_status` answers status "error" with the given HTTP status and errorType."""
    sb.inject(
        "prometheus", "error_status", status=503, errorType="timeout", error="query timed out"
    )
    resp = instant(sb, CONVERSION)
    assert resp.status_code == 503
    assert resp.json() == {"status": "error", "errorType": "timeout", "error": "query timed out"}


def test_offorigin_link_is_a_redirect_to_the_witness(sb: Sandbox) -> None:
    """`offorigin_link` answers a 302 to the same path on the witness listener."""
    sb.inject("prometheus", "offorigin_link")
    resp = instant(sb, CONVERSION)
    assert resp.status_code == 302
    assert resp.headers["location"].startswith(f"{sb.witness.origin}/prometheus/api/v1/query?")


def test_faults_injected_over_the_admin_api(sb: Sandbox) -> None:
    """The control endpoint `/_sandbox/inject` takes metric faults like tracker faults."""
    with httpx.Client(timeout=5) as c:
        admin = f"http://127.0.0.1:{sb.port}/_sandbox/inject"
        ok = c.post(admin, json={"tracker": "prometheus", "fault": "empty"})
        assert ok.json() == {"ok": True}
        bad = c.post(admin, json={"tracker": "github", "fault": "two_series"})
        assert bad.status_code == 400
        assert "does not apply to 'github'" in bad.json()["error"]
    assert instant(sb, CONVERSION).json()["data"]["result"] == []


# --- the KPI JSON API ---------------------------------------------------------------------------


def test_kpi_now(sb: Sandbox) -> None:
    """`/kpi` answers each KPI's number and the minute it was measured."""
    with kpi(sb) as c:
        data = c.get("/kpi").json()["data"]
    as_of = datetime.fromisoformat(data["conversion"]["as_of"])
    assert abs((datetime.now(UTC) - as_of).total_seconds()) < 120
    assert data["conversion"]["pct"] == metrics.sample(CONVERSION, as_of.timestamp())
    assert isinstance(data["weekly_active_users"]["count"], int)


def test_kpi_history(sb: Sandbox) -> None:
    """`/kpi/history` answers one point a day from `since` to today, oldest first."""
    since = datetime.now(UTC).date() - timedelta(days=6)
    with kpi(sb) as c:
        body = c.get("/kpi/history", params={"metric": "conversion", "since": str(since)}).json()
    points = body["data"]["points"]
    assert [p["date"] for p in points] == [str(since + timedelta(days=n)) for n in range(7)]
    midnight = datetime.combine(date.fromisoformat(points[0]["date"]), datetime.min.time(), UTC)
    assert points[0]["value"] == metrics.sample(CONVERSION, midnight.timestamp())


def test_kpi_errors_auth_and_faults(sb: Sandbox) -> None:
    """Unknown metric 404, bad since 400, wrong token 401; `nan` and `empty` faults."""
    with kpi(sb) as c:
        assert c.get("/kpi/history", params={"metric": "nps"}).status_code == 404
        assert (
            c.get("/kpi/history", params={"metric": "conversion", "since": "x"}).status_code == 400
        )
        assert c.get("/kpi", headers={"Authorization": "Bearer no"}).status_code == 401
        sb.inject("metrics_json", "nan")
        assert c.get("/kpi").json()["data"]["conversion"]["pct"] == "NaN"
        sb.inject("metrics_json", "empty")
        assert c.get("/kpi").json() == {"data": {}}
        sb.inject("metrics_json", "500")
        assert c.get("/kpi").json() == {"error": "Sandbox injected server error"}
