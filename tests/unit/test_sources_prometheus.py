"""The `prometheus` source driven through the sandbox's fake Prometheus (in process, no socket;
a started sandbox for the timeout) and through Prometheus's own example responses
(tests/fixtures/prometheus/): readings, backfill, and every failure with a one-line reason
that holds no credential."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from okrsync.sandbox import Sandbox, metrics
from okrsync.sources import MAX_BYTES, Reading, SourceFailure, SourceSpec, read
from okrsync.sources.prometheus import read_prometheus, step_seconds

FIXTURES = Path(__file__).parents[1] / "fixtures" / "prometheus"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONVERSION = "kpi_trial_conversion_pct"
WHERE = "mappings/okrs.toml:14"


def _env(sb: Sandbox) -> dict[str, str]:
    c = sb.credentials
    return {
        "PROM_TOKEN": c["prometheus_token"],
        "PROM_USER": c["prometheus_username"],
        "PROM_PASSWORD": c["prometheus_password"],
        "PROM_URL": sb.base_url("prometheus"),
    }


def _secrets(sb: Sandbox) -> list[str]:
    return [sb.credentials["prometheus_token"], sb.credentials["prometheus_password"]]


def spec(sb: Sandbox | None, query: str = CONVERSION, **options: Any) -> SourceSpec:
    base = sb.base_url("prometheus") if sb is not None else "http://prometheus.example:9090"
    opts: dict[str, Any] = {"url": base, "query": query, "token_env": "PROM_TOKEN"}
    opts.update(options)
    return SourceSpec("prometheus", {k: v for k, v in opts.items() if v is not None}, 3600, WHERE)


def measure(
    sb: Sandbox,
    source: SourceSpec,
    since: datetime | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    env: Mapping[str, str] | None = None,
    **client: Any,
) -> list[Reading]:
    async def go() -> list[Reading]:
        async with httpx.AsyncClient(transport=transport or sb.transport(), **client) as http:
            return await read_prometheus(
                source, since=since, now=NOW, env=_env(sb) if env is None else env, http=http
            )

    return asyncio.run(go())


def failure(sb: Sandbox, source: SourceSpec, **kwargs: Any) -> str:
    """The reason of the SourceFailure measuring `source` raises; one line, no credential."""
    with pytest.raises(SourceFailure) as caught:
        measure(sb, source, **kwargs)
    reason = caught.value.reason
    assert "\n" not in reason
    assert reason == str(caught.value)
    for secret in _secrets(sb):
        assert secret not in reason
    return reason


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox(seed=1, sizes={})


# --- readings -------------------------------------------------------------------------------


def test_instant_vector_gives_the_series_value_at_the_evaluation_time(sb: Sandbox) -> None:
    """An instant query of one series reads its value, timed by the sample's timestamp."""
    (reading,) = measure(sb, spec(sb))
    assert reading == Reading(NOW, metrics.sample(CONVERSION, NOW.timestamp()))
    (request,) = sb.requests
    assert request.path == "/api/v1/query"
    assert request.query == {"query": CONVERSION, "time": f"{NOW.timestamp():.3f}"}


def test_scalar_result_is_read(sb: Sandbox) -> None:
    """A `scalar` result type gives its number."""
    (reading,) = measure(sb, spec(sb, "scalar(kpi_weekly_active_users)"))
    assert reading.value == metrics.sample("kpi_weekly_active_users", NOW.timestamp())


def test_aggregated_series_without_labels_is_read(sb: Sandbox) -> None:
    """`sum(up)` over two series is one series with no labels: a valid reading."""
    assert measure(sb, spec(sb, "sum(up)"))[0].value == 1.0


def test_basic_auth_from_the_environment(sb: Sandbox) -> None:
    """username_env + password_env send HTTP basic auth the server accepts."""
    source = spec(sb, token_env=None, username_env="PROM_USER", password_env="PROM_PASSWORD")
    assert measure(sb, source)[0].measured_at == NOW
    assert sb.requests[0].headers_in["authorization"].startswith("Basic ")


def test_url_from_the_environment_with_a_trailing_slash(sb: Sandbox) -> None:
    """url_env is read from the environment; a trailing slash does not double in the path."""
    env = {**_env(sb), "PROM_URL": sb.base_url("prometheus") + "/"}
    measure(sb, spec(sb, url=None, url_env="PROM_URL"), env=env)
    assert sb.requests[0].path == "/api/v1/query"


def test_sources_read_dispatches_to_the_prometheus_reader(sb: Sandbox) -> None:
    """`okrsync.sources.read` hands a prometheus source to this reader with its client."""

    async def go() -> list[Reading]:
        async with httpx.AsyncClient(transport=sb.transport()) as http:
            return await read(
                spec(sb), since=None, now=NOW, env=_env(sb), own_store_url="sqlite://", http=http
            )

    assert asyncio.run(go()) == [Reading(NOW, metrics.sample(CONVERSION, NOW.timestamp()))]


def test_sample_time_comes_from_the_answer_not_the_clock(sb: Sandbox) -> None:
    """Prometheus's example scalar answer is timed by its own timestamp, not `now`."""
    (reading,) = measure(sb, spec(None), transport=_serve_fixture("query_scalar.json"))
    assert reading == Reading(datetime.fromtimestamp(1767436620, UTC), 42.0)


# --- backfill -------------------------------------------------------------------------------


def test_backfill_reads_one_reading_per_step_oldest_first(sb: Sandbox) -> None:
    """A range query from `since` to `now` at `step` gives each sample as a reading."""
    since = NOW - timedelta(days=1)
    readings = measure(sb, spec(sb, step="1h"), since=since)
    assert [r.measured_at for r in readings] == [since + timedelta(hours=h) for h in range(25)]
    assert [r.value for r in readings] == [
        metrics.sample(CONVERSION, r.measured_at.timestamp()) for r in readings
    ]
    (request,) = sb.requests
    assert request.path == "/api/v1/query_range"
    assert request.query["step"] == "3600"
    assert request.query["start"] == f"{since.timestamp():.3f}"


def test_backfill_default_step_is_one_hour(sb: Sandbox) -> None:
    """Without `step` a backfill asks for one sample an hour."""
    measure(sb, spec(sb), since=NOW - timedelta(hours=3))
    assert sb.requests[0].query["step"] == "3600"


@pytest.mark.parametrize(("step", "sent"), [("1w", "604800"), (0.5, "0.5"), ("1500ms", "1.5")])
def test_backfill_sends_the_step_in_plain_seconds(sb: Sandbox, step: object, sent: str) -> None:
    """The step goes out as plain seconds, never in exponent notation."""
    measure(sb, spec(sb, step=step), since=NOW - timedelta(minutes=1))
    assert sb.requests[0].query["step"] == sent


def test_backfill_skips_nan_samples_and_logs_the_count(sb: Sandbox) -> None:
    """NaN samples in a range are left out and counted in the log; the rest are readings."""
    sb.inject("prometheus", "nan", every=2)
    with capture_logs() as logs:
        readings = measure(sb, spec(sb, step="1h"), since=NOW - timedelta(hours=24))
    assert len(readings) == 12  # samples 0, 2, ..., 24 are NaN
    assert all(math.isfinite(r.value) for r in readings)
    (event,) = [e for e in logs if e["event"] == "prometheus_samples_skipped"]
    assert event["NaN"] == 13
    assert event["where"] == WHERE


def test_backfill_of_only_nan_samples_fails(sb: Sandbox) -> None:
    """A range whose every sample is NaN gives no reading but a failure."""
    sb.inject("prometheus", "nan", every=1)
    reason = failure(sb, spec(sb), since=NOW - timedelta(hours=2))
    assert "no finite sample" in reason
    assert "3 skipped" in reason


def test_backfill_fails_on_several_series(sb: Sandbox) -> None:
    """A range query matching two series fails, naming both."""
    reason = failure(sb, spec(sb, "up"), since=NOW - timedelta(hours=2))
    assert "returned 2 series" in reason
    assert 'up{instance="localhost:9090",job="prometheus"}' in reason


def test_backfill_over_prometheus_point_limit_fails_before_asking(sb: Sandbox) -> None:
    """More than 11,000 points per series is refused with the fix, and nothing is sent."""
    reason = failure(sb, spec(sb, step="1m"), since=NOW - timedelta(days=30))
    assert "43,200 points" in reason
    assert "raise step" in reason
    assert sb.requests == []


@pytest.mark.parametrize("step", ["1 hour", "0", "h", "-5", ""])
def test_backfill_with_a_bad_step_fails(sb: Sandbox, step: str) -> None:
    """A step that is not a positive Prometheus duration fails, showing an example."""
    reason = failure(sb, spec(sb, step=step), since=NOW - timedelta(hours=2))
    assert "is not a duration" in reason
    assert '"1h"' in reason


def test_backfill_parse_error_is_prometheus_bad_data(sb: Sandbox) -> None:
    """Prometheus's 400 bad_data answer becomes the reason, with its error text."""
    reason = failure(sb, spec(sb, "rate(x[5m]"), since=NOW - timedelta(hours=2))
    assert "HTTP 400, bad_data: 1:1: parse error" in reason


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1h", 3600.0), ("1h30m", 5400.0), ("1d", 86400.0), ("90", 90.0), (0.5, 0.5), (60, 60.0)],
)
def test_step_seconds_reads_prometheus_durations_and_numbers(value: object, seconds: float) -> None:
    """`step` is a Prometheus duration or a number of seconds."""
    assert step_seconds(value) == seconds


@pytest.mark.parametrize("value", ["", "0", "1x", "m1", "30m1h", True, -1, 0, math.inf])
def test_step_seconds_refuses_what_prometheus_would(value: object) -> None:
    """Empty, zero, negative, unordered units or an unknown unit is no step."""
    assert step_seconds(value) is None


# --- failures from the server ---------------------------------------------------------------


def test_server_error_fails_with_status_and_error_type(sb: Sandbox) -> None:
    """A 500 fails with the status and Prometheus's errorType and error."""
    sb.inject("prometheus", "500")
    reason = failure(sb, spec(sb))
    assert reason.startswith("Prometheus answered HTTP 500, internal: Sandbox injected")
    assert "/prometheus/api/v1/query" in reason


def test_error_status_fails_with_its_error(sb: Sandbox) -> None:
    """`status: "error"` fails with errorType and error, whatever the HTTP status."""
    sb.inject("prometheus", "error_status")
    reason = failure(sb, spec(sb))
    assert "HTTP 422, execution: query processing would load too many samples" in reason


def test_nan_value_fails(sb: Sandbox) -> None:
    """A NaN sample is no reading: the reason says NaN and where it usually comes from."""
    sb.inject("prometheus", "nan")
    assert failure(sb, spec(sb)).startswith("the value is NaN, not a finite number")


@pytest.mark.parametrize("value", ["+Inf", "-Inf"])
def test_infinite_value_fails(sb: Sandbox, value: str) -> None:
    """±Inf is no reading."""
    sb.inject("prometheus", "nan", value=value)
    assert failure(sb, spec(sb)).startswith(f"the value is {value}, not a finite number")


def test_scalar_of_two_series_is_nan_and_fails(sb: Sandbox) -> None:
    """`scalar()` over two series is NaN in Prometheus; the reading fails."""
    assert "the value is NaN" in failure(sb, spec(sb, "scalar(up)"))


def test_empty_vector_fails(sb: Sandbox) -> None:
    """No series is an empty result, with what to check."""
    sb.inject("prometheus", "empty")
    reason = failure(sb, spec(sb))
    assert reason.startswith("empty result: the query matched no series")


def test_unknown_metric_is_an_empty_result(sb: Sandbox) -> None:
    """A metric Prometheus does not have gives an empty vector: a failure."""
    assert "empty result" in failure(sb, spec(sb, "kpi_does_not_exist"))


def test_two_series_fail(sb: Sandbox) -> None:
    """A vector of two series fails with the count, both label sets and the fix."""
    sb.inject("prometheus", "two_series")
    reason = failure(sb, spec(sb))
    assert "returned 2 series, not one" in reason
    assert 'replica="b"' in reason
    assert "sum(...)" in reason


def test_not_json_fails(sb: Sandbox) -> None:
    """A body that is not JSON fails, saying so."""
    sb.inject("prometheus", "invalid_json")
    assert failure(sb, spec(sb)).startswith("not JSON")


def test_reset_connection_fails(sb: Sandbox) -> None:
    """A connection reset fails with the transport error's name."""
    sb.inject("prometheus", "reset")
    assert "failed: ReadError" in failure(sb, spec(sb))


def test_wrong_token_fails_without_showing_it(sb: Sandbox) -> None:
    """A 401 fails naming the option to check; the token sent is not in the reason."""
    env = {**_env(sb), "PROM_TOKEN": "wrong-token-value"}
    reason = failure(sb, spec(sb), env=env)
    assert reason.startswith("HTTP 401 from")
    assert "token_env" in reason
    assert "wrong-token-value" not in reason


def test_timeout_fails(sb: Sandbox) -> None:
    """A server slower than timeout_s fails with a timeout (a real socket)."""
    with sb:
        sb.inject("prometheus", "slow", delay=1.0)
        reason = failure(sb, spec(sb, timeout_s=0.2), transport=httpx.AsyncHTTPTransport())
    assert reason.startswith("timeout after 0.2s:")
    assert "/prometheus/api/v1/query" in reason


def test_body_trickling_past_the_deadline_fails() -> None:
    """timeout_s bounds the whole request: a body arriving slowly still times out."""

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"status": "success", '
        await asyncio.sleep(1.0)
        yield b'"data": {}}'

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=slow_body()))
    sb = Sandbox(seed=1, sizes={})
    assert failure(sb, spec(None, timeout_s=0.2), transport=transport).startswith("timeout")


@pytest.mark.parametrize("declared", [True, False])
def test_oversized_body_fails(declared: bool) -> None:
    """A body over 1 MB is refused, whether its Content-Length says so or not."""
    big = b'{"status": "success", "data": {"pad": "' + b"x" * MAX_BYTES + b'"}}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=big if declared else chunks())

    sb = Sandbox(seed=1, sizes={})
    reason = failure(sb, spec(None), transport=httpx.MockTransport(handler))
    assert reason.startswith(f"response over {MAX_BYTES} bytes refused")


# --- credentials go to the configured origin only --------------------------------------------


class Recorder(httpx.AsyncBaseTransport):
    """The sandbox's transport, keeping every request's URL and headers."""

    def __init__(self, inner: httpx.MockTransport) -> None:
        self.inner = inner
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await self.inner.handle_async_request(request)


def test_redirect_is_not_followed_and_credentials_stay_at_the_origin(sb: Sandbox) -> None:
    """A redirect elsewhere fails; only the configured origin ever saw the Authorization."""
    sb.inject("prometheus", "offorigin_link", count=5)
    recorder = Recorder(sb.transport())
    reason = failure(sb, spec(sb), transport=recorder, follow_redirects=True)
    assert reason.startswith("HTTP 302 redirect from")
    assert sb.witness.origin in reason
    assert "not followed" in reason
    (request,) = recorder.sent
    assert str(request.url).startswith(sb.base_url("prometheus") + "/api/v1/query?")
    assert request.headers["authorization"] == f"Bearer {sb.credentials['prometheus_token']}"
    assert sb.witness.visits == []


def test_basic_auth_is_not_sent_along_a_redirect(sb: Sandbox) -> None:
    """With basic auth too, the one request sent goes to the configured origin."""
    sb.inject("prometheus", "offorigin_link")
    recorder = Recorder(sb.transport())
    source = spec(sb, token_env=None, username_env="PROM_USER", password_env="PROM_PASSWORD")
    failure(sb, source, transport=recorder, follow_redirects=True)
    assert [r.url.host for r in recorder.sent] == ["127.0.0.1"]
    assert [r.url.port for r in recorder.sent] == [httpx.URL(sb.base_url("prometheus")).port]


# --- options --------------------------------------------------------------------------------


def test_missing_environment_variable_fails_naming_it(sb: Sandbox) -> None:
    """An unset token variable fails naming the variable and the option."""
    env = {k: v for k, v in _env(sb).items() if k != "PROM_TOKEN"}
    reason = failure(sb, spec(sb), env=env)
    assert reason == "environment variable PROM_TOKEN (token_env) is not set"


def test_token_and_basic_auth_together_fail(sb: Sandbox) -> None:
    """token_env with username_env + password_env is ambiguous: refused."""
    source = spec(sb, username_env="PROM_USER", password_env="PROM_PASSWORD")
    assert "not both" in failure(sb, source)


def test_half_of_basic_auth_fails(sb: Sandbox) -> None:
    """username_env without password_env is refused."""
    assert "both username_env and password_env" in failure(
        sb, spec(sb, token_env=None, username_env="PROM_USER")
    )


def test_url_with_a_password_is_refused_without_showing_it(sb: Sandbox) -> None:
    """user:password@ in the URL is refused, pointing at username_env/password_env."""
    url = "http://admin:hunter2-secret@prometheus.example:9090"
    reason = failure(sb, spec(sb, url=url))
    assert "username_env and password_env" in reason
    assert "hunter2-secret" not in reason


@pytest.mark.parametrize("url", ["ftp://prometheus.example/", "prometheus.example:9090", ""])
def test_non_http_url_is_refused(sb: Sandbox, url: str) -> None:
    """Only http and https URLs are read."""
    assert failure(sb, spec(sb, url=url)).startswith("url must be an http or https URL")


def test_missing_query_fails(sb: Sandbox) -> None:
    """A source without a query fails before any request."""
    assert failure(sb, spec(sb, query=" ")).startswith("no query")
    assert sb.requests == []


# --- Prometheus's own example responses ----------------------------------------------------


def _serve_fixture(
    name: str, status: int = 200, change: Callable[[Any], None] | None = None
) -> httpx.MockTransport:
    document = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    if change is not None:
        change(document)
    return httpx.MockTransport(lambda request: httpx.Response(status, json=document))


@pytest.mark.parametrize(
    ("name", "status", "backfill", "expected"),
    [
        ("query_vector.json", 200, False, "returned 2 series, not one"),
        ("docs_query_vector.json", 200, False, "returned 2 series, not one"),
        ("query_matrix.json", 200, False, "range vector (matrix)"),
        ("query_histogram.json", 200, False, "native histogram"),
        ("query_range_histogram.json", 200, True, "native histogram"),
        ("docs_query_range_matrix.json", 200, True, "returned 2 series, not one"),
        ("error_tsdb_not_ready.json", 503, False, "HTTP 503, internal: TSDB not ready"),
        ("error_bad_data.json", 400, True, "HTTP 400, bad_data: exceeded maximum resolution"),
    ],
)
def test_prometheus_example_answers_fail_as_they_should(
    name: str, status: int, backfill: bool, expected: str
) -> None:
    """Prometheus's documented answers that hold no single number fail with the reason."""
    sb = Sandbox(seed=1, sizes={})
    since = NOW - timedelta(hours=1) if backfill else None
    reason = failure(sb, spec(None), since=since, transport=_serve_fixture(name, status))
    assert expected in reason


def test_prometheus_example_range_answer_is_a_backfill() -> None:
    """Prometheus's documented one-series range answer gives its three samples."""
    sb = Sandbox(seed=1, sizes={})
    transport = _serve_fixture("query_range_matrix.json")
    readings = measure(sb, spec(None), since=NOW - timedelta(hours=1), transport=transport)
    stamps = [1767433020, 1767434820, 1767436620]
    assert readings == [Reading(datetime.fromtimestamp(t, UTC), 1.0) for t in stamps]


@pytest.mark.parametrize("stamp", [1e20, "1767436620", None, True])
def test_a_sample_time_that_is_no_time_fails(stamp: object) -> None:
    """A sample whose timestamp is not a representable number of seconds fails cleanly."""

    def set_stamp(document: Any) -> None:
        document["data"]["result"][0] = stamp

    sb = Sandbox(seed=1, sizes={})
    transport = _serve_fixture("query_scalar.json", change=set_stamp)
    assert failure(sb, spec(None), transport=transport).startswith("not a Prometheus sample time")


def test_warnings_in_an_answer_are_logged() -> None:
    """An answer's `warnings` and `infos` are logged with the key result's place."""

    def add_notes(document: Any) -> None:
        document["warnings"] = ["PromQL warning: encountered a mix of histograms and floats"]
        document["infos"] = ["PromQL info: metric might not be a counter"]

    sb = Sandbox(seed=1, sizes={})
    with capture_logs() as logs:
        measure(sb, spec(None), transport=_serve_fixture("query_scalar.json", change=add_notes))
    events = {e["event"]: e for e in logs}
    assert events["prometheus_warnings"]["notes"][0].startswith("PromQL warning")
    assert events["prometheus_infos"]["where"] == WHERE
