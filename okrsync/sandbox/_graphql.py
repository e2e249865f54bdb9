"""Fake GitHub GraphQL (`POST /github/graphql`): Projects (v2), repositories, the rate limit.

Every query is parsed and validated with graphql-core against `github_projects.graphql`,
GitHub's public schema trimmed to what a Projects sync needs (see its header). A query GitHub
would refuse gets GitHub's error shape, HTTP 200 and no `data`:
`{"errors": [{"message", "locations", "path", "extensions": {"code", ...}}]}` (parse errors:
`Parse error on "x" at [line, column]`). Then, as github.com does before running anything:

* paging: every connection needs `first` or `last`, each at most 100
  ("Requesting 101 records on the `items` connection exceeds the `first` limit of 100
  records.", type `EXCESSIVE_PAGINATION`; `MISSING_PAGINATION_BOUNDARIES`), 500,000 nodes;
* cost: one request per connection, times the `first`/`last` of the connections around it,
  divided by 100 and rounded, at least 1 (`items(first: 100) { fieldValues(first: 20) }` =
  1 + 100 requests = cost 1); 5,000 points an hour. `rateLimit { cost limit nodeCount
  remaining resetAt used }` and the `x-ratelimit-*` headers (resource `graphql`) tell it; an
  exhausted budget answers `RATE_LIMITED`.

Cursors are base64 positions (`MQ` = 1), as GitHub's; item cursors are the item's position on
the board, which only grows, so removing items never shifts a later page. The data lives in
`_projects.py`; issues and PRs are the GitHub tracker's records.

Faults (`Sandbox.inject("github", kind, ...)`, taken only by `/graphql` requests):

* `graphql_rate_limited`: `{"errors": [{"type": "RATE_LIMITED", "message": "API rate limit
  exceeded for user ID 1."}]}`, HTTP `status` (200 as GitHub answers GraphQL, or 403),
  `x-ratelimit-remaining: 0` and `x-ratelimit-reset` `reset_after` seconds ahead (default 1).
* `graphql_secondary`: 403, `Retry-After: retry_after` (default 1) and GitHub's
  secondary-limit message.
* `graphql_partial`: the page still comes, with an error beside it. `mode="forbidden"`
  (default): item `item` (default 0) of the first items page has `content: null` and an error
  `{"type": "FORBIDDEN", "path": [..., "items", "nodes", 0, "content"], ...}`;
  `mode="timeout"`: `data: null` and GitHub's "Something went wrong while executing your
  query" error.

The query a Projects sync sends (runs as is; `tests/integration/test_sandbox_graphql.py`):

    query ProjectItems($login: String!, $number: Int!, $after: String) {
      rateLimit { cost limit remaining resetAt used }
      organization(login: $login) {
        projectV2(number: $number) {
          id title url updatedAt closed
          fields(first: 50) {
            nodes {
              __typename
              ... on ProjectV2FieldCommon { id name dataType }
              ... on ProjectV2SingleSelectField { options { id name } }
              ... on ProjectV2IterationField {
                configuration {
                  iterations { id title startDate duration }
                  completedIterations { id title startDate duration }
                }
              }
            }
          }
          items(first: 100, after: $after) {
            totalCount
            pageInfo { hasNextPage endCursor }
            nodes {
              id databaseId type updatedAt isArchived
              content {
                __typename
                ... on DraftIssue { id title createdAt updatedAt }
                ... on Issue {
                  id databaseId number title url state stateReason closed closedAt
                  createdAt updatedAt repository { nameWithOwner }
                  labels(first: 20) { nodes { name } }
                  assignees(first: 10) { nodes { login } }
                  milestone { title number }
                }
                ... on PullRequest {
                  id databaseId number title url prState: state closed closedAt merged
                  createdAt updatedAt repository { nameWithOwner }
                  labels(first: 20) { nodes { name } }
                  assignees(first: 10) { nodes { login } }
                  milestone { title number }
                }
              }
              fieldValues(first: 20) {
                nodes {
                  __typename
                  ... on ProjectV2ItemFieldSingleSelectValue {
                    name optionId field { ... on ProjectV2FieldCommon { name } } }
                  ... on ProjectV2ItemFieldIterationValue {
                    title iterationId startDate duration
                    field { ... on ProjectV2FieldCommon { name } } }
                  ... on ProjectV2ItemFieldNumberValue {
                    number field { ... on ProjectV2FieldCommon { name } } }
                  ... on ProjectV2ItemFieldTextValue {
                    text field { ... on ProjectV2FieldCommon { name } } }
                  ... on ProjectV2ItemFieldDateValue {
                    date field { ... on ProjectV2FieldCommon { name } } }
                }
              }
            }
          }
        }
      }
    }

(`user(login:)` for a user's project; cost 3: 1 + 100 + 100 + 100 requests over 100.)
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import json
import re
import secrets
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    get_named_type,
    is_leaf_type,
    parse,
    validate,
)
from graphql.execution.values import (
    VariableValues,
    get_argument_values,
    get_directive_values,
    get_variable_values,
)

from okrsync.sandbox._core import Env, Request, Response, dumps, json_response
from okrsync.sandbox._data import Rec
from okrsync.sandbox._data import iso_s as _iso_s
from okrsync.sandbox._faults import GRAPHQL_FAULTS
from okrsync.sandbox._github import AUTHORS, RateCounter, gql_repo, user_id
from okrsync.sandbox._projects import (
    VALUE_TYPES,
    Field,
    Item,
    Project,
    Projects,
    display,
)

LIMIT = 5_000
iso_s = functools.lru_cache(maxsize=1 << 16)(_iso_s)  # GitHub's timestamps, formatted once
MAX_PAGE = 100
MAX_NODES = 500_000
DOCS = "https://docs.github.com/graphql"
SECONDARY = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
    " If you reach out to GitHub Support for help, please include the request ID "
    "0000:0000:0000000:0000000:00000000."
)
TIMEOUT = (
    "Something went wrong while executing your query. This may be the result of a timeout, "
    "or it could be a GitHub bug. Please include `0000:0000:0000000:0000000:00000000` when "
    "reporting this issue."
)


@functools.cache
def schema() -> GraphQLSchema:
    """The vendored, trimmed GitHub schema (package data)."""
    text = resources.files("okrsync.sandbox").joinpath("github_projects.graphql").read_text()
    return build_schema(text)


# --- the request -----------------------------------------------------------------------------


def post(req: Request, env: Env, budget: RateCounter) -> Response:
    """One `POST /graphql` (authorised by the caller): faults, checks, cost, execution."""
    if req.method != "POST":
        return _error(404, "Not Found")
    refused = _transport_fault(req, env)
    if refused is not None:
        return refused
    try:
        query, variables, name = _payload(req.body)
    except (_BadRequest, json.JSONDecodeError) as exc:
        message = str(exc) if isinstance(exc, _BadRequest) else "Variables are invalid JSON."
        return json_response(200, {"errors": [{"message": message}]})
    with env.world.lock:
        return _run(req, env, budget, query, variables, name)


def _run(
    req: Request,
    env: Env,
    budget: RateCounter,
    query: str,
    variables: dict[str, Any],
    name: str | None,
) -> Response:
    prepared = prepare(query)
    if isinstance(prepared, list):
        return json_response(200, {"errors": prepared})
    try:
        op = prepared.operation(name)
        coerced = _coerce(op, variables)
        requests, nodes = analyse(prepared, op, coerced)
    except _Refused as exc:
        return json_response(200, {"errors": exc.errors})
    cost = max(1, int(requests / 100 + 0.5))
    used, reset = budget.take(0)
    if used + cost > budget.limit:
        return _rate_limited(200, reset)
    budget.take(cost)
    fault = env.faults.take("github", req.path, frozenset({"graphql_partial"}))
    if fault is not None and fault.params.get("mode") == "timeout":
        body: dict[str, Any] = {"data": None, "errors": [{"message": TIMEOUT}]}
        return Response(200, dumps(body), budget.headers(count=False))
    rate = {"cost": cost, "nodeCount": nodes, "budget": budget}
    ex = Executor(env, prepared, coerced, rate, fault)
    data = ex.run(op)
    body = {"data": data}
    if ex.errors:
        body["errors"] = ex.errors
    return Response(200, ex.encode(body), budget.headers(count=False))


class _BadRequest(Exception):
    """A body that is no GraphQL request: `{"errors": [{"message"}]}`."""


def _payload(body: bytes) -> tuple[str, dict[str, Any], str | None]:
    try:
        payload = json.loads(body or b"{}")
    except json.JSONDecodeError as exc:
        raise _BadRequest("Problems parsing JSON") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        raise _BadRequest("A query attribute must be specified and must be a string.")
    variables = payload.get("variables") or {}
    if isinstance(variables, str):
        variables = json.loads(variables or "{}")
    if not isinstance(variables, dict):
        raise _BadRequest("Variables are invalid JSON.")
    name = payload.get("operationName")
    return payload["query"], variables, name if isinstance(name, str) else None


def _transport_fault(req: Request, env: Env) -> Response | None:
    fault = env.faults.take("github", req.path, GRAPHQL_FAULTS - {"graphql_partial"})
    if fault is None:
        return None
    if fault.kind == "graphql_secondary":
        wait = str(int(fault.params.get("retry_after", 1)))
        return _error(403, SECONDARY, [("retry-after", wait)])
    reset = int(time.time()) + int(fault.params.get("reset_after", 1))
    return _rate_limited(int(fault.params.get("status", 200)), reset)


def _rate_limited(status: int, reset: int) -> Response:
    body = {
        "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}]
    }
    headers = [
        ("x-ratelimit-limit", str(LIMIT)),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", str(reset)),
        ("x-ratelimit-used", str(LIMIT)),
        ("x-ratelimit-resource", "graphql"),
    ]
    return json_response(status, body, headers)


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return json_response(
        status, {"message": message, "documentation_url": DOCS, "status": str(status)}, headers
    )


def unauthorized() -> Response:
    """GitHub's GraphQL answer to a missing or wrong token."""
    return _error(401, "Bad credentials")


# --- parse and validate ----------------------------------------------------------------------


class _Refused(Exception):
    """A request refused before execution: GitHub's errors, no data."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"])
        self.errors = errors


@dataclass(slots=True)
class Prepared:
    """A parsed, validated document: its operations and fragments."""

    operations: dict[str | None, OperationDefinitionNode]
    fragments: dict[str, FragmentDefinitionNode]
    serial: int = 0  # unique for the life of the process: keys rendered-item caches
    cacheable: bool = True  # no @skip / @include: a rendering depends on the item only

    def operation(self, name: str | None) -> OperationDefinitionNode:
        if name is None and len(self.operations) > 1:
            raise _Refused([{"message": "An operation name is required"}])
        op = self.operations.get(name) if name else next(iter(self.operations.values()))
        if op is None:
            raise _Refused([{"message": f'No operation named "{name}"'}])
        if op.operation.value != "query":
            raise _Refused([{"message": "Schema is not configured for mutations"}])
        return op


_SERIALS = itertools.count(1)


@functools.lru_cache(maxsize=256)
def prepare(query: str) -> Prepared | list[dict[str, Any]]:
    """The query parsed and validated against the schema, or GitHub's errors for it (cached:
    a sync sends the same text for every page)."""
    try:
        doc = parse(query)
    except GraphQLError as exc:
        return [_parse_error(query, exc)]
    errors = validate(schema(), doc)
    if errors:
        paths = _paths(doc)
        return [_validation_error(e, paths) for e in errors]
    ops = {
        (d.name.value if d.name else None): d
        for d in doc.definitions
        if isinstance(d, OperationDefinitionNode)
    }
    frags = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    return Prepared(ops, frags, next(_SERIALS), "@" not in query)


def _parse_error(query: str, exc: GraphQLError) -> dict[str, Any]:
    loc = exc.locations[0] if exc.locations else None
    if loc is None:
        return {"message": "Parse error on end of query"}
    line = query.splitlines()[loc.line - 1] if query.splitlines() else ""
    token = line[loc.column - 1 : loc.column] or "end of query"
    return {
        "message": f'Parse error on "{token}" at [{loc.line}, {loc.column}]',
        "locations": [{"line": loc.line, "column": loc.column}],
    }


# graphql-core's message → GitHub's (graphql-ruby's) message and extensions.
_VALIDATION: list[tuple[re.Pattern[str], str, str]] = [
    (
        re.compile(r"Cannot query field '(?P<fieldName>\w+)' on type '(?P<typeName>\w+)'"),
        "Field '{fieldName}' doesn't exist on type '{typeName}'",
        "undefinedField",
    ),
    (
        re.compile(r"Unknown argument '(?P<argumentName>\w+)' on field '\w+\.(?P<name>\w+)'"),
        "Field '{name}' doesn't accept argument '{argumentName}'",
        "argumentNotAccepted",
    ),
    (
        re.compile(r"Argument '\w+\.(?P<name>\w+)\((?P<arguments>\w+):\)' of type .* is required"),
        "Field '{name}' is missing required arguments: {arguments}",
        "missingRequiredArguments",
    ),
    (
        re.compile(r"Field '(?P<field>\w+)' of type '(?P<type>[^']+)' must have a selection"),
        "Field must have selections (field '{field}' returns {type} but has no selections. "
        "Did you mean '{field} {{ ... }}'?)",
        "selectionMismatch",
    ),
    (
        re.compile(
            r"Field '(?P<field>\w+)' must not have a selection since type '(?P<type>[^']+)'"
        ),
        "Selections can't be made on scalars (field '{field}' returns {type} but has selections)",
        "selectionMismatch",
    ),
    (
        re.compile(r"Unknown type '(?P<type>\w+)'"),
        "No such type {type}, so it can't be a fragment condition",
        "undefinedType",
    ),
]


def _validation_error(exc: GraphQLError, paths: dict[int, list[str]]) -> dict[str, Any]:
    message, code = exc.message, "invalidQuery"
    for pattern, template, name in _VALIDATION:
        m = pattern.search(exc.message)
        if m:
            message, code = template.format(**m.groupdict()), name
            break
    out: dict[str, Any] = {"message": message}
    if exc.locations:
        out["locations"] = [{"line": x.line, "column": x.column} for x in exc.locations]
    node = exc.nodes[0] if exc.nodes else None
    out["path"] = paths.get(id(node), ["query"]) if node is not None else ["query"]
    out["extensions"] = {"code": code, **(m.groupdict() if m else {})}
    return out


def _paths(doc: Any) -> dict[int, list[str]]:
    """Every node of the document → GitHub's static path (`["query Name", "field", ...]`)."""
    out: dict[int, list[str]] = {}

    def walk(node: Any, path: list[str]) -> None:
        out[id(node)] = path
        if isinstance(node, FieldNode):
            here = [*path, (node.alias or node.name).value]
            out[id(node)] = here
            for arg in node.arguments or ():
                out[id(arg)] = [*here, arg.name.value]
            path = here
        elif isinstance(node, InlineFragmentNode) and node.type_condition is not None:
            path = [*path, f"... on {node.type_condition.name.value}"]
        elif isinstance(node, FragmentSpreadNode):
            out[id(node)] = [*path, f"... {node.name.value}"]
        selections = getattr(node, "selection_set", None)
        for sel in selections.selections if selections is not None else ():
            walk(sel, path)

    for d in doc.definitions:
        if isinstance(d, OperationDefinitionNode):
            walk(d, [f"{d.operation.value} {d.name.value}" if d.name else d.operation.value])
        elif isinstance(d, FragmentDefinitionNode):
            walk(d, [f"fragment {d.name.value}"])
    return out


def _coerce(op: OperationDefinitionNode, variables: dict[str, Any]) -> VariableValues:
    coerced = get_variable_values(schema(), op.variable_definitions or (), variables)
    if isinstance(coerced, list):
        raise _Refused(
            [
                {
                    "message": e.message,
                    "locations": [{"line": x.line, "column": x.column} for x in e.locations or ()],
                    "extensions": {"code": "variableMismatch"},
                }
                for e in coerced
            ]
        )
    return coerced


# --- cost and paging limits (before execution, as GitHub) --------------------------------------


def analyse(
    prepared: Prepared, op: OperationDefinitionNode, variables: VariableValues
) -> tuple[int, int]:
    """(requests, nodes) the query may need; `_Refused` if a connection is unbounded or over
    100, or the whole over 500,000 nodes."""
    cost = _Cost(prepared, variables)
    requests, nodes = cost.walk(
        op.selection_set, schema().get_type("Query"), 1, [op.operation.value]
    )
    if not cost.errors and nodes > MAX_NODES:
        message = (
            f"This query requests up to {nodes:,} possible nodes which exceeds the maximum "
            f"limit of {MAX_NODES:,}."
        )
        cost.errors.append({"type": "MAX_NODE_LIMIT_EXCEEDED", "message": message})
    if cost.errors:
        raise _Refused(cost.errors)
    return requests, nodes


class _Cost:
    """GitHub's static count: each connection is one request per parent node it may be
    fetched for; fragments on different types of a union or interface count their largest."""

    def __init__(self, prepared: Prepared, variables: VariableValues) -> None:
        self.prepared, self.variables = prepared, variables
        self.errors: list[dict[str, Any]] = []

    def walk(
        self, selection_set: SelectionSetNode, parent: Any, multiplier: int, path: list[str]
    ) -> tuple[int, int]:
        requests = nodes = 0
        by_type: dict[str, list[int]] = {}
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                r, n = self.field(sel, parent, multiplier, path)
                requests, nodes = requests + r, nodes + n
                continue
            sub, cond = self._fragment(sel)
            target = schema().get_type(cond) if cond else parent
            r, n = self.walk(sub, target, multiplier, path)
            group = by_type.setdefault(cond or parent.name, [0, 0])
            group[0], group[1] = group[0] + r, group[1] + n
        if by_type:
            requests += max(r for r, _ in by_type.values())
            nodes += max(n for _, n in by_type.values())
        return requests, nodes

    def _fragment(self, sel: Any) -> tuple[SelectionSetNode, str | None]:
        if isinstance(sel, FragmentSpreadNode):
            frag = self.prepared.fragments[sel.name.value]
            return frag.selection_set, frag.type_condition.name.value
        cond = sel.type_condition.name.value if sel.type_condition is not None else None
        return sel.selection_set, cond

    def field(
        self, node: FieldNode, parent: Any, multiplier: int, path: list[str]
    ) -> tuple[int, int]:
        name = node.name.value
        if name.startswith("__"):
            return 0, 0
        fdef = parent.fields[name]
        here = [*path, (node.alias or node.name).value]
        requests = nodes = 0
        inner = multiplier
        if "first" in fdef.args and get_named_type(fdef.type).name.endswith("Connection"):
            args = get_argument_values(fdef, node, self.variables)
            size = _page_size(name, args, here, node, self.errors)
            requests, inner = multiplier, multiplier * size
            nodes = inner
        if node.selection_set is not None:
            target = get_named_type(fdef.type)
            r, n = self.walk(node.selection_set, target, inner, here)
            requests, nodes = requests + r, nodes + n
        return requests, nodes


def _page_size(
    name: str, args: dict[str, Any], path: list[str], node: FieldNode, errors: list[dict[str, Any]]
) -> int:
    first, last = args.get("first"), args.get("last")
    where = {"path": path, "locations": [_loc(node)]}
    if first is None and last is None:
        message = (
            f"You must provide a `first` or `last` value to properly paginate the `{name}` "
            "connection."
        )
        errors.append({"type": "MISSING_PAGINATION_BOUNDARIES", **where, "message": message})
        return 0
    for arg, value in (("first", first), ("last", last)):
        if value is not None and value > MAX_PAGE:
            message = (
                f"Requesting {value} records on the `{name}` connection exceeds the `{arg}` "
                f"limit of {MAX_PAGE} records."
            )
            errors.append({"type": "EXCESSIVE_PAGINATION", **where, "message": message})
        elif value is not None and value < 0:
            message = f"`{arg}` on the `{name}` connection cannot be less than zero."
            errors.append({"type": "INVALID_ARGUMENTS", **where, "message": message})
    return max(first or 0, last or 0)


def _loc(node: Any) -> dict[str, int]:
    loc = node.loc
    if loc is None:
        return {"line": 1, "column": 1}
    return {"line": loc.start_token.line, "column": loc.start_token.column}


# --- execution -------------------------------------------------------------------------------


class _Null(Exception):
    """A non-null field resolved to null: its parent becomes null (GraphQL's propagation)."""


class Obj:
    """A resolved object: its type's name, plain values and lazy fields (args, path).

    `cache` (a board item's): where its rendering for a query is kept, and the version it
    is valid for; a page of unchanged items is then a hundred dictionary look-ups."""

    __slots__ = ("cache", "lazy", "typename", "values")

    def __init__(
        self,
        typename: str,
        values: dict[str, Any],
        lazy: dict[str, Callable[[dict[str, Any], list[Any]], Any]] | None = None,
    ) -> None:
        self.typename, self.values, self.lazy = typename, values, lazy
        self.cache: tuple[dict[Any, Any], tuple[Any, ...]] | None = None


class FieldError(Exception):
    """A field that failed: null in `data`, an error with its `path` beside it."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.message, self.kind = message, kind


# A cached rendering's stand-in in the tree; its JSON form is replaced by the bytes.
# (A random tag, so no tracker text can pass for one.)
_TAG = secrets.token_hex(6)
_RAW = f"\x00raw:{_TAG}:%d\x00"
_RAW_MARK = re.compile(rb'"\\u0000raw:' + _TAG.encode() + rb':(\d+)\\u0000"')


class Executor:
    """Runs one validated operation over the world (under its lock)."""

    def __init__(
        self,
        env: Env,
        prepared: Prepared,
        variables: VariableValues,
        rate: dict[str, Any],
        fault: Any,
    ) -> None:
        self.env, self.prepared, self.variables, self.rate = env, prepared, variables, rate
        self.fault = fault
        self.errors: list[dict[str, Any]] = []
        self.projects: Projects = env.world.projects
        self.github = env.world.state("github")
        self._collected: dict[tuple[str, int], list[Any]] = {}
        self._args: dict[int, dict[str, Any]] = {}
        self.path: list[Any] = []
        self.raw: list[bytes] = []  # cached renderings, spliced in by `encode`
        self.caching = False
        self.memo: dict[tuple[str, int], Obj] = {}  # fields, projects: one object per request
        self._milestones = {(m.scope, m.number): m for m in self.github.containers}
        self._schema = schema()

    def run(self, op: OperationDefinitionNode) -> dict[str, Any] | None:
        try:
            return self.object(_query_root(self), [op.selection_set])
        except _Null:
            return None

    def object(self, obj: Obj, sets: list[SelectionSetNode]) -> dict[str, Any]:
        """The object's selected fields (from its cache when it has one for this query)."""
        if obj.cache is None or self.caching or not self.prepared.cacheable:
            return self.render(obj, sets)
        store, version = obj.cache
        key = (self.prepared.serial, *map(id, sets))
        hit = store.get(key)
        if hit is None or hit[0] != version:
            errors = len(self.errors)
            self.caching = True
            try:
                out = self.render(obj, sets)
            finally:
                self.caching = False
            if len(self.errors) != errors:
                return out
            hit = store[key] = (version, dumps(out))
        self.raw.append(hit[1])
        return _RAW % (len(self.raw) - 1)  # type: ignore[return-value]

    def render(self, obj: Obj, sets: list[SelectionSetNode]) -> dict[str, Any]:
        """The object's selected fields; `self.path` is the path to it (a shared stack)."""
        out: dict[str, Any] = {}
        lazy, values, path = obj.lazy, obj.values, self.path
        for key, name, node, composite, non_null, is_list, subsets in self.collect(
            obj.typename, sets
        ):
            if name == "__typename":
                out[key] = obj.typename
                continue
            is_lazy = lazy is not None and name in lazy
            if not is_lazy and not composite:
                value = out[key] = values.get(name)
                if value is None and non_null:
                    raise _Null
                continue
            path.append(key)
            try:
                value = (
                    cast(dict[str, Any], lazy)[name](self.args(obj.typename, node), path)
                    if is_lazy
                    else values.get(name)
                )
                if value is not None and composite:
                    value = self.many(value, subsets) if is_list else self.object(value, subsets)
            except FieldError as exc:
                self.errors.append(self._error(exc, node, list(path)))
                value = None
            except _Null:
                value = None
            finally:
                path.pop()
            out[key] = value
            if value is None and non_null:
                raise _Null
        return out

    def encode(self, body: dict[str, Any]) -> bytes:
        """The response's JSON with the cached renderings in place of their markers."""
        encoded = dumps(body)
        if not self.raw:
            return encoded
        raw = self.raw
        return _RAW_MARK.sub(lambda m: raw[int(m.group(1))], encoded)

    def many(self, values: list[Any], sets: list[SelectionSetNode]) -> list[Any]:
        out: list[Any] = []
        path = self.path
        for i, v in enumerate(values):
            path.append(i)
            try:
                out.append(None if v is None else self.object(v, sets))
            except _Null:
                out.append(None)
            finally:
                path.pop()
        return out

    def plan(self, typename: str, name: str) -> tuple[bool, bool, bool]:
        """(composite, non-null, list) of `typename.name`."""
        t = cast(GraphQLObjectType, self._schema.get_type(typename))
        ftype = t.fields[name].type
        non_null = isinstance(ftype, GraphQLNonNull)
        inner = ftype.of_type if non_null else ftype
        named = get_named_type(ftype)
        return not is_leaf_type(named), non_null, isinstance(inner, GraphQLList)

    def args(self, typename: str, node: FieldNode) -> dict[str, Any]:
        found = self._args.get(id(node))
        if found is None:
            t = cast(GraphQLObjectType, self._schema.get_type(typename))
            found = get_argument_values(t.fields[node.name.value], node, self.variables)
            self._args[id(node)] = found
        return found

    def collect(self, typename: str, sets: list[SelectionSetNode]) -> list[Any]:
        """The fields selected on `typename`, merged by response key, each with its plan:
        (key, name, node, composite, non-null, list, sub-selections)."""
        key = (typename, id(sets))  # `sets` lists live in this cache: their ids stay unique
        found = self._collected.get(key)
        if found is None:
            fields: dict[str, list[FieldNode]] = {}
            for s in sets:
                self._collect_into(typename, s, fields)
            found = []
            for response_key, nodes in fields.items():
                name = nodes[0].name.value
                plan = (False, False, False) if name == "__typename" else self.plan(typename, name)
                subsets = [n.selection_set for n in nodes if n.selection_set is not None]
                found.append((response_key, name, nodes[0], *plan, subsets))
            self._collected[key] = found
        return found

    def _collect_into(
        self, typename: str, s: SelectionSetNode, out: dict[str, list[FieldNode]]
    ) -> None:
        for sel in s.selections:
            if not self._included(sel):
                continue
            if isinstance(sel, FieldNode):
                out.setdefault((sel.alias or sel.name).value, []).append(sel)
                continue
            if isinstance(sel, FragmentSpreadNode):
                frag = self.prepared.fragments[sel.name.value]
                cond, sub = frag.type_condition.name.value, frag.selection_set
            else:
                sel = cast(InlineFragmentNode, sel)
                cond = sel.type_condition.name.value if sel.type_condition else typename
                sub = sel.selection_set
            if self._applies(cond, typename):
                self._collect_into(typename, sub, out)

    def _included(self, sel: Any) -> bool:
        if not sel.directives:
            return True
        skip = get_directive_values(GraphQLSkipDirective, sel, self.variables)
        include = get_directive_values(GraphQLIncludeDirective, sel, self.variables)
        return not (skip and skip["if"]) and not (include and not include["if"])

    def _applies(self, cond: str, typename: str) -> bool:
        if cond == typename:
            return True
        abstract, concrete = self._schema.get_type(cond), self._schema.get_type(typename)
        return self._schema.is_sub_type(abstract, concrete)  # type: ignore[arg-type]

    @staticmethod
    def _error(exc: FieldError, node: FieldNode, path: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"type": exc.kind} if exc.kind else {}
        out.update(path=path, locations=[_loc(node)], message=exc.message)
        return out


# --- the objects -----------------------------------------------------------------------------


def _query_root(ex: Executor) -> Obj:
    return Obj(
        "Query",
        {"id": "MDU6UXVlcnk="},
        {
            "organization": lambda a, p: _owner(ex, a["login"], "Organization"),
            "user": lambda a, p: _owner(ex, a["login"], "User"),
            "repository": lambda a, p: _repository(ex, a["owner"], a["name"]),
            "node": lambda a, p: _node(ex, a["id"]),
            "nodes": lambda a, p: [_node_or_none(ex, i, [*p, n]) for n, i in enumerate(a["ids"])],
            "rateLimit": lambda a, p: _rate_limit(ex),
        },
    )


def _rate_limit(ex: Executor) -> Obj:
    budget: RateCounter = ex.rate["budget"]
    used, reset = budget.take(0)
    values = {
        "cost": ex.rate["cost"],
        "limit": budget.limit,
        "nodeCount": ex.rate["nodeCount"],
        "remaining": max(budget.limit - used, 0),
        "resetAt": iso_s(reset * 1000),
        "used": used,
    }
    return Obj("RateLimit", values)


def _owner(ex: Executor, login: str, typename: str) -> Obj:
    repos_owner = any(s.split("/")[0].lower() == login.lower() for s in ex.github.scopes)
    if not (ex.projects.owner(login, typename) or (typename == "Organization" and repos_owner)):
        kind = "an Organization" if typename == "Organization" else "a User"
        raise FieldError(f"Could not resolve to {kind} with the login of '{login}'.", "NOT_FOUND")
    return _owner_obj(ex, login, typename)


def _owner_obj(ex: Executor, login: str, typename: str) -> Obj:
    prefix = "O_kgDO" if typename == "Organization" else "U_kgDO"
    values = {"id": f"{prefix}{_b64(login)}", "login": login, "name": login.capitalize()}
    return Obj(typename, values, {"projectV2": lambda a, p: _project_of(ex, login, a["number"])})


def _project_of(ex: Executor, login: str, number: int) -> Obj:
    project = ex.projects.find(login, number)
    if project is None:
        raise FieldError(f"Could not resolve to a ProjectV2 with the number {number}.", "NOT_FOUND")
    return _project(ex, project)


def _repository(ex: Executor, owner: str, name: str) -> Obj:
    key = ("repository", hash(f"{owner}/{name}".lower()))
    found = ex.memo.get(key)
    if found is None:
        found = ex.memo[key] = _repository_obj(ex, owner, name)
    return found


def _repository_obj(ex: Executor, owner: str, name: str) -> Obj:
    visible = {s.lower(): s for s in ex.github.scopes if s not in ex.github.hidden}
    repo = visible.get(f"{owner}/{name}".lower())
    if repo is None:
        raise FieldError(
            f"Could not resolve to a Repository with the name '{owner}/{name}'.", "NOT_FOUND"
        )
    values = gql_repo(repo)
    values["owner"] = _owner_obj(ex, values["owner"]["login"], "Organization")
    return Obj("Repository", values)


def _node(ex: Executor, node_id: str) -> Obj:
    found = _find_node(ex, node_id)
    if found is None:
        raise FieldError(
            f"Could not resolve to a node with the global id of '{node_id}'", "NOT_FOUND"
        )
    return found


def _node_or_none(ex: Executor, node_id: str, path: list[Any]) -> Obj | None:
    found = _find_node(ex, node_id)
    if found is None:
        message = f"Could not resolve to a node with the global id of '{node_id}'."
        ex.errors.append({"type": "NOT_FOUND", "path": path, "message": message})
    return found


def _find_node(ex: Executor, node_id: str) -> Obj | None:
    prefix, _, rest = node_id.partition("_")
    number = rest.lstrip("kgwlADOBx") if rest else ""
    if not number.isdigit():
        return None
    ident = int(number)
    for project in ex.projects.projects.values():
        if prefix == "PVT" and project.database_id == ident:
            return _project(ex, project)
        if prefix == "PVTI":
            item = next((i for i in project.items if i.database_id == ident), None)
            if item is not None:
                return _item(ex, project, item)
        if prefix in ("PVTF", "PVTSSF", "PVTIF"):
            f = next((f for f in project.fields if f.database_id == ident), None)
            if f is not None:
                return _field(ex, project, f)
    rec = ex.github.recs.get(ident) if prefix in ("I", "PR") else None
    if rec is None or rec.deleted or rec.scope in ex.github.hidden:
        return None
    return _content(ex, rec)


def _project(ex: Executor, project: Project) -> Obj:
    found = ex.memo.get(("project", id(project)))
    if found is None:
        found = ex.memo[("project", id(project))] = _project_obj(ex, project)
    return found


def _project_obj(ex: Executor, project: Project) -> Obj:
    where = "orgs" if project.owner_type == "Organization" else "users"
    values = {
        "id": project.node_id,
        "number": project.number,
        "title": project.title,
        "shortDescription": f"{project.title}: planned work across repositories",
        "url": f"https://github.com/{where}/{project.owner}/projects/{project.number}",
        "public": False,
        "closed": project.closed,
        "closedAt": None,
        "createdAt": iso_s(project.created_ms),
        "updatedAt": iso_s(project.updated_ms),
    }
    lazy = {
        "field": lambda a, p: _field_named(ex, project, a["name"]),
        "fields": lambda a, p: _connection(
            "ProjectV2FieldConfiguration",
            list(enumerate((_field(ex, project, f) for f in project.fields), 1)),
            a,
        ),
        "items": lambda a, p: _items(ex, project, a, p),
    }
    return Obj("ProjectV2", values, lazy)


def _field_named(ex: Executor, project: Project, name: str) -> Obj | None:
    f = next((f for f in project.fields if f.name == name), None)
    return None if f is None else _field(ex, project, f)


_FIELD_TYPES = {
    "SINGLE_SELECT": "ProjectV2SingleSelectField",
    "ITERATION": "ProjectV2IterationField",
}


def _field(ex: Executor, project: Project, f: Field) -> Obj:
    found = ex.memo.get(("field", id(f)))
    if found is None:
        found = ex.memo[("field", id(f))] = _field_obj(ex, project, f)
    return found


def _field_obj(ex: Executor, project: Project, f: Field) -> Obj:
    values: dict[str, Any] = {
        "id": f.node_id,
        "databaseId": f.database_id,
        "name": f.name,
        "dataType": f.data_type,
        "createdAt": iso_s(f.created_ms),
        "updatedAt": iso_s(f.created_ms),
    }
    if f.data_type == "SINGLE_SELECT":
        values["options"] = [
            Obj(
                "ProjectV2SingleSelectFieldOption",
                {"id": o.id, "name": o.name, "color": o.color, "description": o.description},
            )
            for o in f.options
        ]
    if f.data_type == "ITERATION":
        values["configuration"] = Obj(
            "ProjectV2IterationFieldConfiguration",
            {
                "duration": 14,
                "startDay": 1,
                "iterations": [_iteration(i) for i in f.iterations],
                "completedIterations": [_iteration(i) for i in f.completed],
            },
        )
    typename = _FIELD_TYPES.get(f.data_type, "ProjectV2Field")
    return Obj(typename, values, {"project": lambda a, p: _project(ex, project)})


def _iteration(it: Any) -> Obj:
    values = {
        "id": it.id,
        "title": it.title,
        "startDate": it.start.isoformat(),
        "duration": it.duration,
    }
    return Obj("ProjectV2IterationFieldIteration", values)


def _items(ex: Executor, project: Project, args: dict[str, Any], path: list[Any]) -> Obj:
    make: Callable[[Any], Obj] = lambda it: _item(ex, project, it)  # noqa: E731
    conn = _paged("ProjectV2Item", project.keys(), project.items, args, make)
    fault = ex.fault
    if fault is not None and conn.values["nodes"]:
        ex.fault = None  # one item, on the first items page of this request
        index = min(int(fault.params.get("item", 0)), len(conn.values["nodes"]) - 1)
        victim: Obj = conn.values["nodes"][index]
        where = [*path, "nodes", index, "content"]
        victim.cache = None  # this rendering is the fault's, not the item's
        cast(dict[str, Any], victim.lazy)["content"] = lambda a, p: _forbidden(ex, where)
    return conn


def _forbidden(ex: Executor, path: list[Any]) -> None:
    ex.errors.append(
        {
            "type": "FORBIDDEN",
            "path": path,
            "extensions": {"saml_failure": False},
            "locations": [{"line": 1, "column": 1}],
            "message": "Resource not accessible by integration",
        }
    )


def _item(ex: Executor, project: Project, item: Item) -> Obj:
    redacted = item.rec is not None and item.rec.scope in ex.github.hidden
    values = {
        "id": item.node_id,
        "databaseId": item.database_id,
        "type": "REDACTED" if redacted else item.type,
        "createdAt": iso_s(item.created_ms),
        "updatedAt": iso_s(item.updated_ms),
        "isArchived": item.archived,
    }
    lazy = {
        "content": lambda a, p: None if redacted else _item_content(ex, item),
        "fieldValues": lambda a, p: _connection(
            "ProjectV2ItemFieldValue", list(enumerate(_values(ex, project, item), 1)), a
        ),
        "fieldValueByName": lambda a, p: next(
            (v for v in _values(ex, project, item) if v.values["_name"] == a["name"]), None
        ),
        "project": lambda a, p: _project(ex, project),
    }
    obj = Obj("ProjectV2Item", values, lazy)
    rec = item.rec
    version = (item.updated_ms, project.updated_ms, rec.updated_ms if rec else 0, redacted)
    obj.cache = (item.cache, version)
    return obj


def _item_content(ex: Executor, item: Item) -> Obj:
    if item.rec is not None:
        return _content(ex, item.rec)
    values = {
        "id": f"DI_lADOBx{item.database_id}",
        "title": item.draft_title,
        "createdAt": iso_s(item.created_ms),
        "updatedAt": iso_s(item.updated_ms),
    }
    return Obj("DraftIssue", values, {"assignees": lambda a, p: _connection("User", [], a)})


def _values(ex: Executor, project: Project, item: Item) -> list[Obj]:
    """The item's field values in the board's field order (Title first), as GitHub lists them."""
    out = []
    for f in project.fields:
        stored = item.values.get(f.name)
        if f.name == "Title":
            stored = item.title
        if stored is None or f.data_type not in VALUE_TYPES:
            continue
        out.append(_value(ex, project, item, f, stored))
    return out


def _value(ex: Executor, project: Project, item: Item, f: Field, stored: Any) -> Obj:
    values: dict[str, Any] = {
        "_name": f.name,
        "id": f"PVTFV_lADOBx{item.database_id}_{f.database_id}",
        "databaseId": item.database_id * 100 + f.database_id % 100,
        "createdAt": iso_s(item.created_ms),
        "updatedAt": iso_s(item.updated_ms),
    }
    kind = f.data_type
    if kind == "SINGLE_SELECT":
        option = next(o for o in f.options if o.id == stored)
        values.update(
            name=option.name, optionId=option.id, color=option.color, description=option.description
        )
    elif kind == "ITERATION":
        it = f.iteration(stored)
        values.update(
            iterationId=it.id, title=it.title, startDate=it.start.isoformat(), duration=it.duration
        )
    elif kind == "NUMBER":
        values["number"] = stored
    elif kind == "DATE":
        values["date"] = stored
    else:
        values["text"] = display(f, stored)
    lazy = {
        "field": lambda a, p: _field(ex, project, f),
        "item": lambda a, p: _item(ex, project, item),
    }
    return Obj(VALUE_TYPES[kind], values, lazy)


def _content(ex: Executor, rec: Rec) -> Obj:
    """An issue or PR as GraphQL shows it (its scalars cached on the record until it changes)."""
    cached: dict[str, Any] | None = rec.cache.get("gql")
    if cached is None:
        cached = _content_values(rec)
        rec.cache["gql"] = cached
    values = dict(cached)
    milestone = ex._milestones.get((rec.scope, rec.milestone)) if rec.milestone else None
    values["milestone"] = None if milestone is None else _milestone(milestone)
    values["repository"] = _repository(ex, *rec.scope.split("/"))
    values["author"] = Obj("User", _user_values(AUTHORS[rec.id % len(AUTHORS)]))
    labels = [Obj("Label", v) for v in cached["_labels"]]
    users = [Obj("User", v) for v in cached["_assignees"]]
    lazy = {
        "labels": lambda a, p: _connection("Label", list(enumerate(labels, 1)), a),
        "assignees": lambda a, p: _connection("User", list(enumerate(users, 1)), a),
        "projectItems": lambda a, p: _connection(
            "ProjectV2Item",
            [
                (it.database_id, _item(ex, proj, it))
                for proj, it in ex.projects.by_rec.get(rec.id, [])
                if a.get("includeArchived", True) or not it.archived
            ],
            a,
        ),
        "projectV2": lambda a, p: next(
            (
                _project(ex, proj)
                for proj, _ in ex.projects.by_rec.get(rec.id, [])
                if proj.number == a["number"]
            ),
            None,
        ),
    }
    return Obj("PullRequest" if rec.kind == "pull_request" else "Issue", values, lazy)


_STATE_REASON = {"todo": None, "done": "COMPLETED", "dropped": "NOT_PLANNED"}


def _content_values(rec: Rec) -> dict[str, Any]:
    closed = rec.status != "todo"
    is_pr = rec.kind == "pull_request"
    values: dict[str, Any] = {
        "id": f"{'PR' if is_pr else 'I'}_kwDO{rec.id}",
        "databaseId": rec.id,
        "number": rec.number,
        "title": rec.title,
        "url": f"https://github.com/{rec.scope}/{'pull' if is_pr else 'issues'}/{rec.number}",
        "closed": closed,
        "closedAt": iso_s(rec.updated_ms) if closed else None,
        "createdAt": iso_s(rec.created_ms),
        "updatedAt": iso_s(rec.updated_ms),
        "_labels": [
            {"id": f"LA_kwDO{_b64(rec.scope + n)}", "name": n, "color": "0075ca"}
            for n in rec.labels
        ],
        "_assignees": [],
    }
    if rec.assignee:
        login = rec.assignee.split()[0].lower()
        values["_assignees"] = [{**_user_values(login), "name": rec.assignee}]
    if is_pr:
        merged = rec.status == "done"
        values.update(
            state="MERGED" if merged else ("CLOSED" if closed else "OPEN"),
            merged=merged,
            mergedAt=iso_s(rec.updated_ms) if merged else None,
            isDraft=False,
        )
    else:
        values.update(state="CLOSED" if closed else "OPEN", stateReason=_STATE_REASON[rec.status])
    return values


def _user_values(login: str) -> dict[str, Any]:
    """A user as GraphQL shows it: the same `databaseId` the REST API gives as `id`."""
    return {"id": f"U_kgDO{_b64(login)}", "login": login, "databaseId": user_id(login)}


def _milestone(m: Rec) -> Obj:
    values = {
        "id": f"MI_kwDO{m.id}",
        "number": m.number,
        "title": m.title,
        "state": "CLOSED" if m.status == "done" else "OPEN",
        "dueOn": f"{m.due}T07:00:00Z" if m.due else None,
        "url": f"https://github.com/{m.scope}/milestone/{m.number}",
        "createdAt": iso_s(m.created_ms),  # as the REST milestone (`render_milestone`)
        "updatedAt": iso_s(m.updated_ms),
        "closedAt": iso_s(m.updated_ms) if m.status == "done" else None,
    }
    return Obj("Milestone", values)


# --- connections -----------------------------------------------------------------------------


def _connection(
    node_type: str,
    entries: list[tuple[int, Any]],
    args: dict[str, Any],
    make: Callable[[Any], Obj] | None = None,
) -> Obj:
    """A Relay connection over `entries` ((position, thing), ascending); `make` turns the
    page's things into objects (only the page's)."""
    return _paged(node_type, [k for k, _ in entries], [x for _, x in entries], args, make)


def _paged(
    node_type: str,
    keys: list[int],
    things: list[Any],
    args: dict[str, Any],
    make: Callable[[Any], Obj] | None = None,
) -> Obj:
    """`_connection` over `keys` (ascending positions) and the `things` at them."""
    start, end = 0, len(keys)
    if args.get("after") is not None:
        start = bisect_right(keys, _decode(args["after"]))
    if args.get("before") is not None:
        end = max(bisect_right(keys, _decode(args["before"]) - 1), start)
    if args.get("first") is not None:
        end = min(end, start + args["first"])
    if args.get("last") is not None:
        start = max(start, end - args["last"])
    page = keys[start:end]
    nodes = [make(x) if make else x for x in things[start:end]]
    edge = f"{node_type}Edge"
    info = {"hasNextPage": end < len(keys), "hasPreviousPage": start > 0}
    cursors = {
        "startCursor": lambda a, p: _encode(page[0]) if page else None,
        "endCursor": lambda a, p: _encode(page[-1]) if page else None,
    }
    values = {"nodes": nodes, "pageInfo": Obj("PageInfo", info, cursors), "totalCount": len(keys)}
    lazy = {
        "edges": lambda a, p: [
            Obj(edge, {"cursor": _encode(k), "node": n}) for k, n in zip(page, nodes, strict=True)
        ]
    }
    return Obj(f"{node_type}Connection", values, lazy)


def _encode(position: int) -> str:
    return base64.b64encode(str(position).encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.isdigit():
        raise FieldError(
            f"`{cursor}` does not appear to be a valid cursor.", "INVALID_CURSOR_ARGUMENTS"
        )
    return int(text)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode().rstrip("=")
