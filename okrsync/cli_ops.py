"""Operations commands: `okrsync backup PATH` and `okrsync db current`.

Both are read-only towards the store: neither creates nor migrates one. `backup` copies a
SQLite store with SQLite's online backup API (`Store.backup`: consistent while the daemon
writes); for PostgreSQL it prints the `pg_dump` command for the configured URL, its password
left out (libpq reads it from PGPASSWORD or ~/.pgpass). `db current` compares the store's
schema revision with the newest migration this okrsync knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from okrsync.cli_state import err, out, state_of

if TYPE_CHECKING:
    from okrsync.store import Store

UPGRADE_HINT = "run okrsync db upgrade"


def backup_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Where to write the copy of the store.")],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
) -> None:
    """Back up the store: a consistent SQLite copy at PATH, taken while the daemon may write.

    On PostgreSQL, prints the pg_dump command for the configured store instead (password not
    shown: pg_dump reads it from PGPASSWORD or ~/.pgpass).
    """
    url = state_of(ctx).settings.store_url()
    if not url.startswith("sqlite"):
        from okrsync.store import pg_dump_command

        out().print(pg_dump_command(url, path), highlight=False, soft_wrap=True)
        err().print("password not shown: set PGPASSWORD or use ~/.pgpass", highlight=False)
        return
    if path.exists() and not force:
        err().print(
            f"[bold red]error:[/] {path} exists; choose another path or pass --force to replace it",
            highlight=False,
        )
        raise typer.Exit(2)
    store = existing_sqlite_store(url)
    if store is None:
        raise typer.Exit(1)
    try:
        store.backup(path)
    finally:
        store.close()
    out().print(f"backed up {sqlite_path(url)} to {path}", highlight=False, soft_wrap=True)


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def existing_sqlite_store(url: str) -> Store | None:
    """The SQLite store at `url` if its file exists (else a note on stderr and None)."""
    from okrsync.store import Store

    path = sqlite_path(url)
    if not path.is_file():
        err().print(
            f"[bold red]error:[/] no store at {path}: `okrsync db upgrade` creates one, "
            "`okrsync sync` fills it",
            highlight=False,
        )
        return None
    return Store.open(url, upgrade=False)


def db_current(ctx: typer.Context) -> None:
    """Print the store's schema revision and whether migrations are pending (read-only)."""
    url = state_of(ctx).settings.store_url()
    out().print(revision_line(stored_revision(url)), highlight=False, soft_wrap=True)


def stored_revision(url: str) -> str | None:
    """The store's schema revision, None when there is no store (nothing is created)."""
    from okrsync.store import Store

    if url.startswith("sqlite") and not sqlite_path(url).is_file():
        return None
    store = Store.open(url, upgrade=False)
    try:
        return store.schema_revision()
    finally:
        store.close()


def revision_line(stored: str | None) -> str:
    """`0005 (current)`, `0004, 0005 pending: run okrsync db upgrade`, or `no store yet`."""
    from okrsync.store import head_revision

    head = head_revision()
    if stored is None:
        return f"no store yet (newest schema: {head}; {UPGRADE_HINT} to create it)"
    if stored == head:
        return f"{stored} (current)"
    if stored.isdigit() and int(stored) < int(head):
        pending = head if int(stored) + 1 == int(head) else f"{int(stored) + 1:04d} to {head}"
        return f"{stored}, {pending} pending: {UPGRADE_HINT}"
    return f"{stored} (newer than {head}, the newest this okrsync knows: upgrade okrsync)"


def register(app: typer.Typer, db_app: typer.Typer) -> None:
    """Add `backup` to the root app and `current` to `db`."""
    app.command("backup")(backup_cmd)
    db_app.command("current")(db_current)
