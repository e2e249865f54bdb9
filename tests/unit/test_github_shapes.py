"""`decode_issues` (connectors/github/shapes.py): a page decoded into only the fields the
connector reads gives the same work items, the same skips, the same loop-guard ids, the same
watermark and the same board node ids as the full parse; an unforeseen shape falls back to the
full parse; a body that is not JSON still raises ValueError.

The oracle is the full `orjson` parse that the connector used before; pages are GitHub's own
documented example and a recorded real listing, and, for the property, that example with the
fields the connector reads replaced by arbitrary JSON values.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any, get_args, get_origin, get_type_hints

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from okrsync_connectors.github.connector import _ids
from okrsync_connectors.github.cursor import Pass
from okrsync_connectors.github.normalise import Normaliser
from okrsync_connectors.github.shapes import Issue, decode_issues

from tests.vendor import VENDOR_API

VENDOR = VENDOR_API / "github"
SCOPE = "octocat/Hello-World"
NORM = Normaliser.build("gh", ["wontfix"], "points", None)


@cache
def _load(rel: str) -> Any:
    return json.loads((VENDOR / rel).read_text(encoding="utf-8"))


def example_issue() -> dict[str, Any]:
    """GitHub's documented list-repo-issues element (a PR with milestone, labels, users)."""
    return copy.deepcopy(_load("examples/list-repo-issues.json")[0])


def closed_issue() -> dict[str, Any]:
    """The example closed as completed, its milestone closed too: the dates of closing."""
    issue = example_issue()
    issue.update(state="closed", closed_at="2011-04-23T10:00:00Z", state_reason="completed")
    issue["milestone"].update(state="closed")
    return issue


def recorded_page() -> list[dict[str, Any]]:
    data = _load("recorded/octokit-fixtures/paginate-issues.raw-fixture.json")
    return copy.deepcopy(next(x for x in data if x["method"] == "get")["response"])


def what_the_connector_reads(page: Any) -> Any:
    """Everything the GitHub connector derives from one decoded page."""
    if not isinstance(page, list):
        return ("not a list", type(page).__name__)
    issues = [x for x in page if isinstance(x, dict)]
    items, skipped = NORM.page(issues, SCOPE)
    prog = Pass(window=None, start="2030-01-01T00:00:00+00:00")
    prog.observe(issues)
    nodes = {
        str(raw["id"]): raw["node_id"]
        for raw in issues
        if isinstance(raw.get("node_id"), str) and "id" in raw
    }
    return items, skipped, list(_ids(issues)), (prog.high, prog.hold), nodes


def project(value: Any, hint: Any) -> Any:
    """`value` cut down to the keys the TypedDicts in `hint` declare (through lists and
    unions), as msgspec builds it when the value fits."""
    if isinstance(hint, type) and hasattr(hint, "__total__"):  # a TypedDict
        hints = get_type_hints(hint)
        return {k: project(v, hints[k]) for k, v in value.items() if k in hints}
    args = get_args(hint)
    if get_origin(hint) is list and isinstance(value, list):
        return [project(v, args[0]) for v in value]
    for member in args:  # a union: its TypedDict or list member that fits the value
        typed_dict = isinstance(member, type) and hasattr(member, "__total__")
        if (typed_dict and isinstance(value, dict)) or (
            get_origin(member) is list and isinstance(value, list)
        ):
            return project(value, member)
    return value


def test_the_documented_example_decodes_to_only_the_fields_read() -> None:
    """GitHub's example issue (~6 KB) keeps only the declared keys, the nested ones cut too."""
    (issue,) = decode_issues(orjson.dumps([example_issue()]))
    assert set(issue) <= set(get_type_hints(Issue))
    assert "body" not in issue
    assert "reactions" not in issue
    assert issue["user"] == {"login": "octocat", "id": 1}
    assert issue["labels"] == [{"name": "bug"}]
    assert set(issue["milestone"]) <= {
        "number", "title", "state", "due_on", "created_at", "updated_at", "closed_at", "html_url"
    }  # fmt: skip
    assert len(orjson.dumps(issue)) < len(orjson.dumps(example_issue())) / 3


@pytest.mark.parametrize(
    "page",
    [[example_issue()], [closed_issue()], recorded_page()],
    ids=["example", "closed", "recorded"],
)
def test_the_connector_reads_the_same_from_both_decoders(page: list[dict[str, Any]]) -> None:
    """Real shapes take the fast path (only the declared fields) and lose nothing read."""
    body = orjson.dumps(page)
    full = orjson.loads(body)
    decoded = decode_issues(body)
    assert decoded == [project(x, Issue) for x in full]
    assert what_the_connector_reads(decoded) == what_the_connector_reads(full)


def test_an_unforeseen_shape_falls_back_to_the_full_parse() -> None:
    """A label that is a number and a user that is a string: msgspec's types refuse them,
    so the page is parsed in full and the normaliser's own checks apply as before."""
    odd = example_issue()
    odd["labels"] = [7, {"name": "bug"}]
    odd["user"] = "octocat"
    body = orjson.dumps([odd, example_issue()])
    decoded = decode_issues(body)
    assert decoded == orjson.loads(body)  # the full dicts, "body" and all
    assert what_the_connector_reads(decoded) == what_the_connector_reads(orjson.loads(body))


def test_an_error_object_instead_of_a_page_comes_back_whole() -> None:
    """GitHub's error body is an object: handed back as it is, for the connector to refuse."""
    body = b'{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}'
    assert decode_issues(body) == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest",
    }


@pytest.mark.parametrize("depth", [1010, 1100])
def test_deep_nesting_in_a_skipped_field_is_handled_as_the_full_parse_handles_it(
    depth: int,
) -> None:
    """msgspec stops at a recursion limit below orjson's: past it, the full parse decides
    (parsed at 1,010 levels; ValueError, so retried, at 1,100), never a crash."""
    body = b'[{"id": 1, "body": ' + b"[" * depth + b"]" * depth + b"}]"
    try:
        expected: Any = orjson.loads(body)
    except ValueError:
        with pytest.raises(ValueError):  # noqa: PT011 - orjson's message; the type matters
            decode_issues(body)
        assert depth == 1100
    else:
        (issue,) = decode_issues(body)  # the full parse (too deep to compare with ==)
        assert issue["id"] == expected[0]["id"] == 1
        assert "body" in issue
        assert depth == 1010


@pytest.mark.parametrize("body", [b"[{", b"<html>502</html>", b'[{"id": 1,}]', b"\xff\xfe"])
def test_a_body_that_is_not_json_raises_value_error(body: bytes) -> None:
    """As orjson did: `Http` retries it as a cut or garbled transfer."""
    with pytest.raises(ValueError):  # noqa: PT011 - orjson's messages vary; the type matters
        decode_issues(body)


# --- property: any values in the fields read ----------------------------------------------

JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "open", "closed", "not_planned", "2011-04-22T13:33:48Z", "x"])
    | st.text(max_size=8)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
FIELDS = sorted(get_type_hints(Issue))


@st.composite
def odd_issue(draw: st.DrawFn) -> dict[str, Any]:
    """The example issue with some read fields set to arbitrary JSON, some removed."""
    issue = example_issue()
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            issue.pop(name, None)
        else:
            issue[name] = draw(JSON)
    if draw(st.booleans()) and isinstance(issue.get("milestone"), dict):
        issue["milestone"]["number"] = draw(JSON)
    return issue


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(odd_issue(), min_size=1, max_size=4))
def test_whatever_the_fields_hold_the_connector_reads_the_same(page: list[dict[str, Any]]) -> None:
    body = orjson.dumps(page)
    full = orjson.loads(body)
    decoded = decode_issues(body)
    assert what_the_connector_reads(decoded) == what_the_connector_reads(full)
    # Either only the declared fields (the fast path) or the full parse (the fallback).
    projected = [project(x, Issue) for x in full]
    assert decoded in (projected, full)


def test_the_sandbox_pages_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every page the sandbox serves (what the benchmarks measure) decodes to the declared
    fields only: no page falls back to the full parse."""
    from okrsync_connectors.github import connector as module

    from tests.unit.test_github import config, issues_of, pull, sandbox

    sb = sandbox(monkeypatch)
    declared = set(get_type_hints(Issue))
    pages: list[Any] = []

    def spy(body: bytes) -> Any:
        pages.append(decode_issues(body))
        return pages[-1]

    monkeypatch.setattr(module, "decode_issues", spy)
    run = pull(sb, config(sb))
    assert issues_of(run.pages)
    assert pages
    assert all(isinstance(p, list) for p in pages)
    assert all(set(issue) <= declared for p in pages for issue in p)
