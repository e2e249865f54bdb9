"""Small helpers every private store module shares."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")


def chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`seq` in slices of at most `size` (bound parameter lists stay under the backends' caps)."""
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def upsert(dialect: str, table: sa.Table) -> Any:
    """`INSERT` for `table` in `dialect` with `ON CONFLICT` support (PostgreSQL's or SQLite's).

    The dialect module is imported on first use: `sqlalchemy.dialects.postgresql` brings every
    PostgreSQL driver's dialect (asyncpg, pg8000, psycopg2, …), which a SQLite store never
    needs."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
