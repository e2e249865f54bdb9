"""Request/response values and the environment every vendor handler receives."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from okrsync.sandbox._faults import FaultQueue
from okrsync.sandbox._world import World

CREDENTIALS = {
    "jira_email": "sandbox@example.com",
    "jira_token": "sbx-jira-cloud-token",
    "jira_dc_token": "sbx-jira-dc-pat",
    "asana_token": "2/1200000000000099/sbx-asana-pat",
    "github_token": "ghp_sandboxgithubtoken000000000000000000",
}


@dataclass(slots=True)
class Settings:
    """Knobs a test may turn while the server runs."""

    jira_timezone: str = "UTC"
    token_ttl_s: float = 600.0
    offset_ttl_s: float = 600.0
    sync_ttl_s: float = 86_400.0
    jira_dc_deployment: str = "DataCenter"


@dataclass(slots=True)
class Env:
    world: World
    faults: FaultQueue
    settings: Settings
    credentials: dict[str, str]


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


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return Response(status, body, list(headers or []))


def encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]
