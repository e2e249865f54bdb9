"""Shared state of one CLI invocation: settings and store, opened lazily.

Start-up stays light: this module (like every `cli*` module at import) needs only typer.
Settings (pydantic), logging (structlog), the store (sqlalchemy) and the consoles (rich) are
imported when a command first asks for them, so `okrsync --version` and `--help` never load
them; tests/unit/test_startup.py holds that line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from okrsync.config import Settings
    from okrsync.okrfile import OkrTree
    from okrsync.store import Store


@cache
def out() -> Console:
    """The console for results. Piped output (CI logs, files) gets a wider page than rich's
    80-column default."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120)


@cache
def err() -> Console:
    """The console for errors and notes, on stderr (same width rule as `out`)."""
    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() else 120)


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
        help="Log level of this command; wins over OKRSYNC_LOGGING__LEVEL and [logging].level.",
    ),
]


@dataclass
class State:
    config_path: Path | None
    log_level: LogLevel | None = None
    _settings: Settings | None = None
    _store: Store | None = None

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
        if self._store is None:
            from okrsync.store import Store

            self._store = Store.open(
                self.settings.store_url(), busy_timeout_ms=self.settings.store.busy_timeout_ms
            )
        return self._store

    def tree(self) -> OkrTree:
        from okrsync.okrfile import load_tree

        return load_tree(self.settings.mapping_paths())


def state_of(ctx: typer.Context) -> State:
    state = ctx.find_root().obj
    assert isinstance(state, State)  # noqa: S101 - set by the root callback
    return state
