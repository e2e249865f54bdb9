"""`okrsync init [DIR]`: a commented `okrsync.toml` and an example mapping folder to start from.

The examples are the ones a checkout keeps at its root (`config.example.toml`, `mappings/`,
`docs/signals.md`); a wheel carries the same files as `okrsync/examples/` (pyproject.toml's
package data). `example_path` finds them either way, so `okrsync demo` and `okrsync init` work
from a checkout and from an installed package alike.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

PACKAGE = Path(__file__).resolve().parent
CONFIG_EXAMPLE = "config.example.toml"
MAPPINGS_EXAMPLE = "mappings"
CONFIG_NAME = "okrsync.toml"
HEADER = "# Written by `okrsync init` (the text of config.example.toml: `okrsync init --print`).\n"


def example_path(name: str) -> Path:
    """An example shipped with okrsync: the installed package's copy, else the checkout's."""
    installed = PACKAGE / "examples" / name
    return installed if installed.exists() else PACKAGE.parent / name


def example_config() -> str:
    """The commented example configuration: every key, its default and what it does."""
    return example_path(CONFIG_EXAMPLE).read_text(encoding="utf-8")


def planned_files(target: Path) -> dict[Path, Path]:
    """Each file `init` writes into `target` → the example it is copied from."""
    mappings = example_path(MAPPINGS_EXAMPLE)
    files = {target / CONFIG_NAME: example_path(CONFIG_EXAMPLE)}
    for source in sorted(mappings.glob("*.toml")):
        files[target / MAPPINGS_EXAMPLE / source.name] = source
    return files


def write_files(target: Path, force: bool) -> list[Path]:
    """Copy the examples into `target`; refuse (exit 2) to overwrite anything without `force`."""
    files = planned_files(target)
    existing = [path for path in files if path.exists()]
    if existing and not force:
        names = ", ".join(str(path) for path in existing)
        typer.echo(
            f"error: these files already exist: {names}; nothing was written. "
            "Move them away, or run `okrsync init --force` to overwrite them.",
            err=True,
        )
        raise typer.Exit(2)
    for dest, source in files.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.name == CONFIG_NAME:
            dest.write_text(HEADER + source.read_text(encoding="utf-8"), encoding="utf-8")
        else:
            shutil.copyfile(source, dest)
    return list(files)


def init_cmd(
    directory: Annotated[
        Path, typer.Argument(help="Where to write okrsync.toml and mappings/ (default: here).")
    ] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite okrsync.toml and example mapping files.")
    ] = False,
    print_only: Annotated[
        bool,
        typer.Option("--print", help="Print the commented example config; write nothing."),
    ] = False,
) -> None:
    """Start a deployment: a commented okrsync.toml and an example mappings/ folder.

    Refuses (exit 2, naming them) to overwrite files that exist, unless --force.
    """
    if print_only:
        typer.echo(example_config(), nl=False)
        return
    if directory.exists() and not directory.is_dir():
        typer.echo(f"error: {directory} is a file, not a folder; name a folder.", err=True)
        raise typer.Exit(2)
    for path in write_files(directory, force):
        typer.echo(f"wrote {path}")
    config = directory / CONFIG_NAME
    typer.echo(
        f"next: edit {config} (connectors, store), then `okrsync -c {config} mappings check`, "
        f"`okrsync -c {config} db upgrade` and `okrsync -c {config} run`"
    )


def register(app: typer.Typer) -> None:
    """Add `init` to the root app."""
    app.command("init")(init_cmd)
