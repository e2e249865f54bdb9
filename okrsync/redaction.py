"""Keep secrets out of logs, errors and exports.

Every secret okrsync reads (tokens, passwords in store URLs) is registered here the moment it is
loaded; `scrub` replaces any registered value, and `redact_url` strips credentials from URLs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRETS: set[str] = set()
_SENSITIVE_PARAMS = re.compile(r"(token|key|secret|password|sig|auth)", re.IGNORECASE)
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def register_secret(value: str | None) -> None:
    """Remember a secret so every later `scrub` masks it (short values are ignored)."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """Mask every registered secret inside `text`."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """Drop userinfo and mask sensitive query parameters."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode(
        [(k, MASK if _SENSITIVE_PARAMS.search(k) else v) for k, v in parse_qsl(parts.query)]
    )
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy of `headers` with credentials masked."""
    return {k: MASK if k.lower() in SENSITIVE_HEADERS else scrub(v) for k, v in headers.items()}


def scrub_value(value: Any) -> Any:
    """Recursively scrub strings inside log event values."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(v) for v in value)
    return value
