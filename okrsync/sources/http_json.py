"""The `http_json` source: GET a JSON document and pick the number with JMESPath.

    url | url_env     the document's http(s) URL, written in the file or read from the
                      environment (when it carries a key)
    expression        JMESPath selecting the value, e.g. `data.kpis[?name=='nps'].value | [0]`
    time_expression   optional JMESPath selecting when it was measured (ISO time or epoch
                      seconds); without it the reading is timed when it was fetched
    token_env         optional: `Authorization: Bearer <token>`
    headers_env       optional: {Header-Name = "ENV_VAR"}, each header's value from the
                      environment

The response must be JSON of at most `MAX_BYTES`; a redirect is followed only within the
URL's own origin (at most `MAX_REDIRECTS`). A backfill takes the current reading: an API
answers with its value now.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jmespath
import orjson
from jmespath.exceptions import JMESPathError

from okrsync.redaction import redact_url, register_secret, scrub
from okrsync.sources import (
    Reading,
    SourceFailure,
    SourceSpec,
    as_utc,
    capped_body,
    env_value,
    number,
    since_filter,
    timeout_of,
)

MAX_REDIRECTS = 3


async def read_http_json(
    spec: SourceSpec,
    *,
    since: datetime | None,
    now: datetime,
    env: Mapping[str, str],
    http: httpx.AsyncClient,
) -> list[Reading]:
    """The value the expression picks from the document, timed by `time_expression` or now."""
    url = _url(spec, env)
    document = await fetch_json(http, url, _headers(spec, env), timeout_of(spec))
    value = _search(str(spec.options["expression"]), document, "expression")
    if value is None:
        raise SourceFailure("empty result: the expression matched nothing")
    when_expr = spec.options.get("time_expression")
    at = now
    if when_expr:
        at = as_utc(_search(str(when_expr), document, "time_expression"))
    return since_filter([Reading(at, number(value))], since, now)


def _url(spec: SourceSpec, env: Mapping[str, str]) -> str:
    url = env_value(env, spec, "url_env") if "url_env" in spec.options else spec.options["url"]
    url = str(url)
    register_secret(urlsplit(url).password)
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise SourceFailure(f"only http and https URLs are read, not {redact_url(url)!r}")
    return url


def _headers(spec: SourceSpec, env: Mapping[str, str]) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if "token_env" in spec.options:
        token = env_value(env, spec, "token_env")
        register_secret(token)
        headers["Authorization"] = f"Bearer {token}"
    for name, var in dict(spec.options.get("headers_env") or {}).items():
        value = env.get(str(var), "")
        if not value:
            raise SourceFailure(f"environment variable {var} (headers_env.{name}) is not set")
        register_secret(value)
        headers[str(name)] = value
    return headers


async def fetch_json(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], timeout_s: float
) -> Any:
    """GET `url` as JSON: 2xx only, at most MAX_BYTES, redirects only within its origin."""
    origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            request = http.stream(
                "GET", url, headers=headers, timeout=timeout_s, follow_redirects=False
            )
            async with request as response:
                if response.is_redirect:
                    url = _next(url, response.headers.get("location", ""), origin)
                    continue
                body = await _body(response, url)
        except httpx.TimeoutException:
            raise SourceFailure(f"timeout after {timeout_s:g}s: {redact_url(url)}") from None
        except httpx.HTTPError as exc:
            reason = scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise SourceFailure(f"unreachable: {redact_url(url)}: {reason}") from None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise SourceFailure(f"not JSON: {redact_url(url)}") from None
    raise SourceFailure(f"more than {MAX_REDIRECTS} redirects from {redact_url(url)}")


async def _body(response: httpx.Response, url: str) -> bytes:
    if not response.is_success:
        raise SourceFailure(f"HTTP {response.status_code} from {redact_url(url)}")
    return await capped_body(response, redact_url(url))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _next(url: str, location: str, origin: tuple[str, str, int | None]) -> str:
    target = urljoin(url, location)
    if not location or _origin(target) != origin:
        raise SourceFailure(
            f"redirect to another origin refused: {redact_url(url)} -> {redact_url(target)}"
        )
    return target


def _search(expression: str, document: Any, key: str) -> Any:
    try:
        return jmespath.search(expression, document)
    except JMESPathError as exc:
        raise SourceFailure(f"{key} is not valid JMESPath: {str(exc).splitlines()[0]}") from None
