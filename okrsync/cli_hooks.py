"""CLI commands: `okrsync hooks show [CONNECTOR]` and `okrsync hooks register [CONNECTOR]`:
the webhooks each tracker should send the daemon (docs/webhooks.md, "Registering").

`show` prints, per connector, the URL to register (`--base-url`, else `[web] public_url`,
else `http://<[service] host>:<port>`, then `/hooks/<type>/<name>`), the events, the content
type, where the secret comes from, and (unless `--no-check`) whether the connector's token
may manage webhooks, by listing the hooks the tracker holds (read-only). `register` creates
the missing ones through the tracker's API with the connector's token: GitHub one hook per
repository, Jira one webhook filtered by JQL to the projects in scope, Asana one per project
(`<url>?resource=<project gid>`: Asana gives each its own secret) after opening the daemon's
handshake window for each project (`Store.expect_webhook_handshake`, 2 minutes; closed again
once the tracker answered). An existing hook with the same URL is reported, never
duplicated. Exit 1 when a tracker refused or failed (one line each, with the fix), 2 on bad
input.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import typer

from okrsync.cli_state import err, out, state_of
from okrsync.errors import ConfigError
from okrsync.textsafe import markup_safe as safe

if TYPE_CHECKING:  # imported where used, so `okrsync --version` stays light (cli_state)
    from okrsync.config import ConnectorConfig, Settings
    from okrsync.connector import HookTarget, Webhooks
    from okrsync.errors import ConnectorError
    from okrsync.http import Http
    from okrsync.store import Store

T = TypeVar("T")
HANDSHAKE_WINDOW_S = 120

hooks_app = typer.Typer(
    no_args_is_help=True, help="Webhooks: what to register in each tracker, and registering it."
)
Connector = Annotated[
    str | None,
    typer.Argument(
        metavar="CONNECTOR", help="A connector's name (default: every enabled connector)."
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        metavar="URL",
        help="The daemon's address as the tracker reaches it (default: \\[web] public_url, "
        "else http://<\\[service] host>:<port>).",
    ),
]


@dataclass(frozen=True, slots=True)
class Plan:
    """One connector's webhook: its support (None: the plug-in has none), URL and secret."""

    config: ConnectorConfig
    support: Webhooks | None
    url: str

    @property
    def on(self) -> bool:
        """Webhooks on: a secret is configured, or the tracker chooses it (Asana)."""
        from okrsync.config import secret_key

        has_secret = secret_key(self.config, "webhook_secret") is not None
        return self.support is not None and (has_secret or self.support.handshake)


@hooks_app.command("show")
def show(
    ctx: typer.Context,
    connector: Connector = None,
    base_url: BaseUrl = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check", help="Ask each tracker whether the token may register hooks."
        ),
    ] = True,
) -> None:
    """Print, per connector, the webhook URL, events and content type to register in the
    tracker, and whether `okrsync hooks register` can do it with the configured token."""
    settings = state_of(ctx).settings
    plans = plans_for(settings, connector, base_url)
    checkable = [p for p in plans if p.on]
    checks = _run(_check_all(checkable)) if check else {}
    for plan in plans:
        for line in describe(plan, checks.get(plan.config.name)):
            out().print(line, highlight=False, soft_wrap=True)


@hooks_app.command("register")
def register_hooks(
    ctx: typer.Context, connector: Connector = None, base_url: BaseUrl = None
) -> None:
    """Register the webhooks in each tracker through its API with the connector's token;
    idempotent (a hook already delivering to the URL is reported, not duplicated)."""
    state = state_of(ctx)
    plans = plans_for(state.settings, connector, base_url)
    chosen = [p for p in plans if _registrable(p, named=connector is not None)]
    shaking = [p for p in chosen if p.support is not None and p.support.handshake]
    if shaking:
        _handshake_windows(state.store, shaking, HANDSHAKE_WINDOW_S)
    try:
        failed = [plan for plan in chosen if not _register_one(plan)]
    finally:
        if shaking:  # the tracker answers only after its handshakes: close what is left
            _handshake_windows(state.store, shaking, 0)
    if failed:
        raise typer.Exit(1)


def _register_one(plan: Plan) -> bool:
    """Register `plan`'s hooks and print them; False (one error line) when the tracker
    refused or failed."""
    try:
        done = _run(register_plan(plan))
    except ConfigError:
        raise
    except Exception as exc:
        err().print(f"error: {safe(refusal(plan, exc))}", highlight=False, soft_wrap=True)
        return False
    for target in done:
        out().print(safe(_registered(plan, target)), highlight=False, soft_wrap=True)
    return True


# --- which connectors, which URL -------------------------------------------------------------


def plans_for(settings: Settings, name: str | None, base_url: str | None) -> list[Plan]:
    """The chosen connectors' plans; ConfigError (exit 2) for an unknown name or a bad URL."""
    from okrsync.connector import webhooks

    if name is not None:
        chosen = [settings.connector(name)]
    else:
        chosen = [cc for cc in settings.connectors if cc.enabled]
    base = daemon_url(settings, base_url)
    plans = []
    for cc in chosen:
        support = webhooks(cc.type)
        plans.append(Plan(cc, support, hook_url(base, cc, support)))
    return plans


def daemon_url(settings: Settings, base_url: str | None) -> str:
    """`--base-url`, else `[web] public_url`, else `http://<[service] host>:<port>`."""
    if base_url is not None:
        split = urllib.parse.urlsplit(base_url)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise ConfigError(
                f"--base-url {base_url!r} is not an http(s) URL; give the daemon's address as "
                "the tracker reaches it, e.g. https://okrsync.example.com"
            )
        return base_url.rstrip("/")
    if settings.web.public_url:
        return settings.web.public_url.rstrip("/")
    service = settings.service
    if service.port == 0:
        raise ConfigError(
            "[service] port is 0 (any free port), so the webhook URL is unknown; pass "
            "--base-url or set [web] public_url"
        )
    host = f"[{service.host}]" if ":" in service.host else service.host
    return f"http://{host}:{service.port}"


def hook_url(base: str, cc: ConnectorConfig, support: Webhooks | None) -> str:
    """The daemon's route for this one connector: `<base>/hooks/<route>/<name>` (the route
    is the plug-in's, else its type)."""
    route = support.route if support is not None else cc.type
    return f"{base}/hooks/{route}/{urllib.parse.quote(cc.name, safe='')}"


def _registrable(plan: Plan, *, named: bool) -> bool:
    """Whether to register `plan`; a connector named on the command line that cannot be is
    bad input (exit 2), one among all is skipped with a line."""
    cc = plan.config
    why = None
    if plan.support is None:
        why = f"connector {cc.name!r} (type {cc.type!r}): its plug-in does not support webhooks"
    elif not plan.on:
        why = (
            f"connector {cc.name!r}: webhooks are off; set webhook_secret_env (or "
            "webhook_secret_file) in its [[connectors]] section first (docs/webhooks.md)"
        )
    if why is not None and named:
        raise ConfigError(why)
    if why is not None:
        err().print(f"skipped: {safe(why)}", highlight=False, soft_wrap=True)
    return why is None


def _handshake_windows(store: Store, plans: list[Plan], seconds: int) -> None:
    """Let the daemon accept these connectors' handshakes, one per project in scope, for the
    next `seconds` (0: close the windows)."""
    from datetime import UTC, datetime, timedelta

    until = datetime.now(UTC) + timedelta(seconds=seconds)
    for plan in plans:
        for resource in plan.config.scope:
            store.expect_webhook_handshake(plan.config.name, until, resource=resource)


# --- talking to the tracker ------------------------------------------------------------------


def _run(work: Coroutine[object, object, T]) -> T:
    import asyncio

    return asyncio.run(work)


async def _with_http(cc: ConnectorConfig, work: Callable[[Http], Awaitable[T]]) -> T:
    """Run `work` with an `Http` for this connector: the core's policies, the plug-in's own
    auth headers (set by building the connector), a short retry budget."""
    from okrsync.connector import load
    from okrsync.http import Http, RetryPolicy
    from okrsync.sync import needs_tls, new_client

    async with new_client(tls=needs_tls([cc])) as client:
        http = Http(
            client,
            connector=cc.name,
            policy=RetryPolicy(max_attempts=3, max_wait_s=30.0),
            timeout=cc.timeout_s,
            origin=cc.base_url,
            max_response_bytes=int(cc.max_response_mb * 2**20),
        )
        load(cc.type)(cc, http)
        return await work(http)


async def register_plan(plan: Plan) -> list[HookTarget]:
    """Register `plan`'s hooks through its tracker's API with the connector's token, as
    `okrsync hooks register` does (the demo calls it too); raises what the tracker refused."""
    return await _with_http(plan.config, functools.partial(_register, plan))


async def _register(plan: Plan, http: Http) -> list[HookTarget]:
    assert plan.support is not None  # noqa: S101 - _registrable kept only supported ones
    secret = plan.config.webhook_secret()
    return await plan.support.register(plan.config, http, plan.url, secret)


async def _existing(plan: Plan, support: Webhooks, http: Http) -> list[HookTarget]:
    return await support.existing(plan.config, http, plan.url)


async def _check_all(plans: list[Plan]) -> dict[str, str]:
    """Per connector: what listing its hooks with its token said (never raises)."""
    found = {}
    for plan in plans:
        support = plan.support
        assert support is not None  # noqa: S101 - only plans with webhooks on
        try:
            hooks = await _with_http(plan.config, functools.partial(_existing, plan, support))
        except ConfigError as exc:
            found[plan.config.name] = f"cannot check: {exc}"
            continue
        except Exception as exc:
            found[plan.config.name] = "not with this token: " + refusal(plan, exc)
            continue
        where = ", ".join(h.where for h in hooks)
        state = f"already registered for {where}" if hooks else "not registered yet"
        found[plan.config.name] = f"supported with this token ({state})"
    return found


def refusal(plan: Plan, exc: Exception) -> str:
    """One line: what the tracker said when registering or listing, and the fix."""
    from okrsync.errors import ConnectorError

    cc = plan.config
    needs = plan.support.needs if plan.support is not None else "webhook rights"
    if not isinstance(exc, ConnectorError):
        return f"connector {cc.name!r}: {type(exc).__name__}: {exc}"
    return f"connector {cc.name!r}: " + _status_line(cc, exc, needs, plan)


def _status_line(cc: ConnectorConfig, exc: ConnectorError, needs: str, plan: Plan) -> str:
    status = exc.status
    handshake = plan.support is not None and plan.support.handshake
    if status == 401:
        token = _source(cc, "token") or "token_env"
        return f"the tracker refused the token (HTTP 401); check {token}"
    if status in (403, 404):
        return f"the tracker refused to manage webhooks (HTTP {status}); the token needs {needs}"
    if status == 400 and handshake:
        return (
            f"the tracker could not complete its handshake with {plan.url} (HTTP 400); start "
            "the daemon (okrsync run) where that URL reaches it, or pass --base-url"
        )
    if status in (400, 422):
        return (
            f"the tracker refused the hook (HTTP {status}); it must be able to reach "
            f"{plan.url}: pass --base-url or set [web] public_url"
        )
    return f"{exc}"


def _source(cc: ConnectorConfig, secret: Literal["token", "webhook_secret"]) -> str | None:
    """Where the connector reads `secret`: the variable or file and its key (None: unset)."""
    from okrsync.config import secret_key

    key = secret_key(cc, secret)
    if key is None:
        return None
    what = "variable" if key.endswith("_env") else "file"
    return f"the {what} {getattr(cc, key)} ({key})"


# --- what is printed -------------------------------------------------------------------------


def describe(plan: Plan, check: str | None) -> list[str]:
    cc = plan.config
    head = f"{safe(cc.name)} (type {safe(cc.type)})"
    if plan.support is None:
        return [f"{head}: webhooks not supported by this plug-in"]
    support = plan.support
    lines = [
        f"{head}: webhooks {'on' if plan.on else 'off'}",
        *_url_lines(plan),
        f"  events        {safe(', '.join(support.events(cc)))}",
        f"  content type  {support.content_type}",
        f"  secret        {_secret_source(plan)}",
    ]
    if not plan.on:
        lines.append("  register      set webhook_secret_env (or webhook_secret_file) first")
    else:
        lines.append(f"  register      {safe(check or 'not checked (--no-check)')}")
    return lines


def _url_lines(plan: Plan) -> list[str]:
    """The URL to register; a handshake tracker's (Asana's) once per project in scope."""
    from okrsync.connector import resource_url

    urls = [plan.url]
    if plan.support is not None and plan.support.handshake:
        urls = [resource_url(plan.url, r) for r in plan.config.scope]
    heads = ["  url           "] + ["                "] * (len(urls) - 1)
    return [head + safe(url) for head, url in zip(heads, urls, strict=True)]


def _secret_source(plan: Plan) -> str:
    source = _source(plan.config, "webhook_secret")
    if source is not None:
        return safe(source)
    if plan.support is not None and plan.support.handshake:
        return (
            "chosen by the tracker at each webhook's handshake with the daemon (register opens it)"
        )
    return "none: set webhook_secret_env or webhook_secret_file"


def _registered(plan: Plan, target: HookTarget) -> str:
    from okrsync.connector import resource_url

    what = "created" if target.created else "already registered"
    url = plan.url
    if plan.support is not None and plan.support.handshake:
        url = resource_url(url, target.where)
    return f"{plan.config.name}: {target.where}: hook {target.hook_id} {what} -> {url}"


def register(app: typer.Typer) -> None:
    """Add `hooks show|register` to the root app."""
    app.add_typer(hooks_app, name="hooks")
