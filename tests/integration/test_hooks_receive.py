"""Webhooks in (docs/webhooks.md) through the daemon's ASGI app in-process, on a real SQLite
store: refusals, replays, ping, the Asana handshake, coalesced webhook runs against the
sandbox, and deletions that leave the signals at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from okrsync.config import ConnectorConfig, Settings, SignalsConfig
from okrsync.demo import MAPPINGS, sandbox_connectors, sandbox_env
from okrsync.hooks.dispatch import Dispatcher
from okrsync.hooks.verify import sign
from okrsync.locks import NoRunLocks
from okrsync.pipeline import IN_FLIGHT_HERE, holding, signals_of
from okrsync.sandbox import Sandbox
from okrsync.service import Service, open_service
from okrsync.store import Store
from okrsync.web.app import WebContext, create_app
from tests.helpers import coalescing_github

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
SIZES = {"jira": 12, "jira_dc": 1, "asana": 12, "github": 12}
SECRET = "whsec-for-tests-0123456789abcdef"
SECRET_ENV = "OKRSYNC_TEST_WEBHOOK_SECRET"


# -- the daemon, in-process --------------------------------------------------------------------


@contextmanager
def daemon(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    coalesce_s: float = 0.2,
    web: dict[str, Any] | None = None,
    **service: Any,
) -> Iterator[tuple[Service, Sandbox]]:
    """A Service over a fresh SQLite store with the sandbox's GitHub, Jira and Asana
    connectors; GitHub and Jira sign with SECRET, Asana has no configured secret."""
    with Sandbox(seed=5, sizes=SIZES) as sb:
        for k, v in sandbox_env(sb).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv(SECRET_ENV, SECRET)
        hooks: dict[str, object] = {
            "webhook_secret_env": SECRET_ENV,
            "webhook_coalesce_s": coalesce_s,
        }
        connectors = [_shaped(c) for c in sandbox_connectors(sb, None, **hooks)]
        settings = Settings(
            store={"url": f"sqlite:///{tmp_path / 'okrsync.db'}"},
            mappings={"paths": [str(MAPPINGS)]},
            service=service,
            web=web or {},
            connectors=connectors,
        )
        svc = open_service(settings, None)
        try:
            yield svc, sb
        finally:
            svc.store.close()


def _shaped(cc: ConnectorConfig) -> ConnectorConfig:
    """jira-dc off (the mappings name it); Asana without a configured secret (handshake)."""
    if cc.name == "jira-dc":
        return cc.model_copy(update={"enabled": False})
    if cc.type == "asana":
        return cc.model_copy(update={"webhook_secret_env": None})
    return cc


@asynccontextmanager
async def client_of(ctx: WebContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def served(svc: Service, work: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    """Run `work` against the daemon's app (its real web context and dispatcher), then stop
    the service as SIGTERM does."""

    async def main() -> None:
        async with client_of(svc.web_context()) as client:
            try:
                await work(client)
            finally:
                await svc.shutdown(None)

    asyncio.run(main())


# -- deliveries --------------------------------------------------------------------------------


def github_body(name: str, repo: str | None = None, issue_id: str | None = None) -> bytes:
    data = json.loads((FIXTURES / "github" / name).read_text())
    if repo is not None:
        data["repository"]["full_name"] = repo
    if issue_id is not None:
        data["issue"]["id"] = int(issue_id)
    return json.dumps(data).encode()


def github_headers(body: bytes, event: str = "issues", delivery: str = "d-1") -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-hub-signature-256": sign("github", SECRET, body),
    }


def repo_of(sb: Sandbox) -> str:
    return sb.scopes("github")[0]


def runs(svc: Service, connector: str = "github") -> list[tuple[str, str]]:
    return [(r.trigger, r.status) for r in reversed(svc.store.runs(connector))]


def counted(svc: Service, connector: str, outcome: str) -> float:
    text = svc.metrics.render().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "okrsync_webhook_deliveries_total" and sample.labels == {
                "connector": connector,
                "outcome": outcome,
            }:
                return sample.value
    return 0.0


# -- refusals ----------------------------------------------------------------------------------


def test_unknown_type_connector_or_webhooks_off_is_404(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An unknown tracker type, an unknown connector name and a connector without a webhook
    secret are 404 with a one-line error, each logged as webhook.refused with its reason."""
    with daemon(monkeypatch, tmp_path) as (svc, _sb):

        async def work(client: httpx.AsyncClient) -> None:
            with capture_logs() as logs:
                gitlab = await client.post("/hooks/gitlab", content=b"{}")
                nobody = await client.post("/hooks/github/nobody", content=b"{}")
                asana = await client.post("/hooks/asana", content=b'{"events": []}')
            assert [gitlab.status_code, nobody.status_code, asana.status_code] == [404] * 3
            assert "/hooks/github" in gitlab.json()["error"]
            refused = [e for e in logs if e["event"] == "webhook.refused"]
            assert [e["reason"] for e in refused] == [
                "unknown_type",
                "unknown_connector",
                "webhooks_off",
            ]

        served(svc, work)
        assert runs(svc) == []
        assert counted(svc, "nobody", "unknown_connector") == 1


def test_bad_missing_or_foreign_signatures_are_401_and_never_sync(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A wrong secret, no signature, SHA-1's header and a tampered body are each 401; the log
    names the reason and never the body or the secret; no run follows."""
    with daemon(monkeypatch, tmp_path) as (svc, sb):
        body = github_body("issues.closed.json", repo=repo_of(sb))

        async def work(client: httpx.AsyncClient) -> None:
            forged = {**github_headers(body), "x-hub-signature-256": sign("github", "x", body)}
            missing = {k: v for k, v in github_headers(body).items() if "signature" not in k}
            sha1 = {**missing, "x-hub-signature": "sha1=" + "0" * 40}
            with capture_logs() as logs:
                answers = [
                    await client.post("/hooks/github", content=body, headers=forged),
                    await client.post("/hooks/github", content=body, headers=missing),
                    await client.post("/hooks/github", content=body, headers=sha1),
                    await client.post(
                        "/hooks/github", content=body + b" ", headers=github_headers(body)
                    ),
                ]
            assert [a.status_code for a in answers] == [401] * 4
            reasons = [e["reason"] for e in logs if e["event"] == "webhook.refused"]
            assert reasons == [
                "bad_signature",
                "missing_signature",
                "missing_signature",
                "bad_signature",
            ]
            shown = repr(logs) + "".join(a.text for a in answers)
            assert SECRET not in shown
            assert "Spelling error" not in shown  # the issue's title: the body is never logged
            await asyncio.sleep(0.4)  # past the coalescing window: nothing was asked

        served(svc, work)
        assert runs(svc) == []
        assert counted(svc, "github", "bad_signature") == 2


def test_a_body_over_the_limit_is_413_read_no_further(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Over `[service] webhook_max_body_kb`: 413 when Content-Length says so, and 413 for a
    chunked body without one, whose stream is left unread after the limit."""
    with daemon(monkeypatch, tmp_path, webhook_max_body_kb=2) as (svc, sb):
        body = github_body("issues.closed.json", repo=repo_of(sb))
        big = body[:-1] + b', "pad": "' + b"x" * 4096 + b'"}'
        pulled: list[int] = []

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                pulled.append(1)
                yield b" " * 512

        async def work(client: httpx.AsyncClient) -> None:
            declared = await client.post("/hooks/github", content=big, headers=github_headers(big))
            streamed = await client.post(
                "/hooks/github", content=chunks(), headers=github_headers(big)
            )
            assert (declared.status_code, streamed.status_code) == (413, 413)
            assert "webhook_max_body_kb" in declared.json()["error"]
            small = await client.post("/hooks/github", content=body, headers=github_headers(body))
            assert small.status_code == 202

        served(svc, work)
        assert len(pulled) < 100
        assert counted(svc, "-", "too_large") == 2


def test_a_verified_body_that_is_not_the_trackers_json_is_400(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Signed but not JSON, or an issues event without a repository: 400, never a 500."""
    with daemon(monkeypatch, tmp_path) as (svc, _sb):

        async def work(client: httpx.AsyncClient) -> None:
            for body in (b"not json", b'{"action": "closed"}'):
                answer = await client.post(
                    "/hooks/github", content=body, headers=github_headers(body)
                )
                assert answer.status_code == 400, answer.text

        served(svc, work)
        assert runs(svc) == []


def test_a_delivery_outside_every_connectors_scope_is_404(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A verified delivery about a repository no connector syncs: 404 scope_not_covered."""
    with daemon(monkeypatch, tmp_path) as (svc, _sb):
        body = github_body("issues.closed.json", repo="someone/else")

        async def work(client: httpx.AsyncClient) -> None:
            answer = await client.post("/hooks/github", content=body, headers=github_headers(body))
            assert answer.status_code == 404
            assert "someone/else" in answer.json()["error"]

        served(svc, work)
        assert counted(svc, "github", "scope_not_covered") == 1


# -- answered without a run --------------------------------------------------------------------


def test_ping_is_answered_and_a_replay_is_a_duplicate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """GitHub's ping: 200 pong, no run. The same delivery id twice: 202, then 200
    duplicate, and one run only; the connector's name addresses it explicitly too."""
    with daemon(monkeypatch, tmp_path, coalesce_s=0.05) as (svc, sb):
        ping = github_body("ping.json", repo=repo_of(sb))
        body = github_body("issues.closed.json", repo=repo_of(sb))
        assert svc.hooks is None

        async def work(client: httpx.AsyncClient) -> None:
            pong = await client.post(
                "/hooks/github", content=ping, headers=github_headers(ping, "ping", "p-1")
            )
            assert (pong.status_code, pong.json()) == (200, {"status": "pong"})
            first = await client.post(
                "/hooks/github/github", content=body, headers=github_headers(body, delivery="x")
            )
            again = await client.post(
                "/hooks/github", content=body, headers=github_headers(body, delivery="x")
            )
            assert (first.status_code, first.json()) == (
                202,
                {"status": "accepted", "connectors": ["github"]},
            )
            assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
            assert svc.hooks is not None
            await svc.hooks.idle()

        served(svc, work)
        assert runs(svc) == [("webhook", "ok")]
        assert counted(svc, "github", "duplicate") == 1
        assert counted(svc, "github", "pong") == 1


def test_delivery_ids_are_remembered_per_connector_for_a_day(
    monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    """The store's replay memory (SQLite and PostgreSQL): a second insert of an id is
    refused, another connector may have the same id, and rows older than a day are pruned so
    the id is new again."""
    import okrsync.store._store as store_module

    assert store.remember_webhook_delivery("gh", "abc") is True
    assert store.remember_webhook_delivery("gh", "abc") is False
    assert store.remember_webhook_delivery("jira", "abc") is True
    later = datetime.now(UTC) + timedelta(hours=23)
    monkeypatch.setattr(store_module, "now", lambda: later)
    assert store.remember_webhook_delivery("gh", "abc") is False
    later = datetime.now(UTC) + timedelta(hours=25)
    monkeypatch.setattr(store_module, "now", lambda: later)
    assert store.remember_webhook_delivery("gh", "abc") is True


def test_a_handshake_secret_is_taken_only_inside_its_window(store: Store) -> None:
    """The store's handshake (SQLite and PostgreSQL): no window, no secret; inside one the
    secret is stored and the window closes; an expired window takes nothing."""
    assert store.accept_webhook_handshake("asana", "first-secret-1234") is False
    assert store.webhook_secrets("asana") == {}
    store.expect_webhook_handshake("asana", datetime.now(UTC) + timedelta(minutes=2))
    assert store.webhook_handshake_open("asana") is True
    assert store.accept_webhook_handshake("asana", "second-secret-1234") is True
    assert store.webhook_handshake_open("asana") is False
    assert store.accept_webhook_handshake("asana", "third-secret-12345") is False
    store.expect_webhook_handshake("asana", datetime.now(UTC) - timedelta(seconds=1))
    assert store.accept_webhook_handshake("asana", "fourth-secret-1234") is False
    assert store.webhook_secrets("asana") == {"": "second-secret-1234"}


def test_handshake_windows_and_secrets_are_kept_per_resource(store: Store) -> None:
    """The store keys handshakes by (connector, resource) on SQLite and PostgreSQL: project
    A's window takes no secret for B or for the connector as a whole, each project keeps its
    own secret, and `webhook_secrets` returns them all by project."""
    until = datetime.now(UTC) + timedelta(minutes=2)
    store.expect_webhook_handshake("asana", until, resource="111")
    assert store.webhook_handshake_open("asana", resource="111") is True
    assert store.webhook_handshake_open("asana", resource="222") is False
    assert store.webhook_handshake_open("asana") is False
    assert store.accept_webhook_handshake("asana", "secret-b-12345678", resource="222") is False
    assert store.accept_webhook_handshake("asana", "secret-all-123456") is False
    assert store.accept_webhook_handshake("asana", "secret-a-12345678", resource="111") is True
    store.expect_webhook_handshake("asana", until, resource="222")
    assert store.webhook_secrets("asana") == {"111": "secret-a-12345678"}
    assert store.accept_webhook_handshake("asana", "secret-b-12345678", resource="222") is True
    assert store.webhook_secrets("asana") == {
        "111": "secret-a-12345678",
        "222": "secret-b-12345678",
    }
    assert store.webhook_secrets("asana").get("222") == "secret-b-12345678"
    assert store.webhook_secrets("asana-other") == {}


# -- Asana's handshake -------------------------------------------------------------------------


def asana_body(name: str = "task_changed.json", task: str | None = None) -> bytes:
    data = json.loads((FIXTURES / "asana" / name).read_text())
    if task is not None:
        data["events"][0]["resource"]["gid"] = task
    return json.dumps(data).encode()


def signed_asana(secret: str, body: bytes) -> dict[str, str]:
    return {"x-hook-signature": sign("asana", secret, body)}


def test_asana_handshake_only_inside_the_window_then_deliveries_verify_with_its_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """X-Hook-Secret outside a window: 401, nothing stored. Inside the window of the URL's
    `resource` (expect_webhook_handshake): 200 echoing the secret, which then verifies that
    project's deliveries; the window closes after it."""
    with daemon(monkeypatch, tmp_path, coalesce_s=0.05) as (svc, sb):
        chosen = "asana-chose-this-secret-4f9a"
        project = sb.scopes("asana")[0]
        url = f"/hooks/asana?resource={project}"
        body = asana_body()

        async def work(client: httpx.AsyncClient) -> None:
            early = await client.post(url, headers={"x-hook-secret": chosen})
            assert early.status_code == 401
            assert "x-hook-secret" not in early.headers
            until = datetime.now(UTC) + timedelta(minutes=5)
            svc.store.expect_webhook_handshake("asana", until, resource=project)
            shake = await client.post(url, headers={"x-hook-secret": chosen})
            assert shake.status_code == 200
            assert shake.headers["x-hook-secret"] == chosen
            late = await client.post(url, headers={"x-hook-secret": "another-one-1234"})
            assert late.status_code == 401
            forged = signed_asana("another-one-1234", body)
            assert (await client.post(url, content=body, headers=forged)).status_code == 401
            ok = await client.post(url, content=body, headers=signed_asana(chosen, body))
            assert ok.status_code == 202, ok.text
            assert svc.hooks is not None
            await svc.hooks.idle()

        served(svc, work)
        assert svc.store.webhook_secrets("asana") == {project: "asana-chose-this-secret-4f9a"}
        assert runs(svc, "asana") == [("webhook", "ok")]


def test_each_asana_project_keeps_its_own_secret_and_a_delivery_is_checked_against_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two projects of one connector: each handshake stores its secret under its `resource`;
    a delivery for each, signed with its own secret, is accepted; one signed with A's secret
    but sent as B's is refused 401; without `resource` a delivery verifies against each
    secret; a handshake without `resource` finds no window (only the projects' are open)."""
    with daemon(monkeypatch, tmp_path, coalesce_s=30) as (svc, sb):
        a, b = sb.scopes("asana")[:2]
        secrets = {a: "secret-of-project-a-1234", b: "secret-of-project-b-5678"}
        until = datetime.now(UTC) + timedelta(minutes=2)
        for project in (a, b):
            svc.store.expect_webhook_handshake("asana", until, resource=project)

        async def work(client: httpx.AsyncClient) -> None:
            bare = await client.post("/hooks/asana/asana", headers={"x-hook-secret": "x" * 20})
            assert (bare.status_code, bare.json()["error"].count("?resource=")) == (401, 1)
            for project, secret in secrets.items():
                url = f"/hooks/asana/asana?resource={project}"
                shake = await client.post(url, headers={"x-hook-secret": secret})
                assert shake.status_code == 200, shake.text
            for n, project in enumerate((a, b)):
                body = asana_body(task=f"90{n}")
                headers = signed_asana(secrets[project], body)
                url = f"/hooks/asana?resource={project}"
                ok = await client.post(url, content=body, headers=headers)
                assert ok.status_code == 202, ok.text
            body = asana_body(task="903")
            as_b = signed_asana(secrets[a], body)
            crossed = await client.post(f"/hooks/asana?resource={b}", content=body, headers=as_b)
            assert crossed.status_code == 401
            by_b = signed_asana(secrets[b], body)
            plain = await client.post("/hooks/asana", content=body, headers=by_b)
            assert plain.status_code == 202, plain.text

        with capture_logs() as logs:
            served(svc, work)
        assert svc.store.webhook_secrets("asana") == secrets
        refused = [e for e in logs if e["event"] == "webhook.refused"]
        assert [(e["reason"], e.get("resource")) for e in refused] == [
            ("handshake_unexpected", None),
            ("bad_signature", b),
        ]
        assert not any(s in json.dumps(logs, default=str) for s in secrets.values())


def test_a_delivery_for_an_unknown_or_unscoped_asana_project_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A `resource` with no stored secret is 404 naming `hooks register`; a secret stored for
    a project the connector no longer syncs verifies, but its delivery is not in scope (404)."""
    with daemon(monkeypatch, tmp_path, coalesce_s=30) as (svc, sb):
        until = datetime.now(UTC) + timedelta(minutes=2)
        svc.store.expect_webhook_handshake("asana", until, resource="404404")
        svc.store.accept_webhook_handshake("asana", "stale-secret-123456", resource="404404")
        body = asana_body()

        async def work(client: httpx.AsyncClient) -> None:
            url = f"/hooks/asana?resource={sb.scopes('asana')[0]}"
            unknown = await client.post(url, content=body, headers=signed_asana("x" * 20, body))
            assert unknown.status_code == 404
            assert "okrsync hooks register" in unknown.json()["error"]
            headers = signed_asana("stale-secret-123456", body)
            stale = await client.post("/hooks/asana?resource=404404", content=body, headers=headers)
            assert (stale.status_code, stale.json()["error"]) == (
                404,
                "no connector's scope covers 404404",
            )

        served(svc, work)
        assert runs(svc, "asana") == []


def test_a_configured_asana_secret_wins_over_the_handshakes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With `webhook_secret_env` set on an Asana connector, a delivery signed with a stored
    handshake secret is refused and one signed with the configured secret accepted."""
    with daemon(monkeypatch, tmp_path, coalesce_s=30) as (svc, sb):
        project = sb.scopes("asana")[0]
        configured = [
            c.model_copy(update={"webhook_secret_env": SECRET_ENV}) if c.type == "asana" else c
            for c in svc.settings.connectors
        ]
        svc.settings = svc.settings.model_copy(update={"connectors": configured})
        until = datetime.now(UTC) + timedelta(minutes=2)
        svc.store.expect_webhook_handshake("asana", until, resource=project)
        svc.store.accept_webhook_handshake("asana", "handshake-secret-1234", resource=project)
        body = asana_body()
        url = f"/hooks/asana?resource={project}"

        async def work(client: httpx.AsyncClient) -> None:
            stored = signed_asana("handshake-secret-1234", body)
            assert (await client.post(url, content=body, headers=stored)).status_code == 401
            ok = await client.post(url, content=body, headers=signed_asana(SECRET, body))
            assert ok.status_code == 202, ok.text

        served(svc, work)


def test_hooks_need_no_user_when_the_app_needs_tokens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With [web] auth = "token", the API without a token is 401 but a signed delivery is
    accepted: the signature is the hooks' authentication."""
    monkeypatch.setenv("OKRSYNC_TEST_WEB_TOKENS", "ops:a-long-enough-web-token-123")
    web = {"auth": "token", "tokens_env": "OKRSYNC_TEST_WEB_TOKENS"}
    with daemon(monkeypatch, tmp_path, coalesce_s=30, web=web) as (svc, sb):
        body = github_body("issues.closed.json", repo=repo_of(sb))

        async def work(client: httpx.AsyncClient) -> None:
            assert (await client.get("/api/v1/runs")).status_code == 401
            hook = await client.post("/hooks/github", content=body, headers=github_headers(body))
            assert hook.status_code == 202

        served(svc, work)


def test_okrsync_web_answers_hooks_with_404(tmp_path: Path) -> None:
    """`okrsync web` (no daemon, no receiver) refuses every delivery with 404."""
    settings = Settings(store={"url": f"sqlite:///{tmp_path / 'okrsync.db'}"})
    store = Store.open(settings.store_url())

    async def main() -> None:
        async with client_of(WebContext(settings, store)) as client:
            answer = await client.post("/hooks/github", content=b"{}")
            assert answer.status_code == 404
            assert "okrsync run" in answer.json()["error"]

    try:
        asyncio.run(main())
    finally:
        store.close()


# -- runs: coalesced, followed, recorded -------------------------------------------------------


def test_a_burst_of_deliveries_causes_one_webhook_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Five deliveries within the coalescing window: one run, recorded with trigger
    "webhook"; the daemon's timer records "schedule" and `run --once` "manual"."""
    with daemon(monkeypatch, tmp_path, coalesce_s=0.3) as (svc, sb):
        body = github_body("issues.closed.json", repo=repo_of(sb))

        async def work(client: httpx.AsyncClient) -> None:
            for n in range(5):
                headers = github_headers(body, delivery=f"burst-{n}")
                assert (
                    await client.post("/hooks/github", content=body, headers=headers)
                ).status_code == 202
            assert svc.hooks is not None
            await svc.hooks.idle()
            await svc.job("github")
            assert await svc.once() == 0  # `okrsync run --once`

        served(svc, work)
        assert runs(svc) == [("webhook", "ok"), ("schedule", "ok"), ("manual", "ok")]
        assert runs(svc, "jira") == [("manual", "ok")]
        assert counted(svc, "github", "accepted") == 5


def test_a_hint_during_a_scheduled_run_runs_once_after_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A delivery while a scheduled run of the connector is in flight in this process: the
    run is not reaped or doubled; the webhook run waits, quietly, and runs once after it."""
    with daemon(monkeypatch, tmp_path, coalesce_s=0.05) as (svc, sb):
        body = github_body("issues.closed.json", repo=repo_of(sb))

        async def work(client: httpx.AsyncClient) -> None:
            with capture_logs() as logs:
                async with holding(svc.locks, svc.store, "github") as busy:
                    assert busy is None
                    in_flight = svc.store.start_run("github", trigger="schedule")
                    answer = await client.post(
                        "/hooks/github", content=body, headers=github_headers(body)
                    )
                    assert answer.status_code == 202
                    await asyncio.sleep(1.0)
                    assert runs(svc) == [("schedule", "running")]
                    svc.store.finish_run(in_flight, "ok")
                assert svc.hooks is not None
                await asyncio.wait_for(svc.hooks.idle(), 10)
            skipped = [e for e in logs if e["event"] == "sync.skipped_locked"]
            assert len(skipped) == 1  # one attempt, then a quiet wait for the run to end

        served(svc, work)
        assert runs(svc) == [("schedule", "ok"), ("webhook", "ok")]


def test_one_process_never_holds_a_connector_twice(tmp_path: Path) -> None:
    """Under SQLite's lock-free run locks, a second hold of a connector in the same process
    (a webhook's run beside a scheduled one) is told to skip, and the first run's record is
    not reaped as abandoned."""
    store = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")

    async def main() -> None:
        async with holding(NoRunLocks(), store, "gh") as first:
            assert first is None
            run_id = store.start_run("gh")
            async with holding(NoRunLocks(), store, "gh") as second:
                assert second == IN_FLIGHT_HERE
            async with holding(NoRunLocks(), store, "other") as third:
                assert third is None
            assert [r.status for r in store.runs("gh")] == ["running"]
            store.finish_run(run_id, "ok")
        async with holding(NoRunLocks(), store, "gh") as again:
            assert again is None

    try:
        asyncio.run(main())
    finally:
        store.close()


class _Runner:
    """A runner whose first run waits for `release`, counting the runs it was asked for."""

    def __init__(self, held_first: int = 0) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.held_first = held_first

    async def __call__(self, connector: str) -> bool:
        self.calls += 1
        if self.calls <= self.held_first:
            return False  # another run held the connector
        if self.calls == self.held_first + 1:
            self.started.set()
            await self.release.wait()
        return True


def _dispatcher(tmp_path: Path, runner: _Runner) -> tuple[Dispatcher, Store]:
    settings = coalescing_github(f"sqlite:///{tmp_path / 'okrsync.db'}")
    store = Store.open(settings.store_url())
    return Dispatcher(store, lambda: settings, runner, NoRunLocks()), store


def test_hints_during_a_run_cause_exactly_one_more_run(tmp_path: Path) -> None:
    """Hints that arrive while a webhook run is in progress are never lost and never pile up:
    however many, they cause one run after it."""
    runner = _Runner()
    dispatcher, store = _dispatcher(tmp_path, runner)

    async def main() -> None:
        dispatcher.hint("gh", ())
        await asyncio.wait_for(runner.started.wait(), 5)
        for _ in range(4):
            dispatcher.hint("gh", ())
        runner.release.set()
        await asyncio.wait_for(dispatcher.idle(), 5)

    try:
        asyncio.run(main())
    finally:
        store.close()
    assert runner.calls == 2


def test_shutdown_stops_the_webhook_runs_and_takes_no_more_hints(tmp_path: Path) -> None:
    """close() (SIGTERM) cancels the run in flight, which records "interrupted" and returns
    as the daemon's guarded runs do, starts no queued follow-up, and ignores later hints."""
    calls: list[str] = []
    started = asyncio.Event()

    async def guarded(connector: str) -> bool:
        calls.append(connector)
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return True  # Service._guarded swallows the cancel and returns
        return True

    settings = coalescing_github(f"sqlite:///{tmp_path / 'okrsync.db'}", coalesce_s=0)
    store = Store.open(settings.store_url())
    dispatcher = Dispatcher(store, lambda: settings, guarded, NoRunLocks())

    async def main() -> None:
        dispatcher.hint("gh", ())
        await asyncio.wait_for(started.wait(), 5)
        dispatcher.hint("gh", ())  # wants a follow-up
        await asyncio.wait_for(dispatcher.close(), 5)
        dispatcher.hint("gh", ())
        await asyncio.wait_for(dispatcher.idle(), 5)

    try:
        asyncio.run(main())
    finally:
        store.close()
    assert calls == ["gh"]


def test_a_run_held_elsewhere_is_tried_again_until_it_runs(tmp_path: Path) -> None:
    """A webhook run that finds the connector held (a scheduled run, another replica) waits
    and tries again: the hint is not lost."""
    runner = _Runner(held_first=2)
    runner.release.set()
    dispatcher, store = _dispatcher(tmp_path, runner)

    async def main() -> None:
        dispatcher.hint("gh", ())
        await asyncio.wait_for(dispatcher.idle(), 5)

    try:
        asyncio.run(main())
    finally:
        store.close()
    assert runner.calls == 3


# -- deletions ---------------------------------------------------------------------------------


def linked_github_item(store: Store) -> tuple[str, str]:
    """(tactic, key) of a GitHub issue some tactic counts."""
    structure = signals_of(store).structure
    listed = store.tactic_items(structure, datetime.now(UTC).date(), SignalsConfig())
    return next(
        (tactic, item.key)
        for tactic, items in sorted(listed.items())
        for item in items
        if item.connector == "github" and "#m" not in item.key
    )


def test_a_deleted_issue_leaves_the_signals_before_any_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """issues.deleted for a linked issue: the item is marked deleted and its tactic's signals
    recomputed (a new snapshot without it) at once, long before the coalesced run."""
    with daemon(monkeypatch, tmp_path, coalesce_s=30) as (svc, sb):

        async def work(client: httpx.AsyncClient) -> None:
            await svc.job("github", "manual")
            tactic, key = linked_github_item(svc.store)
            before = signals_of(svc.store).tactics[tactic].items_total
            stored = next(r for r in svc.store.items("github") if r.key == key)
            body = github_body("issues.deleted.json", repo=repo_of(sb), issue_id=stored.external_id)
            answer = await client.post("/hooks/github", content=body, headers=github_headers(body))
            assert answer.status_code == 202
            for _ in range(100):
                if signals_of(svc.store).tactics[tactic].items_total < before:
                    break
                await asyncio.sleep(0.05)
            assert signals_of(svc.store).tactics[tactic].items_total == before - 1
            newest = svc.store.snapshot_history(tactic, limit=1)[-1]
            assert newest.values["items_total"] == before - 1
            assert runs(svc) == [("manual", "ok")]  # the coalesced run is still waiting
            gone = next(r for r in svc.store.items("github") if r.key == key)
            assert gone.deleted_at is not None

        served(svc, work)


# -- configuration -------------------------------------------------------------------------------


CONFIG = """
[[connectors]]
name = "gh"
type = "github"
base_url = "https://api.github.com"
scope = ["o/r"]
token_env = "OKRSYNC_TEST_GH_TOKEN"
{hook}
"""


def test_an_unset_webhook_secret_variable_stops_the_start_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`webhook_secret_env` naming an unset variable: the credential check (run, sync) fails
    at the key's file:line with the fix, like a missing token."""
    from okrsync.config import load_settings
    from okrsync.errors import ConfigError

    monkeypatch.setenv("OKRSYNC_TEST_GH_TOKEN", "ghp_token_for_tests_123")
    monkeypatch.delenv("OKRSYNC_TEST_UNSET_HOOK", raising=False)
    hook = 'webhook_secret_env = "OKRSYNC_TEST_UNSET_HOOK"'
    path = tmp_path / "okrsync.toml"
    path.write_text(CONFIG.format(hook=hook))
    with pytest.raises(ConfigError) as caught:
        load_settings(path).check_credentials()
    message = str(caught.value)
    assert "okrsync.toml:8" in message
    assert "OKRSYNC_TEST_UNSET_HOOK (named by webhook_secret_env) is not set" in message


def test_a_relative_webhook_secret_file_is_read_from_the_config_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`webhook_secret_file = "hook.secret"` is read beside the config file, and the secret
    is registered for redaction the moment it is read."""
    from okrsync.config import load_settings
    from okrsync.redaction import scrub

    (tmp_path / "hook.secret").write_text("file-held-webhook-secret-77\n")
    path = tmp_path / "okrsync.toml"
    path.write_text(CONFIG.format(hook='webhook_secret_file = "hook.secret"'))
    monkeypatch.chdir(Path(__file__).parent)
    cc = load_settings(path).connector("gh")
    assert cc.webhook_secret() == "file-held-webhook-secret-77"
    assert scrub("x file-held-webhook-secret-77 y") == "x *** y"


# -- several connectors of one type ----------------------------------------------------------------


def test_hooks_of_a_type_go_to_the_connectors_whose_secret_and_scope_match(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Three GitHub connectors: /hooks/github hands a delivery only to the one whose secret
    verifies and whose scope holds the repository; Jira's X-Hub-Signature form is read on
    /hooks/jira the same way."""
    monkeypatch.setenv("OKRSYNC_TEST_HOOK_A", "secret-a-0123456789")
    monkeypatch.setenv("OKRSYNC_TEST_HOOK_B", "secret-b-0123456789")
    common = {"type": "github", "base_url": "http://127.0.0.1:9", "webhook_coalesce_s": 0}
    settings = Settings(
        store={"url": f"sqlite:///{tmp_path / 'okrsync.db'}"},
        connectors=[
            {
                **common,
                "name": "a1",
                "scope": ["o/one"],
                "webhook_secret_env": "OKRSYNC_TEST_HOOK_A",
            },
            {
                **common,
                "name": "a2",
                "scope": ["o/two"],
                "webhook_secret_env": "OKRSYNC_TEST_HOOK_A",
            },
            {
                **common,
                "name": "b2",
                "scope": ["o/two"],
                "webhook_secret_env": "OKRSYNC_TEST_HOOK_B",
            },
            {
                "name": "jira",
                "type": "jira",
                "base_url": "http://127.0.0.1:9",
                "scope": ["WEB"],
                "webhook_secret_env": "OKRSYNC_TEST_HOOK_B",
                "webhook_coalesce_s": 0,
            },
        ],
    )
    store = Store.open(settings.store_url())
    asked: list[str] = []

    async def runner(connector: str) -> bool:
        asked.append(connector)
        return True

    dispatcher = Dispatcher(store, lambda: settings, runner, NoRunLocks())
    body = github_body("issues.closed.json", repo="O/Two")  # GitHub names ignore case
    jira = (FIXTURES / "jira" / "issue_updated.json").read_bytes()

    async def main() -> None:
        async with client_of(WebContext(settings, store, hooks=dispatcher)) as client:
            headers = {
                **github_headers(body),
                "x-hub-signature-256": sign("github", "secret-a-0123456789", body),
            }
            answer = await client.post("/hooks/github", content=body, headers=headers)
            assert answer.json() == {"status": "accepted", "connectors": ["a2"]}
            signed = {"x-hub-signature": sign("jira", "secret-b-0123456789", jira)}
            assert (
                await client.post("/hooks/jira", content=jira, headers=signed)
            ).status_code == 202
            await dispatcher.idle()

    try:
        asyncio.run(main())
    finally:
        store.close()
    assert sorted(asked) == ["a2", "jira"]


def test_a_store_that_cannot_be_reached_is_503_not_500(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """When the store fails while a delivery is handled (here: recording its id), the answer
    is 503 with a one-line error and a webhook.refused line, never a 500 or a traceback."""
    from okrsync.errors import StoreError

    class Failing(Dispatcher):
        def first_delivery(self, connector: str, delivery_id: str) -> bool:
            raise StoreError("store error: database is locked")

    settings = Settings(
        store={"url": f"sqlite:///{tmp_path / 'okrsync.db'}"},
        connectors=[
            {
                "name": "gh",
                "type": "github",
                "base_url": "http://127.0.0.1:9",
                "scope": ["Codertocat/Hello-World"],
                "webhook_secret_env": SECRET_ENV,
            }
        ],
    )
    store = Store.open(settings.store_url())
    body = github_body("issues.closed.json")

    async def never(connector: str) -> bool:
        raise AssertionError("no run may be asked")

    async def main() -> None:
        sink = Failing(store, lambda: settings, never, NoRunLocks())
        async with client_of(WebContext(settings, store, hooks=sink)) as client:
            with capture_logs() as logs:
                answer = await client.post(
                    "/hooks/github", content=body, headers=github_headers(body)
                )
        assert (answer.status_code, answer.json()) == (
            503,
            {"error": "the store cannot be reached; retry later"},
        )
        assert [e.get("reason") for e in logs if e["event"] == "webhook.refused"] == ["store_error"]

    monkeypatch.setenv(SECRET_ENV, SECRET)
    try:
        asyncio.run(main())
    finally:
        store.close()
