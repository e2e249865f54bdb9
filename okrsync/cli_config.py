"""`okrsync config show`: the effective configuration and where each value came from.

Every key is printed with its value and its origin (default, file:line, env VAR or flag).
Secrets are masked: a store URL's password, and any key holding a secret itself; tokens are
never in the config (only the names of their variables or files), so none can be printed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from okrsync.cli_state import out, state_of

if TYPE_CHECKING:
    from pydantic import BaseModel

    from okrsync.config import Settings

config_app = typer.Typer(no_args_is_help=True, help="The effective configuration.")
SECTIONS = ("store", "mappings", "logging", "service", "web", "signals", "notify_defaults")
Row = tuple[str, object, str]  # key, value (masked), origin


def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Print the effective configuration, secrets masked, with each value's origin
    (default, file:line, env VAR or flag). Exit 2 naming every problem if it is invalid."""
    settings = state_of(ctx).settings
    tables = effective(settings)
    if as_json:
        doc = {
            "config_file": str(settings.config_file) if settings.config_file else None,
            **{name: _json_table(rows) for name, rows in tables.items() if name in SECTIONS},
            "connectors": [_json_table(rows) for rows in _prefixed(tables, "connectors.")],
            "notify": [_json_table(rows) for rows in _prefixed(tables, "notify.")],
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    for line in _text(settings, tables):
        out().print(line, markup=False, highlight=False, soft_wrap=True)


def effective(settings: Settings) -> dict[str, list[Row]]:
    """Every table's rows (key, masked value, origin); connectors as `connectors.<name>`."""
    tables: dict[str, list[Row]] = {}
    for name in SECTIONS:
        model = getattr(settings, name)
        tables[name] = _rows(settings, model, (name,))
    for cc in settings.connectors:
        tables[f"connectors.{cc.name}"] = _rows(settings, cc, ("connectors", cc.name))
    for ch in settings.notify:
        tables[f"notify.{ch.name}"] = _rows(settings, ch, ("notify", ch.name))
    return tables


def _rows(settings: Settings, model: BaseModel, loc: tuple[str, ...]) -> list[Row]:
    from okrsync.config_sources import is_secret_key, mask_url

    rows: list[Row] = []
    for key in type(model).model_fields:
        value: Any = getattr(model, key)
        if loc == ("store",) and key == "url":
            value = mask_url(value)
        elif is_secret_key(key) and value:
            value = "***"
        rows.append((key, value, str(settings.origin(*loc, key))))
    return rows


def _prefixed(tables: dict[str, list[Row]], prefix: str) -> list[list[Row]]:
    """The rows of each table named `<prefix><name>` (one per connector or channel)."""
    return [rows for name, rows in tables.items() if name.startswith(prefix)]


def _json_table(rows: list[Row]) -> dict[str, dict[str, object]]:
    return {key: {"value": _jsonable(value), "source": origin} for key, value, origin in rows}


def _jsonable(value: object) -> object:
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # enums and the like: their text


def _text(settings: Settings, tables: dict[str, list[Row]]) -> list[str]:
    """TOML with each value's origin as a comment; an unset key is a commented line."""
    where = settings.config_file
    lines = [f"# config file: {where}" if where else "# no config file: defaults and env only"]
    for name, rows in tables.items():
        header = f"[[{name.split('.')[0]}]]" if "." in name else f"[{name}]"
        lines += ["", header]
        width = min(40, max(len(_assignment(k, v)) for k, v, _ in rows))
        for key, value, origin in rows:
            lines.append(f"{_assignment(key, value).ljust(width)}  # {origin}")
    return lines


def _assignment(key: str, value: object) -> str:
    return f"# {key} (unset)" if value is None else f"{key} = {_toml(value)}"


def _toml(value: object) -> str:
    """A value as TOML: strings quoted, lists and tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(getattr(value, "value", value) if not isinstance(value, str) else value)


def register(app: typer.Typer) -> None:
    """Add the `config` group to the root app."""
    config_app.command("show")(show)
    app.add_typer(config_app, name="config")
