"""`okrsync hooks show|register` against the sandbox: the URL, events and secret source per
connector, registration through the trackers' APIs (idempotent), refusals as one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from okrsync import connector as connector_mod
from okrsync.cli_hooks import Plan, describe
from okrsync.config import connector_config
from okrsync.demo import sandbox_connectors, sandbox_env
from okrsync.sandbox import Sandbox
from okrsync.store import Store
from tests.helpers import CliResult, run_cli, write
from tests.integration.test_sandbox_hooks import Got, Receiver

SIZES = {"jira": 10, "jira_dc": 0, "asana": 10, "github": 10}
SECRETS = {"OKRSYNC_TEST_GH_HOOK": "gh-hook-secret-1", "OKRSYNC_TEST_JIRA_HOOK": "jira-hook-2"}
BASE = "http://127.0.0.1:9999"


def toml(value: Any) -> str:
    return json.dumps(value)  # strings, lists and numbers read the same in TOML


def write_config(
    tmp_path: Path,
    sb: Sandbox,
    service_port: int = 0,
    asana_projects: int = 1,
    public_url: str | None = None,
) -> Path:
    """The sandbox's connectors; GitHub and Jira with a webhook secret variable, Jira DC
    without (webhooks off), Asana without (its secret comes from the handshake), on its
    first `asana_projects` projects."""
    hook_env = {"github": "OKRSYNC_TEST_GH_HOOK", "jira": "OKRSYNC_TEST_JIRA_HOOK"}
    store_url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    lines = [
        f"[store]\nurl = {toml(store_url)}\n",
        f'[service]\nhost = "127.0.0.1"\nport = {service_port}\n',
    ]
    if public_url:
        lines.append(f"[web]\npublic_url = {toml(public_url)}\n")
    for cc in sandbox_connectors(sb):
        body = cc.model_dump(exclude_none=True, exclude_defaults=True)
        scope = cc.scope[:asana_projects] if cc.type == "asana" else cc.scope
        body |= {"name": cc.name, "type": cc.type, "base_url": cc.base_url, "scope": scope}
        if cc.name in hook_env:
            body["webhook_secret_env"] = hook_env[cc.name]
        section = "".join(f"{k} = {toml(v)}\n" for k, v in body.items() if k != "status_map")
        lines.append("[[connectors]]\n" + section)
    return write(tmp_path / "okrsync.toml", "\n".join(lines))


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(seed=4, sizes=SIZES) as sandbox:
        yield sandbox


def hooks(tmp_path: Path, sb: Sandbox, *args: str) -> CliResult:
    cfg = tmp_path / "okrsync.toml"
    if not cfg.exists():
        write_config(tmp_path, sb)
    env = {**sandbox_env(sb), **SECRETS}
    return run_cli("--config", str(cfg), "hooks", *args, cwd=tmp_path, env=env)


def test_show_prints_url_events_content_type_and_secret_source(tmp_path: Path, sb: Sandbox) -> None:
    """Per connector: the daemon URL for it, the events, the content type, where the secret
    comes from (never the secret), and that the token may register hooks."""
    result = hooks(tmp_path, sb, "show", "--base-url", BASE)
    assert result.code == 0, result.stderr
    text = result.stdout
    assert f"url           {BASE}/hooks/github/github" in text
    assert "events        issues, pull_request, milestone" in text
    assert "content type  application/json" in text
    assert "the variable OKRSYNC_TEST_GH_HOOK (webhook_secret_env)" in text
    assert "supported with this token (not registered yet)" in text
    assert "jira-dc (type jira): webhooks off" in text
    assert "chosen by the tracker at each webhook's handshake" in text
    assert not any(secret in text + result.stderr for secret in SECRETS.values())


def test_register_creates_one_hook_per_repo_once_and_show_sees_them(
    tmp_path: Path, sb: Sandbox
) -> None:
    """GitHub: one hook per repository in scope, with the configured secret; a second run
    reports them as already registered and creates nothing; `show` then lists them."""
    first = hooks(tmp_path, sb, "register", "github", "--base-url", BASE)
    assert first.code == 0, first.stderr
    assert first.stdout.count("created") == len(sb.scopes("github"))
    subs = sb.hooks.subscriptions("github")
    assert sorted(s.scope or "" for s in subs) == sorted(sb.scopes("github"))
    assert {s.url for s in subs} == {f"{BASE}/hooks/github/github"}
    assert {s.secret for s in subs} == {SECRETS["OKRSYNC_TEST_GH_HOOK"]}
    assert {s.events for s in subs} == {("issues", "pull_request", "milestone")}
    again = hooks(tmp_path, sb, "register", "github", "--base-url", BASE)
    assert again.code == 0, again.stderr
    assert again.stdout.count("already registered") == len(sb.scopes("github"))
    assert len(sb.hooks.subscriptions("github")) == len(sb.scopes("github"))
    shown = hooks(tmp_path, sb, "show", "github", "--base-url", BASE)
    assert "already registered for acme/web" in shown.stdout


def test_register_jira_makes_one_webhook_filtered_to_the_projects(
    tmp_path: Path, sb: Sandbox
) -> None:
    """Jira: one webhook for the issue events, its JQL naming the projects in scope."""
    result = hooks(tmp_path, sb, "register", "jira", "--base-url", BASE)
    assert result.code == 0, result.stderr
    [sub] = sb.hooks.subscriptions("jira")
    assert sub.jql == "project in (" + ", ".join(f'"{p}"' for p in sb.scopes("jira")) + ")"
    assert sub.events == ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted")
    assert sub.secret == SECRETS["OKRSYNC_TEST_JIRA_HOOK"]


def test_a_token_without_hook_rights_is_one_line_with_the_fix_and_exit_1(
    tmp_path: Path, sb: Sandbox
) -> None:
    """GitHub refusing hook management (403) is one error line naming admin:repo_hook,
    exit 1, no traceback, no secret; `show` says the token cannot register."""
    sb.hooks.forbidden.add("github")
    result = hooks(tmp_path, sb, "register", "github", "--base-url", BASE)
    assert result.code == 1
    [line] = result.stderr.strip().splitlines()
    assert "HTTP 403" in line
    assert "admin:repo_hook" in line
    assert "Traceback" not in result.stderr
    shown = hooks(tmp_path, sb, "show", "github", "--base-url", BASE)
    assert "not with this token" in shown.stdout


def test_asana_register_makes_one_webhook_per_project_each_inside_its_window(
    tmp_path: Path, sb: Sandbox
) -> None:
    """Asana with two projects: `register` creates one webhook per project, targeting
    `<url>?resource=<project gid>`; each handshake arrives while the store expects one for
    that project, the windows are closed once register is done, and a second run creates
    nothing."""
    write_config(tmp_path, sb, asana_projects=2)
    projects = sb.scopes("asana")[:2]
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    receiver = Receiver()
    open_at_handshake: dict[str, bool] = {}

    def probe(got: Got) -> None:
        resource = parse_qs(urlsplit(got.path).query)["resource"][0]
        store = Store.open(url, upgrade=False)
        try:
            open_at_handshake[resource] = store.webhook_handshake_open("asana", resource=resource)
        finally:
            store.close()

    receiver.on_post = probe
    try:
        base = receiver.url("").rstrip("/")
        result = hooks(tmp_path, sb, "register", "asana", "--base-url", base)
        again = hooks(tmp_path, sb, "register", "asana", "--base-url", base)
    finally:
        receiver.close()
    assert result.code == 0, result.stderr
    subs = sb.hooks.subscriptions("asana")
    assert {s.scope: s.url for s in subs} == {
        p: f"{base}/hooks/asana/asana?resource={p}" for p in projects
    }
    assert [g.path for g in receiver.got] == [f"/hooks/asana/asana?resource={p}" for p in projects]
    assert open_at_handshake == dict.fromkeys(projects, True)
    assert result.stdout.count("created") == 2
    assert (again.code, again.stdout.count("already registered")) == (0, 2), again.stderr
    assert len(sb.hooks.subscriptions("asana")) == 2
    store = Store.open(url, upgrade=False)
    try:
        assert not any(store.webhook_handshake_open("asana", resource=p) for p in projects)
    finally:
        store.close()


def test_show_lists_one_asana_url_per_project(tmp_path: Path, sb: Sandbox) -> None:
    """`show` gives an Asana connector's URL once per project, each with its `resource`."""
    write_config(tmp_path, sb, asana_projects=2)
    result = hooks(tmp_path, sb, "show", "asana", "--base-url", BASE, "--no-check")
    assert result.code == 0, result.stderr
    a, b = sb.scopes("asana")[:2]
    assert f"  url           {BASE}/hooks/asana/asana?resource={a}\n" in result.stdout
    assert f"                {BASE}/hooks/asana/asana?resource={b}\n" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nosuch", "--base-url", BASE], "nosuch"),
        (["show", "--base-url", "ftp:/x"], "--base-url"),
        (["show"], "[service] port is 0"),
        (["register", "jira-dc", "--base-url", BASE], "webhook_secret_env"),
    ],
)
def test_bad_input_exits_2_with_the_fix(
    tmp_path: Path, sb: Sandbox, args: list[str], message: str
) -> None:
    """An unknown connector, a bad URL, an unknown port, or registering a connector with
    webhooks off: exit 2 with a message naming what to fix."""
    result = hooks(tmp_path, sb, *args)
    assert result.code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_default_url_is_the_public_url_else_the_service_host_and_port(
    tmp_path: Path, sb: Sandbox
) -> None:
    """Without --base-url the URL is under [web] public_url, else http://<[service]
    host>:<port>."""
    write_config(tmp_path, sb, service_port=9464)
    result = hooks(tmp_path, sb, "show", "github", "--no-check")
    assert "url           http://127.0.0.1:9464/hooks/github/github" in result.stdout
    assert "not checked (--no-check)" in result.stdout
    write_config(tmp_path, sb, service_port=9464, public_url="https://okr.example.com/")
    result = hooks(tmp_path, sb, "show", "github", "--no-check")
    assert "url           https://okr.example.com/hooks/github/github" in result.stdout


class _Plain:
    """A third-party plug-in that knows nothing of webhooks."""

    kind: ClassVar[str] = "plain"


def test_a_plugin_without_webhooks_loads_and_is_shown_as_not_supported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plug-in with no `webhooks` attribute is `None` to the core, and `show` says its
    webhooks are not supported."""
    ep = EntryPoint("plain", f"{__name__}:_Plain", connector_mod.GROUP)
    monkeypatch.setattr(connector_mod, "_entry", lambda kind: ep)
    assert connector_mod.webhooks("plain") is None
    cc = connector_config(
        {"name": "p", "type": "github", "base_url": "http://127.0.0.1:1", "scope": ["a/b"]}
    )
    lines = describe(Plan(cc, None, f"{BASE}/hooks/plain/p"), None)
    assert lines == ["p (type github): webhooks not supported by this plug-in"]
