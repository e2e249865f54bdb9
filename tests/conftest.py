"""Shared fixtures: a store on SQLite and on a real PostgreSQL started for the session."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from okrsync.store import Store
from tests.pg import postgres_cluster

_db_names = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run the long fault cases")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    items[:] = [i for i in items if "slow" not in i.keywords]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The session's PostgreSQL server URL (admin database)."""
    with postgres_cluster() as url:
        yield url


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    name = f"t{next(_db_names)}"
    engine = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return pg_server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each supported backend, empty."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'okrsync.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An upgraded, empty store on each backend."""
    s = Store.open(store_url)
    yield s
    s.close()


@pytest.fixture
def mapping_dir(tmp_path: Path) -> Path:
    d = tmp_path / "mappings"
    d.mkdir()
    return d
