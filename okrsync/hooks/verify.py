"""Pure signature checks of webhook deliveries: HMAC-SHA256 of the raw body, per tracker.

    github   X-Hub-Signature-256: sha256=<hex>
    jira     X-Hub-Signature: sha256=<hex>      (WebSub's method=signature form)
    asana    X-Hook-Signature: <hex>

`check` answers None when the signature holds, else the refusal reason (`MISSING` or `BAD`);
digests are compared with `hmac.compare_digest`, so the time taken says nothing about them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

MISSING = "missing_signature"
BAD = "bad_signature"
HEADER = {
    "github": "x-hub-signature-256",
    "jira": "x-hub-signature",
    "asana": "x-hook-signature",
}
PREFIXED = frozenset({"github", "jira"})  # `method=signature`; Asana sends the bare hex


def signature_of(kind: str, headers: Mapping[str, str]) -> str | None:
    """The signature header `kind` signs with (None: absent). `headers` keys are lower case,
    as Starlette's are."""
    return headers.get(HEADER[kind])


def digest(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `body` keyed with `secret`."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check(kind: str, secret: str, body: bytes, signature: str | None) -> str | None:
    """None when `signature` (the header's value) signs `body` with `secret`, else why not."""
    if not signature or not signature.strip():
        return MISSING
    given = signature.strip()
    if kind in PREFIXED:
        method, sep, given = given.partition("=")
        if not sep or method.strip().lower() != "sha256":
            return BAD
    expected = digest(secret, body).encode("ascii")
    return None if hmac.compare_digest(given.strip().lower().encode("utf-8"), expected) else BAD


def sign(kind: str, secret: str, body: bytes) -> str:
    """The header value `kind` would send for `body`: what tests and the sandbox send."""
    hexed = digest(secret, body)
    return f"sha256={hexed}" if kind in PREFIXED else hexed
