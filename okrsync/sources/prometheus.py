"""The `prometheus` source: a PromQL query over Prometheus's HTTP API (docs/sources-prometheus.md).

    url | url_env     Prometheus's base URL, http or https, written in the file or read from
                      the environment; a path prefix (a proxy's `/prometheus`) is kept; no
                      user:password@ (use username_env and password_env)
    query             PromQL giving one number: a scalar, or an instant vector of one series
    token_env         optional: `Authorization: Bearer <token>`
    username_env, password_env   optional, together: HTTP basic auth (not with token_env)
    step              backfill resolution: a Prometheus duration ("1h", "30m", "1d") or
                      seconds (default "1h")
    timeout_s         seconds for the whole request, body included (default 10)

A reading is `GET {url}/api/v1/query?query=…&time=<now>`, timed by the sample's own timestamp
(for an instant query Prometheus stamps the evaluation time). A backfill is `GET
{url}/api/v1/query_range?query=…&start=<since>&end=<now>&step=<step>`: one reading per sample
of the one series, NaN and infinite samples skipped and counted in the log. Anything else is a
`SourceFailure` naming the problem: an HTTP error or Prometheus's `errorType: error`, a
timeout, a body that is not JSON or is over `MAX_BYTES`, a redirect (never followed, so the
credentials go to the configured origin only), no series, several series, a range vector or
a string, a native histogram, NaN or ±Inf. Reasons are one line and never hold a credential.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import structlog

from okrsync.redaction import redact_url, register_secret, scrub
from okrsync.sources import Reading, SourceFailure, SourceSpec, capped_body, env_value
from okrsync.textsafe import printable

log = structlog.get_logger("okrsync.sources")

DEFAULT_STEP = "1h"
DEFAULT_TIMEOUT_S = 10.0
MAX_POINTS = 11_000  # Prometheus refuses a range query of more points per series
_SAID_CHARS = 300
_UNITS = {"y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0}
_UNITS |= {"s": 1.0, "ms": 0.001}
# Prometheus's own duration syntax (model.ParseDuration): units largest first, each once.
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_WRONG_TYPE = {
    "matrix": "the query returned a range vector (matrix), not one number: drop the [range] "
    "selector or wrap it in a function such as last_over_time() or rate()",
    "string": "the query returned a string, not a number",
}


@dataclass(frozen=True, slots=True)
class _Target:
    """Where and how to ask: the base URL, the query, credentials and the time budget."""

    base: str
    query: str
    headers: dict[str, str]
    auth: httpx.BasicAuth | None
    timeout_s: float


class _NotFinite(SourceFailure):
    """A NaN or infinite sample: a failure for a reading, skipped and counted in a backfill."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        super().__init__(f"the value is {shown}, not a finite number{_HINTS.get(shown, '')}")


_HINTS = {
    "NaN": " (a ratio over no traffic, or scalar() of not exactly one series, gives NaN)",
    "+Inf": " (a division by zero gives +Inf)",
    "-Inf": " (a division by zero gives -Inf)",
}


async def read_prometheus(
    spec: SourceSpec,
    *,
    since: datetime | None,
    now: datetime,
    env: Mapping[str, str],
    http: httpx.AsyncClient,
) -> list[Reading]:
    """The query's value now (a one-item list), or with `since` its samples from `since` to
    `now` at `step`, oldest first; a SourceFailure says why there is none."""
    target = _target(spec, env)
    if since is None:
        params = {"query": target.query, "time": _stamp(now)}
        return [_instant(await _get(http, target, "query", params, spec))]
    step_s = _range_step(spec, since, now)
    params = {
        "query": target.query,
        "start": _stamp(since),
        "end": _stamp(now),
        "step": str(int(step_s)) if step_s.is_integer() else repr(step_s),
    }
    return _range(await _get(http, target, "query_range", params, spec), spec)


def step_seconds(value: object) -> float | None:
    """A `step` option in seconds: a positive number or a Prometheus duration ("1h30m");
    None when it is neither (for validation as well as for the reader)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if 0 < value < math.inf else None
    text = str(value).strip()
    try:
        return step_seconds(float(text))
    except ValueError:
        pass
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        return None
    units = ("y", "w", "d", "h", "m", "s", "ms")
    total = sum(int(n) * _UNITS[u] for n, u in zip(match.groups(), units, strict=True) if n)
    return total or None


# --- options ------------------------------------------------------------------------------


def _target(spec: SourceSpec, env: Mapping[str, str]) -> _Target:
    query = str(spec.options.get("query") or "").strip()
    if not query:
        raise SourceFailure("no query: set query to a PromQL expression giving one number")
    timeout_s = float(spec.options.get("timeout_s", DEFAULT_TIMEOUT_S))
    headers = {"Accept": "application/json"}
    auth = _basic_auth(spec, env)
    if "token_env" in spec.options:
        if auth is not None:
            raise SourceFailure("set token_env or username_env + password_env, not both")
        token = env_value(env, spec, "token_env")
        register_secret(token)
        headers["Authorization"] = f"Bearer {token}"
    return _Target(_base_url(spec, env), query, headers, auth, timeout_s)


def _basic_auth(spec: SourceSpec, env: Mapping[str, str]) -> httpx.BasicAuth | None:
    given = [key for key in ("username_env", "password_env") if key in spec.options]
    if not given:
        return None
    if len(given) == 1:
        raise SourceFailure("basic auth needs both username_env and password_env")
    password = env_value(env, spec, "password_env")
    register_secret(password)
    return httpx.BasicAuth(env_value(env, spec, "username_env"), password)


def _base_url(spec: SourceSpec, env: Mapping[str, str]) -> str:
    if "url_env" in spec.options:
        url = env_value(env, spec, "url_env")
    else:
        url = str(spec.options.get("url") or "")
    parts = urlsplit(url)
    register_secret(parts.password)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceFailure(f"url must be an http or https URL, not {redact_url(url)!r}")
    if parts.username or parts.password:
        raise SourceFailure(
            f"url {redact_url(url)} carries a user or password: move them to username_env "
            "and password_env"
        )
    if parts.query or parts.fragment:
        raise SourceFailure("url must be Prometheus's base URL, without ?query or #fragment")
    return url.rstrip("/")


def _range_step(spec: SourceSpec, since: datetime, now: datetime) -> float:
    raw = spec.options.get("step", DEFAULT_STEP)
    step_s = step_seconds(raw)
    if step_s is None:
        raise SourceFailure(f'step {raw!r} is not a duration: write e.g. "1h", "30m" or "1d"')
    if since > now:
        raise SourceFailure(f"since {since.isoformat()} is after now {now.isoformat()}")
    points = (now - since).total_seconds() / step_s
    if points > MAX_POINTS:
        raise SourceFailure(
            f"a backfill from {since.date().isoformat()} at step {raw} is {points:,.0f} points, "
            f"over Prometheus's {MAX_POINTS:,} per series: raise step or start later"
        )
    return step_s


def _stamp(moment: datetime) -> str:
    """Unix seconds with milliseconds, as the API takes them."""
    return f"{moment.timestamp():.3f}"


# --- HTTP ---------------------------------------------------------------------------------


async def _get(
    http: httpx.AsyncClient,
    target: _Target,
    endpoint: str,
    params: dict[str, str],
    spec: SourceSpec,
) -> Any:
    """The `data` of a successful API answer; a SourceFailure for everything else."""
    url = f"{target.base}/api/v1/{endpoint}"
    safe = redact_url(url)
    try:
        async with asyncio.timeout(target.timeout_s):  # a body trickling in counts too
            async with http.stream(
                "GET",
                url,
                params=params,
                headers=target.headers,
                auth=target.auth,
                timeout=target.timeout_s,
                follow_redirects=False,
            ) as response:
                _refuse_redirect(response, safe)
                body = await capped_body(response, safe)
    except (TimeoutError, httpx.TimeoutException):
        raise SourceFailure(f"timeout after {target.timeout_s:g}s: {safe}") from None
    except httpx.HTTPError as exc:
        said = _said(str(exc)) or type(exc).__name__
        raise SourceFailure(f"request to {safe} failed: {type(exc).__name__}: {said}") from None
    return _data(response.status_code, body, safe, spec)


def _refuse_redirect(response: httpx.Response, safe: str) -> None:
    if response.is_redirect:
        to = redact_url(str(response.next_request.url)) if response.next_request else "?"
        raise SourceFailure(
            f"HTTP {response.status_code} redirect from {safe} to {to} not followed: set url "
            "to the address Prometheus answers at"
        )


def _data(status: int, body: bytes, safe: str, spec: SourceSpec) -> Any:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict) and document.get("status") == "error":
        kind, said = _said(document.get("errorType")), _said(document.get("error"))
        raise SourceFailure(f"Prometheus answered HTTP {status}, {kind}: {said} ({safe})")
    if status in (401, 403):
        raise SourceFailure(
            f"HTTP {status} from {safe}: check the credentials in token_env or "
            "username_env and password_env"
        )
    if not 200 <= status < 300:
        raise SourceFailure(f"HTTP {status} from {safe}")
    if document is None:
        raise SourceFailure(f"not JSON ({len(body)} bytes) from {safe}: is url Prometheus's?")
    if document.get("status") != "success" or not isinstance(document.get("data"), dict):
        raise SourceFailure(f"not a Prometheus query API answer: {safe}")
    _log_annotations(document, spec)
    return document["data"]


def _said(value: object) -> str:
    """Server text fit for a reason: one line, printable, short, secrets masked."""
    text = " ".join(printable(str(value or "")).split())
    text = text if len(text) <= _SAID_CHARS else f"{text[: _SAID_CHARS - 3]}..."
    return scrub(text)


def _log_annotations(document: dict[str, Any], spec: SourceSpec) -> None:
    for key in ("warnings", "infos"):
        notes = document.get(key)
        if isinstance(notes, list) and notes:
            log.warning(f"prometheus_{key}", where=spec.where, notes=[_said(n) for n in notes])


# --- results ------------------------------------------------------------------------------


def _instant(data: dict[str, Any]) -> Reading:
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _sample(result)
    if kind != "vector":
        raise SourceFailure(_WRONG_TYPE.get(str(kind), f"unexpected resultType {kind!r}"))
    series = _one_series(result)
    if "value" not in series:
        raise SourceFailure(_no_floats(series))
    return _sample(series["value"])


def _range(data: dict[str, Any], spec: SourceSpec) -> list[Reading]:
    kind = data.get("resultType")
    if kind != "matrix":
        raise SourceFailure(f"a range query answered resultType {kind!r}, not matrix")
    series = _one_series(data.get("result"))
    values = series.get("values")
    if not isinstance(values, list):
        raise SourceFailure(_no_floats(series))
    readings: list[Reading] = []
    skipped: Counter[str] = Counter()
    for pair in values:
        try:
            readings.append(_sample(pair))
        except _NotFinite as exc:
            skipped[exc.shown] += 1
    if skipped:
        log.info("prometheus_samples_skipped", where=spec.where, **dict(skipped))
    if not readings:
        raise SourceFailure(f"no finite sample in the range ({sum(skipped.values())} skipped)")
    return readings


def _one_series(result: object) -> dict[str, Any]:
    if not isinstance(result, list) or not all(isinstance(s, dict) for s in result):
        raise SourceFailure("not a Prometheus result: `result` is not a list of series")
    if not result:
        raise SourceFailure(
            "empty result: the query matched no series (check the metric name and labels; "
            "a series without a sample in the last 5 minutes is not returned)"
        )
    if len(result) > 1:
        shown = ", ".join(_labels(s) for s in result[:2])
        raise SourceFailure(
            f"the query returned {len(result)} series, not one ({shown}"
            f"{', ...' if len(result) > 2 else ''}): aggregate them (e.g. sum(...)) or add "
            "label matchers"
        )
    only: dict[str, Any] = result[0]
    return only


def _labels(series: dict[str, Any]) -> str:
    metric = series.get("metric")
    if not isinstance(metric, dict):
        return "{}"
    name = str(metric.get("__name__", ""))
    pairs = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return _said(f"{name}{{{pairs}}}")[:120]


def _no_floats(series: dict[str, Any]) -> str:
    if "histogram" in series or "histograms" in series:
        return (
            "the query returned a native histogram, not a number: use histogram_count(), "
            "histogram_sum() or histogram_quantile()"
        )
    return "not a Prometheus result: the series has no value"


def _sample(pair: object) -> Reading:
    """`[<unix_time>, "<value>"]` as a Reading."""
    if not isinstance(pair, list) or len(pair) != 2:
        raise SourceFailure('not a Prometheus sample: expected [<unix_time>, "<value>"]')
    stamp, raw = pair
    at = _time(stamp)
    if at is None:
        raise SourceFailure(f"not a Prometheus sample time: {_said(repr(stamp))[:60]}")
    return Reading(at, _value(raw))


def _time(stamp: object) -> datetime | None:
    """Unix seconds as an aware UTC time; None for anything else or out of range."""
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        return None
    try:
        return datetime.fromtimestamp(stamp, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _value(raw: object) -> float:
    """A sample value: Prometheus sends it as a string ("3.4", "NaN", "+Inf")."""
    try:
        value = float(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if value is None:
        raise SourceFailure(f"not a number: {_said(repr(raw))[:60]}")
    if math.isnan(value):
        raise _NotFinite("NaN")
    if math.isinf(value):
        raise _NotFinite("+Inf" if value > 0 else "-Inf")
    return value
