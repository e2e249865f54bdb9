"""CLI command `okrsync web`: the dashboard and the read API alone, over the configured store.

No scheduler and no tracker calls: it reads the store (a laptop's copy, a read replica) and
writes only check-ins from signed-in users. Access follows `[web]` (docs/web.md): with
`auth = "none"` it serves on loopback only.
"""

from __future__ import annotations

from typing import Annotated

import typer

from okrsync.cli_state import out, state_of
from okrsync.errors import ConfigError
from okrsync.textsafe import markup_safe as safe


def web(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            help='Address to serve on; any but loopback needs \\[web] auth = "token" or "proxy".'
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8080,
) -> None:
    """Serve the dashboard and the read API (/api/v1/) over the configured store until Ctrl-C.

    It runs no syncs (the daemon, okrsync run, serves the same pages beside them): for a
    laptop's copy or a read replica. Reads are open on 127.0.0.1; check-ins from the browser
    and any other --host need \\[web] auth = "token" or "proxy" (docs/web.md).
    """
    from okrsync.web.access import check_bind
    from okrsync.web.app import WebContext, create_app
    from okrsync.web.server import run

    state = state_of(ctx)
    check_bind(state.settings, host, "--host")
    app = create_app(WebContext(state.settings, state.store))

    def ready(bound: int) -> None:
        where = f"[{host}]" if ":" in host else host
        out().print(f"serving the dashboard on http://{safe(where)}:{bound}/ (Ctrl-C to stop)")

    try:
        run(app, host, port, ready=ready)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "(0: any free one) or --host"
        ) from None


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("web")(web)
