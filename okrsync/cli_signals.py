"""CLI commands: `okrsync report`, `okrsync export` and `okrsync history`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
