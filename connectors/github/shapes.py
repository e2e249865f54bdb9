"""The fields of a GitHub issues page that the connector reads, and a decoder that builds
only those.

An issue in a REST listing is about 6.6 KB of JSON (GitHub's documented example): its body,
reactions, and full user, label and milestone objects. The connector reads fifteen fields of
it. `decode_issues` parses a page straight into plain dicts that carry only those fields
(msgspec skips the others without building them: about 2x faster than a full `orjson`
parse, and a page's dicts take a fraction of the memory). The dicts are the same `dict`s the
normaliser always read: a field that is absent from the JSON is absent from the dict.

A page whose shape differs from what these types allow (a label that is a number, a user
that is a string, an array element that is not an object, an error object instead of an
array) is parsed again in full with `orjson`, so the normaliser's own checks apply exactly as
before: a bad issue is logged and skipped, a body that is not an array fails the page. So is a
body msgspec cannot read at all (not JSON, or nested deeper than its recursion limit):
`orjson` then parses it, or raises ValueError on one that is not JSON (retried as a cut or
garbled transfer), as it always did.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec
import orjson


class _User(TypedDict, total=False):
    login: Any
    id: Any


class _Label(TypedDict, total=False):
    name: Any


class _Milestone(TypedDict, total=False):
    number: Any
    title: Any
    state: Any
    due_on: Any
    created_at: Any
    updated_at: Any
    closed_at: Any
    html_url: Any


class _PullRequest(TypedDict, total=False):
    merged_at: Any


class Issue(TypedDict, total=False):
    """What `normalise.py`, `cursor.Pass.observe`, the loop guard and the boards'
    `enrich` read of one issue or pull request (add a field here when one of them reads a
    new one: `tests/unit/test_github_shapes.py` checks the normaliser against both
    decoders)."""

    id: Any
    node_id: Any
    number: Any
    title: Any
    state: Any
    state_reason: Any
    created_at: Any
    updated_at: Any
    closed_at: Any
    html_url: Any
    labels: list[_Label | str] | None
    milestone: _Milestone | None
    assignee: _User | None
    user: _User | None
    pull_request: _PullRequest | None


_PAGE = msgspec.json.Decoder(list[Issue])


def decode_issues(body: bytes) -> Any:
    """A REST issues page as a list of dicts of the fields read; anything else, in full."""
    try:
        return _PAGE.decode(body)
    except (msgspec.DecodeError, RecursionError):
        # A shape not foreseen here (ValidationError), a body that is not JSON, or one nested
        # deeper than msgspec goes: the tolerant path, where the normaliser checks each issue
        # and orjson raises ValueError on a body that is not JSON (or nests past its limit).
        return orjson.loads(body)
