"""Shared state of one CLI invocation: settings and store, opened lazily.

Start-up stays light: this module (like every `cli*` module at import) needs only typer.
Settings (pydantic), logging (structlog), the store (sqlalchemy) and the consoles (rich) are
imported when a command first asks for them, so `okrsync --version` and `--help` never load
them; tests/unit/test_startup.py holds that line.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from okrsync.config import Settings
    from okrsync.okrfile import OkrTree
    from okrsync.store import Store


# Piped output (CI logs, files) without COLUMNS: wider than rich's 80-column default.
PIPED_WIDTH = 120


def columns() -> int | None:
    """The page width the user set in `COLUMNS`, if any."""
    text = os.environ.get("COLUMNS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def page_width(stream: TextIO) -> int | None:
    """The width output to `stream` is laid out for: `COLUMNS` when set (a terminal or a
    pipe alike), else a terminal's own width (None: rich asks it), else PIPED_WIDTH."""
    return columns() or (None if stream.isatty() else PIPED_WIDTH)


@cache
def out() -> Console:
    """The console for results, laid out for `page_width(sys.stdout)`."""
    from rich.console import Console

    return Console(width=page_width(sys.stdout))


@cache
def err() -> Console:
    """The console for errors and notes, on stderr. Each message is one line however long
    (soft wrap: a terminal wraps it, a pipe keeps it whole for grep), never broken at the
    page width; the error handler in cli.main prints through it."""
    from rich.console import Console

    return Console(stderr=True, width=page_width(sys.stderr), soft_wrap=True)


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


LogLevelOpt = Annotated[
    LogLevel | None,
    typer.Option(
        "--log-level",
        case_sensitive=False,
        help="Log level of this command; wins over OKRSYNC_LOGGING__LEVEL and \\[logging] level.",
    ),
]


@dataclass
class State:
    config_path: Path | None
    log_level: LogLevel | None = None
    _settings: Settings | None = None
    _store: Store | None = None
    command: str = ""  # the running command below `okrsync` ("runs show"): see state_of

    def __post_init__(self) -> None:
        """Flags win over the environment and the file in every load of this process (the
        daemon's own and its SIGHUP reloads included); loaded only when a flag is given."""
        if self.log_level:
            from okrsync.config import set_flags

            set_flags({"logging.level": ("--log-level", self.log_level.value)})

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from okrsync.config import load_settings
            from okrsync.logging import configure, quiet_defaults

            self._settings = load_settings(self.config_path)
            s = self._settings.logging
            configure(s.level, s.format, file=s.file)
            quiet_defaults()
        return self._settings

    @property
    def store(self) -> Store:
        """The store, created or migrated on first use; a read-only command (`READ_ONLY`)
        never creates one: with no SQLite file it stops (exit 2) saying how to make one."""
        if self._store is None:
            from okrsync.store import Store

            url = self.settings.store_url()
            timeout = self.settings.store.busy_timeout_ms
            if self.command in READ_ONLY:
                refuse_missing_store(url)
                store = Store.open(url, upgrade=False, busy_timeout_ms=timeout)
                try:
                    refuse_empty_schema(store, url)
                    store.upgrade()  # an older schema is migrated, as by every command
                except BaseException:
                    store.close()
                    raise
                self._store = store
            else:
                self._store = Store.open(url, busy_timeout_ms=timeout)
        return self._store

    def close(self) -> None:
        """Close the store (SQLite: checkpoint and remove `-wal`/`-shm`); run at exit."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def tree(self) -> OkrTree:
        from okrsync.okrfile import load_tree

        return load_tree(self.settings.mapping_paths())


# Commands that only read the store: run where none exists they create nothing.
READ_ONLY = frozenset(
    {"report", "export", "history", "runs", "runs show", "items", "checkins", "okrs show", "web"}
)


def refuse_missing_store(url: str) -> None:
    """Raise ConfigError when `url` is a SQLite file that does not exist (yet)."""
    from okrsync.errors import ConfigError
    from okrsync.locks import sqlite_file

    db = sqlite_file(url)
    if db is not None and not db.exists():
        raise ConfigError(
            f"no store at {db}: nothing has been synced here yet; create it with "
            "`okrsync sync --once` (or an empty one with `okrsync db upgrade`), "
            "or point [store].url / OKRSYNC_STORE_URL at an existing one"
        )


def refuse_empty_schema(store: Store, url: str) -> None:
    """Raise ConfigError when the database at `url` holds no okrsync schema (PostgreSQL: the
    database exists, so only the schema can say that nothing was ever stored there)."""
    from okrsync.errors import ConfigError
    from okrsync.redaction import redact_url

    if store.schema_revision() is None:
        raise ConfigError(
            f"no okrsync store in {redact_url(url)}: nothing has been synced there yet; create "
            "it with `okrsync sync --once` (or an empty one with `okrsync db upgrade`), or "
            "point [store].url / OKRSYNC_STORE_URL at an existing one"
        )


def command_below_root(ctx: typer.Context) -> str:
    """The command's path under the program ("runs show"), however the program was named."""
    return ctx.command_path.removeprefix(ctx.find_root().command_path).strip()


def state_of(ctx: typer.Context) -> State:
    state = ctx.find_root().obj
    assert isinstance(state, State)  # noqa: S101 - set by the root callback
    state.command = command_below_root(ctx)
    return state
