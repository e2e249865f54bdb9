"""Fake metric APIs for measured key results: Prometheus's query API and a small KPI JSON API.

`/prometheus` speaks Prometheus's HTTP API (docs/querying/api.md in prometheus/prometheus):
GET or POST `/api/v1/query` (`query`, `time`) and `/api/v1/query_range` (`query`, `start`,
`end`, `step`), with the documented envelope, result types, error types and status codes
(400 bad_data, 422 execution), the 11,000-points-per-series limit and its message. The PromQL
is a small subset: `name`, `name{label="value",...}` (`=` and `!=`), `sum(...)`, `scalar(...)`
and a number literal; anything else is a 400 parse error. Every series is a pure function of
time (`sample(name, t)`), so a test computes what an answer holds; samples exist from
`SERIES_START` on. As in Prometheus, an instant query's sample carries the evaluation time and
a range query's samples sit at start + k·step; `scalar()` of anything but one series is NaN.

    kpi_trial_conversion_pct{job="analytics",product="app"}      3.0 ± 0.8, a 30-day wave
    kpi_api_latency_p95_seconds{job="api",service="checkout"}    0.25 ± 0.05, a 7-day wave
    kpi_weekly_active_users{job="analytics",product="app"}       1000 + 5 a day since SERIES_START
    up{job="prometheus",instance="localhost:9090"} 1, up{job="node",instance="localhost:9100"} 0

`/metrics-json` is a KPI API for the `http_json` source kind: `GET /kpi` answers
`{"data": {"conversion": {"pct": 3.4, "as_of": "..."}, "weekly_active_users": {"count": ...,
"as_of": ...}}}` (the same functions at the current minute) and `GET /kpi/history?metric=
conversion&since=YYYY-MM-DD` `{"data": {"metric": ..., "points": [{"date": ..., "value": ...},
...]}}`, one point a day at 00:00 UTC up to today (default: the last 30 days, at most 366).

Auth: `/prometheus` takes `Bearer <prometheus_token>` or Basic `prometheus_username` /
`prometheus_password` (401 text "Unauthorized" otherwise, as Prometheus's web config does);
`/metrics-json` takes `Bearer <metrics_json_token>`.

Faults (`Sandbox.inject("prometheus" | "metrics_json", kind, ...)`): the transport faults
(`500`, `slow`, `reset`, `truncate`, `invalid_json`, ...) and `offorigin_link` (here: a 302 to
`origin` + the same path; Prometheus only) apply as on the trackers; the metric faults are:

* `nan`: the value is `value` (default "NaN"; "+Inf" and "-Inf" work too); on a range query or
  a history, every `every`-th sample from the first (default 2); the KPI API sends the string.
* `empty`: no series (an empty vector or matrix); the KPI API `{"data": {}}` / no points.
* `two_series` (Prometheus): a second series beside each, its labels plus `replica="b"`.
* `error_status` (Prometheus): `{"status": "error", "errorType": errorType, "error": error}`
  with HTTP `status` (defaults 422, "execution", "query processing would load too many
  samples into memory in query execution").
"""

from __future__ import annotations

import base64
import math
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from okrsync.sandbox._core import Env, Request, Response, json_response
from okrsync.sandbox._faults import METRIC_FAULT_TRACKERS, METRIC_TRACKERS, Fault

TRACKERS = METRIC_TRACKERS
METRIC_FAULTS = frozenset(METRIC_FAULT_TRACKERS)
SERIES_START = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
MAX_POINTS = 11_000
DAY = 86_400.0

Labels = dict[str, str]
Sample = tuple[Labels, float]


def _conversion(t: float) -> float:
    return round(3.0 + 0.8 * math.sin(2 * math.pi * t / (30 * DAY)), 3)


def _latency(t: float) -> float:
    return round(0.25 + 0.05 * math.cos(2 * math.pi * t / (7 * DAY)), 4)


def _active_users(t: float) -> float:
    return float(1000 + 5 * int((t - SERIES_START) // DAY))


@dataclass(frozen=True, slots=True)
class Series:
    """One time series: its labels (`__name__` included) and its value at any time."""

    labels: Labels
    at: Callable[[float], float]


SERIES = (
    Series(
        {"__name__": "kpi_trial_conversion_pct", "job": "analytics", "product": "app"}, _conversion
    ),
    Series(
        {"__name__": "kpi_api_latency_p95_seconds", "job": "api", "service": "checkout"}, _latency
    ),
    Series(
        {"__name__": "kpi_weekly_active_users", "job": "analytics", "product": "app"},
        _active_users,
    ),
    Series({"__name__": "up", "instance": "localhost:9090", "job": "prometheus"}, lambda t: 1.0),
    Series({"__name__": "up", "instance": "localhost:9100", "job": "node"}, lambda t: 0.0),
)


def sample(name: str, t: float) -> float:
    """The value of the first series called `name` at unix time `t` (what a test expects)."""
    return next(s.at(t) for s in SERIES if s.labels["__name__"] == name)


# --- PromQL, the subset -------------------------------------------------------------------


class BadData(ValueError):
    """A request Prometheus answers with 400 bad_data; the message is Prometheus's."""


@dataclass(frozen=True, slots=True)
class Expr:
    """`fn` is "" (a selector), "sum", "scalar" or "number"."""

    fn: str
    name: str = ""
    matchers: tuple[tuple[str, str, str], ...] = ()
    number: float = 0.0


_SELECTOR = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(?P<labels>[^{}]*)\})?")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(!=|=)\s*"([^"\\]*)"\s*')
_CALL = re.compile(r"(sum|scalar)\s*\((.*)\)")


def parse(query: str) -> Expr:
    text = query.strip()
    try:
        return Expr("number", number=float(text))
    except ValueError:
        pass
    call = _CALL.fullmatch(text)
    if call:
        inner = parse(call.group(2))
        if inner.fn not in ("", "sum"):
            raise BadData(f'1:1: parse error: unsupported argument to {call.group(1)}: "{text}"')
        return Expr(call.group(1), inner.name, inner.matchers) if not inner.fn else inner
    sel = _SELECTOR.fullmatch(text)
    if sel is None:
        raise BadData(f'1:1: parse error: unexpected character in "{text}"')
    return Expr("", sel.group("name"), _matchers(sel.group("labels") or "", text))


def _matchers(body: str, text: str) -> tuple[tuple[str, str, str], ...]:
    parts = [p for p in body.split(",") if p.strip()]
    found = [_MATCHER.fullmatch(p) for p in parts]
    if not all(found):
        raise BadData(f'1:1: parse error: bad label matcher in "{text}"')
    return tuple((m.group(1), m.group(2), m.group(3)) for m in found if m)


def _selected(expr: Expr) -> list[Series]:
    def keeps(s: Series) -> bool:
        ok = s.labels["__name__"] == expr.name
        for label, op, value in expr.matchers:
            ok = ok and ((s.labels.get(label, "") == value) == (op == "="))
        return ok

    return [s for s in SERIES if keeps(s)]


def evaluate(expr: Expr, t: float) -> tuple[str, list[Sample] | float]:
    """("scalar", value) or ("vector", [(labels, value), ...]) at unix time `t`."""
    if expr.fn == "number":
        return "scalar", expr.number
    live = [s for s in _selected(expr) if t >= SERIES_START]
    if expr.fn == "scalar":
        return "scalar", live[0].at(t) if len(live) == 1 else math.nan
    if expr.fn == "sum":
        return "vector", [({}, sum(s.at(t) for s in live))] if live else []
    return "vector", [(dict(s.labels), s.at(t)) for s in live]


# --- formats ------------------------------------------------------------------------------


def fmt_value(v: float) -> str:
    """A sample value as Prometheus writes it: "NaN", "+Inf", "-Inf", else no exponent."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = format(Decimal(repr(v)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_time(t: float) -> float | int:
    """Seconds with millisecond precision, a whole number when it is one (as Prometheus)."""
    ms = round(t * 1000)
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def parse_time(text: str, param: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise BadData(f'invalid parameter "{param}": cannot parse "{text}" to a valid timestamp')
    return when.timestamp()


_UNITS = {"y": 365 * DAY, "w": 7 * DAY, "d": DAY, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)


def parse_duration(text: str, param: str) -> float:
    """Float seconds or a Prometheus duration ("1h30m"), as the API's `parseDuration`."""
    try:
        return float(text)
    except ValueError:
        pass
    m = _DURATION.fullmatch(text)
    if not text or m is None:
        raise BadData(f'invalid parameter "{param}": cannot parse "{text}" to a valid duration')
    units = ("y", "w", "d", "h", "m", "s", "ms")
    return sum(int(n) * _UNITS[u] for n, u in zip(m.groups(), units, strict=True) if n)


def success(data: dict[str, Any]) -> Response:
    return json_response(200, {"status": "success", "data": data})


def prom_error(status: int, error_type: str, message: str) -> Response:
    return json_response(status, {"status": "error", "errorType": error_type, "error": message})


def error(tracker: str, status: int, message: str) -> Response:
    """A transport fault's body: Prometheus's error envelope, or the KPI API's."""
    if tracker == "metrics_json":
        return json_response(status, {"error": message})
    kind = {400: "bad_data", 404: "not_found", 422: "execution", 503: "unavailable"}
    return prom_error(status, kind.get(status, "internal"), message)


# --- Prometheus endpoints -----------------------------------------------------------------


def _params(req: Request) -> dict[str, str]:
    params = dict(req.query)
    if req.method == "POST" and req.body:
        params.update(urllib.parse.parse_qsl(req.body.decode("utf-8", "replace")))
    return params


def _prom_authorized(req: Request, env: Env) -> bool:
    auth = req.headers.get("authorization", "")
    user, password = env.credentials["prometheus_username"], env.credentials["prometheus_password"]
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return auth in (f"Bearer {env.credentials['prometheus_token']}", f"Basic {basic}")


def _unauthorized() -> Response:
    headers = [("WWW-Authenticate", 'Basic realm="prometheus"')]
    return Response(401, b"Unauthorized\n", headers, "text/plain; charset=utf-8")


def _not_found() -> Response:
    return Response(404, b"404 page not found\n", [], "text/plain; charset=utf-8")


def _redirect(req: Request, fault: Fault) -> Response:
    target = str(fault.params["origin"]).rstrip("/") + "/prometheus" + req.path
    query = f"?{req.raw_query}" if req.raw_query else ""
    return Response(302, b"", [("Location", target + query)], "text/plain; charset=utf-8")


def handle(req: Request, env: Env) -> Response:
    """Serve one request under `/prometheus` or `/metrics-json`."""
    if req.tracker == "metrics_json":
        return _handle_kpi(req, env)
    if not _prom_authorized(req, env):
        return _unauthorized()
    if req.path not in ("/api/v1/query", "/api/v1/query_range"):
        return _not_found()
    hostile = env.faults.take(req.tracker, req.path, frozenset({"offorigin_link"}))
    if hostile is not None:
        return _redirect(req, hostile)
    fault = env.faults.take(req.tracker, req.path, METRIC_FAULTS)
    if fault is not None and fault.kind == "error_status":
        p = fault.params
        message = "query processing would load too many samples into memory in query execution"
        return prom_error(
            int(p.get("status", 422)), str(p.get("errorType", "execution")), p.get("error", message)
        )
    try:
        if req.path == "/api/v1/query":
            return success(_instant(_params(req), fault))
        return success(_range(_params(req), fault))
    except BadData as exc:
        return prom_error(400, "bad_data", str(exc))


def _instant(params: dict[str, str], fault: Fault | None) -> dict[str, Any]:
    t = parse_time(params["time"], "time") if params.get("time") else time.time()
    expr = parse(params.get("query", ""))
    kind, result = evaluate(expr, t)
    if isinstance(result, float):
        value = _faulted_value(fault, result, 0)
        if fault is not None and fault.kind == "empty":
            return {"resultType": "vector", "result": []}
        return {"resultType": "scalar", "result": [fmt_time(t), value]}
    series = [{"metric": labels, "value": [fmt_time(t), fmt_value(v)]} for labels, v in result]
    series = _faulted_series(fault, series, "value")
    return {"resultType": kind, "result": series}


def _faulted_value(fault: Fault | None, value: float, index: int) -> str:
    if fault is None or fault.kind != "nan" or index % int(fault.params.get("every", 2)):
        return fmt_value(value)
    return str(fault.params.get("value", "NaN"))


def _faulted_series(
    fault: Fault | None, series: list[dict[str, Any]], key: str
) -> list[dict[str, Any]]:
    if fault is None:
        return series
    if fault.kind == "empty":
        return []
    if fault.kind == "two_series":
        twins = [{**s, "metric": {**s["metric"], "replica": "b"}} for s in series]
        return [x for pair in zip(series, twins, strict=True) for x in pair]
    if fault.kind == "nan" and key == "value":
        for s in series:
            s["value"][1] = str(fault.params.get("value", "NaN"))
    return series


def _range(params: dict[str, str], fault: Fault | None) -> dict[str, Any]:
    for name in ("start", "end", "step"):
        if not params.get(name):
            raise BadData(f'invalid parameter "{name}": cannot parse "" to a valid timestamp')
    start, end = parse_time(params["start"], "start"), parse_time(params["end"], "end")
    step = parse_duration(params["step"], "step")
    if end < start:
        raise BadData('invalid parameter "end": end timestamp must not be before start time')
    if step <= 0:
        raise BadData(
            'invalid parameter "step": zero or negative query resolution step widths are not '
            "accepted. Try a positive integer"
        )
    if (end - start) / step > MAX_POINTS:
        raise BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
            "query resolution (?step=XX)"
        )
    expr = parse(params.get("query", ""))
    series = _matrix(expr, start, end, step, fault)
    return {"resultType": "matrix", "result": _faulted_series(fault, series, "values")}


def _matrix(
    expr: Expr, start: float, end: float, step: float, fault: Fault | None
) -> list[dict[str, Any]]:
    by_labels: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
    steps = int((end - start) // step)
    for k in range(steps + 1):
        t = start + k * step
        _, result = evaluate(expr, t)
        samples = [({}, result)] if isinstance(result, float) else result
        for labels, v in samples:
            values = by_labels.setdefault(tuple(sorted(labels.items())), [])
            values.append([fmt_time(t), _faulted_value(fault, v, len(values))])
    return [{"metric": dict(key), "values": values} for key, values in sorted(by_labels.items())]


# --- the KPI JSON API ---------------------------------------------------------------------

KPIS: dict[str, tuple[str, Callable[[float], float]]] = {
    "conversion": ("pct", _conversion),
    "weekly_active_users": ("count", _active_users),
}


def _kpi_number(fault: Fault | None, value: float, index: int) -> float | int | str:
    if fault is not None and fault.kind == "nan" and not index % int(fault.params.get("every", 2)):
        return str(fault.params.get("value", "NaN"))
    return int(value) if value.is_integer() else value


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _handle_kpi(req: Request, env: Env) -> Response:
    if req.headers.get("authorization", "") != f"Bearer {env.credentials['metrics_json_token']}":
        return json_response(401, {"error": "missing or invalid bearer token"})
    fault = env.faults.take(req.tracker, req.path, METRIC_FAULTS)
    if req.path == "/kpi":
        return json_response(200, {"data": _kpi_now(fault)})
    if req.path == "/kpi/history":
        return _kpi_history(req.query, fault)
    return json_response(404, {"error": f"no endpoint {req.path}"})


def _kpi_now(fault: Fault | None) -> dict[str, Any]:
    if fault is not None and fault.kind == "empty":
        return {}
    t = time.time() // 60 * 60
    return {
        name: {key: _kpi_number(fault, at(t), 0), "as_of": _iso(t)}
        for name, (key, at) in KPIS.items()
    }


def _kpi_history(query: dict[str, str], fault: Fault | None) -> Response:
    metric = query.get("metric", "")
    if metric not in KPIS:
        return json_response(404, {"error": f"no metric {metric!r}; known: {sorted(KPIS)}"})
    today = datetime.now(UTC).date()
    try:
        since = date.fromisoformat(query["since"]) if "since" in query else today - timedelta(30)
    except ValueError:
        return json_response(400, {"error": "since must be a date, YYYY-MM-DD"})
    since = max(since, today - timedelta(365))
    days = [since + timedelta(n) for n in range((today - since).days + 1)]
    at = KPIS[metric][1]
    points = [
        {"date": d.isoformat(), "value": _kpi_number(fault, at(_midnight(d)), i)}
        for i, d in enumerate(days)
        if _midnight(d) >= SERIES_START
    ]
    if fault is not None and fault.kind == "empty":
        points = []
    return json_response(200, {"data": {"metric": metric, "points": points}})


def _midnight(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
