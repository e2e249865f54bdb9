"""Webhook signatures (okrsync.hooks.verify) on the vendored deliveries of each tracker."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from okrsync.hooks.verify import BAD, MISSING, check, sign, signature_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
SECRET = "It's a Secret to Everybody"
BODIES = {
    "github": FIXTURES / "github" / "issues.closed.json",
    "jira": FIXTURES / "jira" / "issue_deleted.json",
    "asana": FIXTURES / "asana" / "task_deleted.json",
}


def body(kind: str) -> bytes:
    return BODIES[kind].read_bytes()


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_a_signature_made_with_the_secret_verifies(kind: str) -> None:
    """The header value the tracker sends for the raw body verifies with the same secret."""
    assert check(kind, SECRET, body(kind), sign(kind, SECRET, body(kind))) is None


def test_github_signature_matches_githubs_documented_example() -> None:
    """GitHub's documented test vector: secret "It's a Secret to Everybody", payload
    "Hello, World!" → sha256=757107ea…17 (docs: validating webhook deliveries)."""
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert check("github", SECRET, b"Hello, World!", expected) is None


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_a_signature_made_with_another_secret_is_bad(kind: str) -> None:
    """The right format with the wrong key is refused as a bad signature."""
    assert check(kind, SECRET, body(kind), sign(kind, "another secret", body(kind))) == BAD


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("given", [None, "", "   "])
def test_a_missing_signature_is_missing(kind: str, given: str | None) -> None:
    """No header (or an empty one) is refused as missing."""
    assert check(kind, SECRET, body(kind), given) == MISSING


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_a_tampered_body_fails(kind: str) -> None:
    """One byte changed after signing: the signature no longer holds."""
    signature = sign(kind, SECRET, body(kind))
    tampered = body(kind).replace(b'"', b"'", 1)
    assert check(kind, SECRET, tampered, signature) == BAD


@pytest.mark.parametrize("kind", ["github", "jira"])
@pytest.mark.parametrize("prefix", ["sha1=", "sha512=", "", "SHA256 "])
def test_another_algorithm_prefix_is_refused(kind: str, prefix: str) -> None:
    """GitHub and Jira sign as `sha256=<hex>`: the right hex under another method (sha1=,
    none at all) is refused."""
    hexed = hmac.new(SECRET.encode(), body(kind), hashlib.sha256).hexdigest()
    assert check(kind, SECRET, body(kind), prefix + hexed) == BAD
    assert check(kind, SECRET, body(kind), "SHA256=" + hexed.upper()) is None


def test_asana_signs_with_the_bare_hex() -> None:
    """Asana's X-Hook-Signature is the hex alone: a `sha256=` prefix is not Asana's form."""
    hexed = hmac.new(SECRET.encode(), body("asana"), hashlib.sha256).hexdigest()
    assert sign("asana", SECRET, body("asana")) == hexed
    assert check("asana", SECRET, body("asana"), "sha256=" + hexed) == BAD


def test_non_ascii_garbage_in_the_header_is_bad_not_an_error() -> None:
    """A header of any characters is a bad signature, never an exception."""
    assert check("github", SECRET, body("github"), "sha256=ünïcødé") == BAD
    assert check("asana", SECRET, body("asana"), "\u2603" * 64) == BAD


def test_each_tracker_signs_in_its_own_header() -> None:
    """GitHub: X-Hub-Signature-256 (not the SHA-1 X-Hub-Signature); Jira: X-Hub-Signature;
    Asana: X-Hook-Signature (headers as Starlette gives them, lower case)."""
    headers = {"x-hub-signature": "a", "x-hub-signature-256": "b", "x-hook-signature": "c"}
    assert [signature_of(k, headers) for k in ("github", "jira", "asana")] == ["b", "a", "c"]
    assert signature_of("github", {"x-hub-signature": "sha1=00"}) is None
