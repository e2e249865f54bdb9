"""Alembic environment: runs on the connection handed in by `okrsync.store.migrate`.

That connection is already inside the one transaction every pending migration shares
(`okrsync.store.migrate.migration_transaction`; on SQLite DDL joins it too), so alembic's
own `begin_transaction` adds none and an interrupted upgrade leaves the previous schema.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from okrsync.store.migrate import migration_transaction
from okrsync.store.tables import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        with migration_transaction(config.attributes["engine"]) as conn:
            _configure(conn)
        return
    _configure(connection)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
