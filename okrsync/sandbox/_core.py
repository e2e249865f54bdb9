"""Request/response values and the environment every vendor handler receives."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from okrsync.sandbox._faults import FaultQueue
from okrsync.sandbox._world import World

if TYPE_CHECKING:
    from okrsync.sandbox._hooks import Hooks

CREDENTIALS = {
    "jira_email": "sandbox@example.com",
    "jira_token": "sbx-jira-cloud-token",
    "jira_dc_token": "sbx-jira-dc-pat",
    "asana_token": "2/1200000000000099/sbx-asana-pat",
    "github_token": "ghp_sandboxgithubtoken000000000000000000",
    "prometheus_token": "sbx-prometheus-token",
    "prometheus_username": "sbx-prometheus",
    "prometheus_password": "sbx-prometheus-password",
    "metrics_json_token": "sbx-metrics-json-token",
}


@dataclass(slots=True)
class Settings:
    """Knobs a test may turn while the server runs."""

    jira_timezone: str = "UTC"
    token_ttl_s: float = 600.0
    offset_ttl_s: float = 600.0
    sync_ttl_s: float = 86_400.0
    jira_dc_deployment: str = "DataCenter"
    # Jira search returns at most this many issues per page, whatever `maxResults` asks (Cloud
    # may return fewer than asked; DC's jira.search.views.default.max). None: the API caps.
    jira_page_cap: int | None = None
    # False: `POST /rest/api/3/search/approximate-count` answers 404 (a site without it).
    jira_approximate_count: bool = True
    # Added to the clock every answer's `Date` header reports (a server clock ahead of ours).
    clock_skew_s: float = 0.0


@dataclass(slots=True)
class Env:
    world: World
    faults: FaultQueue
    settings: Settings
    credentials: dict[str, str]
    hooks: Hooks | None = None  # webhook subscriptions and sending (`_hooks.py`)


@dataclass(slots=True)
class Request:
    tracker: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base: str
    raw_query: str = ""

    def json_body(self) -> Any:
        return json.loads(self.body) if self.body else {}


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json; charset=utf-8"
    # Set by list pages built from cached item bytes: the items' digests, which determine the
    # body, so an ETag can hash these few bytes instead of the whole body.
    etag_basis: bytes | None = None


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, exactly what `json_response` sends for `obj`."""
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, dumps(obj), list(headers or []))


# Stands in for a pre-encoded item array inside an envelope dict (see `splice`).
ITEMS = "\x00sbx:items\x00"
_ITEMS_JSON = dumps(ITEMS)


def json_array(parts: list[bytes]) -> bytes:
    """The JSON array of already-encoded items: the same bytes `dumps` gives for the list."""
    return b"[" + b",".join(parts) + b"]"


def splice(envelope: dict[str, Any], parts: list[bytes]) -> bytes:
    """`dumps(envelope)` with the one `ITEMS` value replaced by the array of encoded `parts`.

    Byte-identical to encoding the envelope with the item dicts in place, but only the few
    envelope keys go through `json.dumps` on each request.
    """
    head, found, tail = dumps(envelope).partition(_ITEMS_JSON)
    if not found:
        raise ValueError("envelope has no ITEMS placeholder")
    return b"".join((head, b"[", b",".join(parts), b"]", tail))


def encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def alternating_token(params: dict[str, Any], query_hash: str, current: object) -> str:
    """A hostile tracker's next-page token: A after the first page and after B, B after A.

    Both are valid first-page tokens for the query, so a client that follows them never ends
    unless it notices the repeat; `params` (the fault's) keeps the issue time stable.
    """
    issued = int(params.setdefault("issued", int(time.time())))
    a, b = (encode_token({"o": 0, "h": query_hash, "t": issued, "x": x}) for x in "AB")
    return b if current == a else a


def looping_token(params: dict[str, Any], query_hash: str, current: object) -> str:
    """A `loop_link` fault's next-page token (`params["mode"]`), each a valid first-page
    token for the query: `repeat` the same token every time, `alternate` A and B in turn,
    `count` and `empty` a fresh one per page, counting up from the token `current`."""
    mode = str(params.get("mode", "repeat"))
    if mode == "alternate":
        return alternating_token(params, query_hash, current)
    issued = int(params.setdefault("issued", int(time.time())))
    seen = decode_token(str(current)) if current and mode != "repeat" else None
    step = int((seen or {}).get("n", 0)) + 1 if mode != "repeat" else 0
    return encode_token({"o": 0, "h": query_hash, "t": issued, "n": step})


def decode_token(token: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]
