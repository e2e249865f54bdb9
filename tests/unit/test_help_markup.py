"""Help texts keep their config-key references: `[web] public_url` is not rich markup."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer

from okrsync.cli import app

# An unescaped `[word]`: rich reads it as a style tag and drops it from `--help`.
MARKUP = re.compile(r"(?<!\\)\[\[?[A-Za-z_][\w.]*\]")


def _texts(command: Any, path: str) -> Iterator[tuple[str, str]]:
    """(where, text) of a command's help and its parameters' helps, sub-commands included."""
    yield path, command.help or ""
    for param in command.params:
        yield f"{path} {param.name}", getattr(param, "help", None) or ""
    for name, sub in getattr(command, "commands", {}).items():
        yield from _texts(sub, f"{path} {name}")


def test_no_help_text_loses_a_bracketed_config_key() -> None:
    """Every `[section]` or `[[notify]]` in a help text is escaped, so `--help` shows it."""
    root = typer.main.get_command(app)
    eaten = [f"{where}: {text}" for where, text in _texts(root, "okrsync") if MARKUP.search(text)]
    assert eaten == []


def test_the_check_sees_sub_commands_and_their_options() -> None:
    """The walk reaches a sub-command's option help, so the check above covers `hooks show`."""
    texts = dict(_texts(typer.main.get_command(app), "okrsync"))
    assert "public_url" in texts["okrsync hooks show base_url"]
