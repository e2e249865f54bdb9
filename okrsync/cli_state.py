"""Shared state of one CLI invocation: settings and store, opened lazily."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from okrsync.config import Settings, load_settings
from okrsync.logging import configure, quiet_defaults
from okrsync.okrfile import OkrTree, load_tree
from okrsync.store import Store

# Piped output (CI logs, files) gets a wider page than rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


@dataclass
class State:
    config_path: Path | None
    _settings: Settings | None = None
    _store: Store | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
            s = self._settings.logging
            configure(s.level, s.format, file=s.file)
            quiet_defaults()
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(
                self.settings.store_url(), busy_timeout_ms=self.settings.store.busy_timeout_ms
            )
        return self._store

    def tree(self) -> OkrTree:
        return load_tree(self.settings.mapping_paths())


def state_of(ctx: typer.Context) -> State:
    state = ctx.find_root().obj
    assert isinstance(state, State)  # noqa: S101 - set by the root callback
    return state
