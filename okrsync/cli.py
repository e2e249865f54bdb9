"""The `okrsync` command line: thin commands over the core modules.

Exit codes: 0 success; 1 a run or operation failed; 2 bad input (config, mapping files,
arguments) — the message names the file, line or key and the fix. No tracebacks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from okrsync import (
    __version__,
    cli_checkins,
    cli_config,
    cli_explain,
    cli_hooks,
    cli_init,
    cli_items,
    cli_mapping,
    cli_measure,
    cli_notify,
    cli_ops,
    cli_service,
    cli_signals,
    cli_web,
)
from okrsync.cli_errors import PlainUsageErrors
from okrsync.cli_state import LogLevelOpt, State, err, out, state_of
from okrsync.errors import ConfigError, OkrsyncError
from okrsync.textsafe import markup_safe as safe

app = typer.Typer(
    cls=PlainUsageErrors,  # usage errors: plain lines on stderr, never a wrapped panel
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="okrsync: bridge task trackers to OKRs without treating tasks as goals.",
)
okrs_app = typer.Typer(no_args_is_help=True, help="The OKR tree declared in the mapping files.")
db_app = typer.Typer(no_args_is_help=True, help="The store's schema.")
app.add_typer(okrs_app, name="okrs")
app.add_typer(db_app, name="db")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"okrsync {__version__}")  # plain: no console (rich) to import for one line
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="OKRSYNC_CONFIG",
            help="Config file (default: ./okrsync.toml, else built-in defaults).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    log_level: LogLevelOpt = None,
) -> None:
    ctx.obj = State(config, log_level)
    ctx.call_on_close(ctx.obj.close)  # SQLite: checkpoint, remove -wal/-shm


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the store's schema to the newest version."""
    store = state_of(ctx).store
    out().print(f"store schema at revision {store.schema_revision()}")


@okrs_app.command("sync")
def okrs_sync(
    ctx: typer.Context,
    allow_empty: cli_mapping.AllowEmpty = False,
    yes: cli_mapping.Yes = False,
) -> None:
    """Load the mapping files into the store: add new ids, update changes, archive removed.

    Refused (exit 2, nothing changed) when the files define nothing, unless --allow-empty,
    or when more than half of the stored tree would be archived, unless --yes.
    """
    from okrsync.pipeline import check_load

    state = state_of(ctx)
    tree = state.tree()
    paths = state.settings.mapping_paths()
    check_load(state.store, tree, paths, allow_empty=allow_empty, yes=yes)
    report = state.store.apply_okr_tree(tree)
    out().print(
        f"loaded {len(tree.objectives)} objectives, {len(tree.key_results)} key results, "
        f"{len(tree.tactics)} tactics from {len(tree.files)} file(s): "
        f"{len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.archived)} archived, {len(report.restored)} restored"
    )
    for label, ids in (("archived", report.archived), ("restored", report.restored)):
        for ident in ids:
            out().print(f"  {label} {ident}")


@okrs_app.command("show")
def okrs_show(ctx: typer.Context) -> None:
    """Print the OKR tree with each key result's outcome progress."""
    from okrsync.render import render_tree
    from okrsync.tree import load_tree_view

    render_tree(out(), load_tree_view(state_of(ctx).store))


@app.command("sync")
def sync(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run each connector once and exit (the default).")
    ] = True,
    connector: Annotated[
        str | None, typer.Option("--connector", help="Only this connector (its config name).")
    ] = None,
    allow_empty: cli_mapping.AllowEmpty = False,
    yes: cli_mapping.Yes = False,
) -> None:
    """Pull every configured tracker (or one) once: page by page, each with its cursor.

    Takes the daemon's locks: on SQLite the store's lock (held elsewhere: exit 1 naming the
    holder), on PostgreSQL each connector's (held elsewhere: that connector is skipped,
    exit 1 when none could run).
    """
    import asyncio

    from okrsync.locks import store_lock
    from okrsync.pipeline import MappingState, sync_and_recompute
    from okrsync.progress import SyncProgress
    from okrsync.render import render_runs

    state = state_of(ctx)
    state.settings.check_credentials(connector)  # a missing token: exit 2 with file:line
    with store_lock(state.settings.store_url(), "sync --once"):
        mapping = MappingState.load(state.settings)
        mapping.apply(state.store, state.settings, allow_empty=allow_empty, yes=yes)
        with SyncProgress(err()) as progress:  # a line per connector, on a terminal only
            watch = progress.watch if progress.enabled else None
            pipeline = sync_and_recompute(
                state.settings, state.store, mapping, connector, watch=watch
            )
            done = asyncio.run(pipeline)
    render_runs(out(), done.results)
    for name, why in done.skipped.items():
        err().print(f"skipped {safe(name)}: {safe(why)}", highlight=False)
    if not done.results or any(r.status != "ok" for r in done.results):
        raise typer.Exit(1)


@app.command("sandbox")
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed of the generated data set.")] = 7,
    items: Annotated[
        int | None, typer.Option(help="Items per tracker (default: the sandbox's sizes).")
    ] = None,
) -> None:
    """Serve fake Jira Cloud, Jira DC, Asana and GitHub on 127.0.0.1 until Ctrl-C."""
    from okrsync.sandbox import DEFAULT_SIZES, serve

    sizes = {k: items for k in DEFAULT_SIZES} if items else dict(DEFAULT_SIZES)
    serve(port, seed, sizes)


@app.command("demo")
def demo(
    ctx: typer.Context,
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its SQLite store.")] = Path(
        ".okrsync-demo"
    ),
    no_serve: Annotated[
        bool,
        typer.Option(
            "--no-serve",
            help="Exit after the report (for scripts and CI); off a terminal it never serves.",
        ),
    ] = False,
    port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="The dashboard's port on 127.0.0.1 (0: any free)."),
    ] = 8464,
) -> None:
    """The main job on the embedded default: SQLite store, example OKR files, the tree; on a
    terminal it then serves the dashboard (http://127.0.0.1:PORT/) until Ctrl-C."""
    from okrsync.demo import run_demo
    from okrsync.locks import StoreLock

    serve = not no_serve and sys.stdout.isatty()
    with StoreLock((workdir / "okrsync.db").resolve(), "demo"):  # the store run_demo rebuilds
        run_demo(out(), workdir, serve=serve, port=port)


for _module in (
    cli_checkins,
    cli_config,
    cli_mapping,
    cli_signals,
    cli_items,
    cli_explain,
    cli_service,
    cli_init,
    cli_web,
    cli_measure,
    cli_notify,
    cli_hooks,
):
    _module.register(app)
cli_ops.register(app, db_app)


def main() -> None:
    """Console-script entry: run the app, turn okrsync errors into messages and exit codes.

    Files okrsync creates (store, -wal/-shm, lock, log, export) are private to the user: the
    store holds tracker data and the lock its owner's pid (SQLite gives -wal/-shm the store's
    mode). Error text can quote a tracker: control characters are stripped before printing.
    """
    os.umask(0o077)
    try:
        app()
    except ConfigError as exc:
        err().print(f"[bold red]error:[/] {safe(exc)}", highlight=False)
        sys.exit(2)
    except OkrsyncError as exc:
        err().print(f"[bold red]error:[/] {safe(exc)}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
