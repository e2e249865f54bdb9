"""Key-result sources: read a key result's outcome metric where it lives (docs/sources.md).

A mapping file's `[[key_result]]` may carry `source = { kind = "...", ... }`; `okrfile`
validates it and `read` takes one reading (or, with `since`, the readings since then) from
it. The kinds, each in its own module, imported on first use:

    sql          sql.py         a SQLAlchemy URL from the environment, read-only, one number
    file         file.py        a CSV (`date,value`) or JSON list of {date, value}
    http_json    http_json.py   GET a URL, pick the number with a JMESPath expression
    prometheus   prometheus.py  a PromQL instant query (a range query for backfill)

Options per kind (`SourceSpec.options`, as written in the mapping file; `okrfile` checks them):

    sql          url_env, query, timeout_s
    file         path (absolute: okrfile resolves it against the mapping file's folder), format
    http_json    url | url_env, expression, token_env, headers_env ({header = "ENV_VAR"}),
                 timeout_s
    prometheus   url | url_env, query, token_env, username_env + password_env, step,
                 timeout_s

Every failure is a `SourceFailure` whose `reason` is one line and never holds a secret.
Sources read; they never write and never see work items: this package imports nothing from
the store, the pipeline, sync or linking (tests/unit/test_invariant.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from okrsync.errors import OkrsyncError

if TYPE_CHECKING:
    import httpx

KINDS = ("sql", "file", "http_json", "prometheus")
DEFAULT_TIMEOUT_S = 30.0
MAX_BYTES = 1024 * 1024  # an HTTP source's answer: one number, not a data dump


CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of now a source's timestamp may be


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement: when the source measured it (aware, UTC) and the number."""

    measured_at: datetime
    value: float


class SourceFailure(OkrsyncError):
    """A source gave no usable reading; `reason` is one line without secrets."""

    def __init__(self, reason: str) -> None:
        self.reason = " ".join(reason.split())  # one line, whatever the driver said
        super().__init__(self.reason)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A key result's source as validated from its mapping file."""

    kind: str
    options: Mapping[str, Any]
    every_s: int
    where: str  # "file:line" of the key result


async def read(
    spec: SourceSpec,
    *,
    since: datetime | None,
    now: datetime,
    env: Mapping[str, str],
    own_store_url: str,
    http: httpx.AsyncClient | None = None,
) -> list[Reading]:
    """The source's newest reading (a one-item list), or with `since` every reading from
    `since` to `now`, oldest first; a SourceFailure says why there is none."""
    if spec.kind == "sql":
        from okrsync.sources.sql import read_sql

        return await read_sql(spec, since=since, now=now, env=env, own_store_url=own_store_url)
    if spec.kind == "file":
        from okrsync.sources.file import read_file

        return read_file(spec, since=since, now=now)
    if spec.kind not in ("http_json", "prometheus"):
        raise SourceFailure(f"unknown source kind {spec.kind!r}; use one of {', '.join(KINDS)}")
    async with _client(http, spec) as client:
        if spec.kind == "http_json":
            from okrsync.sources.http_json import read_http_json

            return await read_http_json(spec, since=since, now=now, env=env, http=client)
        from okrsync.sources.prometheus import read_prometheus

        return await read_prometheus(spec, since=since, now=now, env=env, http=client)


def _client(http: httpx.AsyncClient | None, spec: SourceSpec) -> Any:
    """The caller's client (left open), or a fresh one closed after the read."""
    import contextlib

    import httpx

    if http is not None:
        return contextlib.nullcontext(http)
    return httpx.AsyncClient(timeout=timeout_of(spec), follow_redirects=False)


def env_value(env: Mapping[str, str], spec: SourceSpec, key: str) -> str:
    """The value of the environment variable named by option `key`; a SourceFailure naming
    the variable (never its value) when it is unset or empty."""
    name = str(spec.options[key])
    value = env.get(name, "")
    if not value:
        raise SourceFailure(f"environment variable {name} ({key}) is not set")
    return value


def timeout_of(spec: SourceSpec) -> float:
    return float(spec.options.get("timeout_s", DEFAULT_TIMEOUT_S))


def number(value: Any) -> float:
    """A reading's value as a finite float, or a SourceFailure saying what it was."""
    if isinstance(value, bool):
        raise SourceFailure(f"not a number: {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise SourceFailure(f"not a number: {_short(value)}") from None
    if math.isnan(result):
        raise SourceFailure("NaN")
    if math.isinf(result):
        raise SourceFailure("infinity" if result > 0 else "-infinity")
    return result


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def as_utc(value: Any, what: str = "time") -> datetime:
    """A timestamp from a source (datetime, date, ISO text or epoch seconds) as aware UTC;
    a naive time is UTC."""
    from datetime import date

    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        moment = _parse_time(value, what)
    else:
        raise SourceFailure(f"not a {what}: {_short(value)}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_time(text: str, what: str) -> datetime:
    """ISO text, or epoch seconds written as text ("1733500000")."""
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        raise SourceFailure(f"not a {what}: {_short(text)}") from None


async def capped_body(response: httpx.Response, shown_url: str) -> bytes:
    """An HTTP source's body, refused (SourceFailure) past `MAX_BYTES` whether or not the
    server declares its length. `shown_url` is the URL as a reason may show it (redacted)."""
    too_large = f"response over {MAX_BYTES} bytes refused: {shown_url}"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BYTES:
        raise SourceFailure(too_large)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BYTES:
            raise SourceFailure(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def since_filter(readings: list[Reading], since: datetime | None, now: datetime) -> list[Reading]:
    """Readings from `since` to `now` oldest first (backfill), else the newest one alone.

    A check-in records a reading already taken, so readings dated in the future are left out,
    but for clock skew: a reading up to `CLOCK_SKEW` ahead of `now` (the source's clock a
    little ahead of ours, or its minute starting while we asked) counts as taken `now`."""
    horizon = now + CLOCK_SKEW
    past = [
        r if r.measured_at <= now else Reading(now, r.value)
        for r in readings
        if r.measured_at <= horizon
    ]
    past.sort(key=lambda r: r.measured_at)
    if since is None:
        if not past:
            raise SourceFailure("empty result")
        return past[-1:]
    return [r for r in past if r.measured_at >= since]
