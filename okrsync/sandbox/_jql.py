"""The JQL subset the sandbox understands, evaluated the way Jira does.

    query   := [clause (AND clause)*] [ORDER BY field [ASC|DESC] (, field [ASC|DESC])*]
    clause  := project (= | in) value | project in "(" value ("," value)* ")"
             | updated (>= | >) value
    value   := word | "quoted" | 'quoted'

`updated` values: epoch milliseconds, "yyyy-MM-dd HH:mm", "yyyy/MM/dd HH:mm", "yyyy-MM-dd",
"yyyy/MM/dd" (read in the Jira user's timezone) or a relative period like "-5m", "-2d".
Comparison is at minute granularity: both sides are floored to the minute, so
`updated >= X` matches from the start of X's minute and `updated > X` from the next minute.
Ordering is always (updated, id) — the secondary `key`/`id` term is accepted and treated as
id (they agree except for moved issues). `DESC` on updated is honoured.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from okrsync.sandbox._data import now_ms

MINUTE_MS = 60_000
_TOKEN = re.compile(
    r"\s*(?:(?P<str>\"[^\"]*\"|'[^']*')|(?P<op>>=|<=|!=|=|>|<|\(|\)|,)|(?P<word>[^\s=<>!(),\"']+))"
)
_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
_PERIOD = re.compile(r"^([-+]?)(\d+)([mhdw])$")
_UNIT_MS = {"m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": 1440 * MINUTE_MS, "w": 10080 * MINUTE_MS}


class JqlError(ValueError):
    """The JQL cannot be parsed or names something that does not exist; becomes a 400."""


@dataclass(slots=True)
class JqlQuery:
    projects: list[str] | None = None
    min_ms: int = 0
    descending: bool = False
    clauses: int = 0
    order_fields: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=1024)
def tokenize(jql: str) -> tuple[str, ...]:
    """The query's tokens (memoised: a paging client sends the same JQL page after page)."""
    tokens, pos, text = [], 0, jql.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise JqlError(f"Error in the JQL Query: unexpected character at position {pos}.")
        tokens.append(m.group(m.lastgroup or "word"))
        pos = m.end()
    return tuple(t for t in tokens if t.strip())


def unquote(tok: str) -> str:
    return tok[1:-1] if tok[:1] in "\"'" and len(tok) >= 2 else tok


class _Parser:
    def __init__(self, jql: str, tz: str) -> None:
        self.toks = tokenize(jql)
        self.pos = 0
        self.tz = tz
        self.q = JqlQuery()

    def peek(self) -> str:
        return self.toks[self.pos] if self.pos < len(self.toks) else ""

    def next(self) -> str:
        tok = self.peek()
        if not tok:
            raise JqlError("Error in the JQL Query: Expecting more input at the end of the query.")
        self.pos += 1
        return tok

    def parse(self) -> JqlQuery:
        while self.peek() and self.peek().lower() != "order":
            self.clause()
            if self.peek().lower() == "and":
                self.pos += 1
            elif self.peek() and self.peek().lower() != "order":
                raise JqlError(f"Error in the JQL Query: Expecting 'AND' but got '{self.peek()}'.")
        if self.peek().lower() == "order":
            self.order_by()
        return self.q

    def clause(self) -> None:
        name = self.next().lower()
        op = self.next().lower()
        self.q.clauses += 1
        if name == "project" and op in ("=", "in"):
            self.projects(op)
        elif name == "updated" and op in (">=", ">"):
            self.updated(op)
        else:
            raise JqlError(f"Error in the JQL Query: unsupported clause '{name} {op}'.")

    def projects(self, op: str) -> None:
        values = [unquote(self.next())]
        if op == "in":
            if values[0] != "(":
                raise JqlError("Error in the JQL Query: Expecting '(' after 'in'.")
            values = self.value_list()
        keys = [v.upper() for v in values]
        prev = self.q.projects
        self.q.projects = keys if prev is None else [k for k in prev if k in keys]

    def value_list(self) -> list[str]:
        values = []
        while True:
            values.append(unquote(self.next()))
            sep = self.next()
            if sep == ")":
                return values
            if sep != ",":
                raise JqlError("Error in the JQL Query: Expecting ',' or ')'.")

    def updated(self, op: str) -> None:
        value = parse_time(unquote(self.next()), self.tz)
        floor = value // MINUTE_MS * MINUTE_MS
        bound = floor if op == ">=" else floor + MINUTE_MS
        self.q.min_ms = max(self.q.min_ms, bound)

    def order_by(self) -> None:
        self.pos += 1
        if self.next().lower() != "by":
            raise JqlError("Error in the JQL Query: Expecting 'by' after 'order'.")
        while self.peek():
            name = self.next().lower()
            if name not in ("updated", "key", "id", "created"):
                raise JqlError(f"Not able to sort using field '{name}'.")
            direction = self.peek().lower()
            if direction in ("asc", "desc"):
                self.pos += 1
            if not self.q.order_fields:
                self.q.descending = direction == "desc"
            self.q.order_fields.append(name)
            if self.peek() == ",":
                self.pos += 1


def parse_time(value: str, tz: str) -> int:
    """Epoch ms of a JQL date value (number, date string in `tz`, or relative period)."""
    if value.isdigit():
        return int(value)
    period = _PERIOD.match(value.replace(" ", ""))
    if period:
        sign = -1 if period.group(1) == "-" else 1
        return now_ms() + sign * int(period.group(2)) * _UNIT_MS[period.group(3)]
    for fmt in _FORMATS:
        try:
            naive = datetime.strptime(value, fmt)  # noqa: DTZ007 - zone attached next line
        except ValueError:
            continue
        return int(naive.replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)
    raise JqlError(
        f"Date value '{value}' for field 'updated' is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
        "format e.g. '-5d', '4w 2d'."
    )


def parse_jql(jql: str, tz: str) -> JqlQuery:
    return _Parser(jql, tz).parse()
