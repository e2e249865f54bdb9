"""`[web] auth`: who reads, who writes, where the server may bind, how tokens are read."""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from okrsync.config import Settings, load_settings
from okrsync.errors import ConfigError
from okrsync.web.access import Access, AccessMiddleware, check_bind, require_user

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef-xyz"


async def whoami(request: Request) -> Response:
    return JSONResponse({"user": request.state.user})


async def write(request: Request) -> Response:
    return PlainTextResponse(f"recorded by {require_user(request)}")


def app_for(settings: Settings) -> Starlette:
    rule = Access.of(settings)
    app = Starlette(
        routes=[
            Route("/api/v1/me", whoami),
            Route("/healthz", whoami),
            Route("/checkin", write, methods=["POST"]),
        ],
        middleware=[Middleware(AccessMiddleware, access=rule)],
    )
    app.state.access = rule
    return app


def call(
    app: Starlette, method: str, path: str, client: str = "127.0.0.1", **headers: str
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://okrsync") as http:
            return await http.request(method, path, headers=headers)

    return asyncio.run(go())


def token_settings(tmp_path: Path, text: str = f"alice:{ALICE}\nbob : {BOB}\n") -> Settings:
    (tmp_path / "tokens").write_text(text)
    return Settings(web={"auth": "token", "tokens_file": "tokens"}, base_dir=tmp_path)


def test_auth_none_opens_reads_and_refuses_writes_saying_how(tmp_path: Path) -> None:
    """auth = none: reads need no user; a write is 403 naming both ways to enable auth."""
    app = app_for(Settings())
    assert call(app, "GET", "/api/v1/me").json() == {"user": None}
    r = call(app, "POST", "/checkin")
    assert r.status_code == 403
    assert 'auth = "token"' in r.text
    assert "proxy" in r.text


def test_token_auth_names_the_user_and_refuses_everything_else(tmp_path: Path) -> None:
    """A known bearer token is its name's user (reads and writes); a missing or wrong one
    is 401 with WWW-Authenticate; probes stay open."""
    app = app_for(token_settings(tmp_path))
    bearer = {"authorization": f"Bearer {BOB}"}
    assert call(app, "GET", "/api/v1/me", **bearer).json() == {"user": "bob"}
    assert call(app, "POST", "/checkin", **bearer).text == "recorded by bob"
    for headers in ({}, {"authorization": f"Bearer {ALICE}x"}, {"authorization": ALICE}):
        r = call(app, "GET", "/api/v1/me", **headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in r.json()["error"]
        assert ALICE not in r.text
    assert call(app, "GET", "/healthz").status_code == 200


def test_tokens_are_compared_in_constant_time_against_every_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every configured token goes through hmac.compare_digest, even after a match."""
    seen: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append(b)
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)
    rule = Access.of(token_settings(tmp_path))
    assert rule.user(httpx.Headers({"authorization": f"bearer {ALICE}"}), None) == "alice"  # type: ignore[arg-type]
    assert seen == [ALICE.encode(), BOB.encode()]


def test_proxy_auth_believes_the_header_only_from_a_trusted_proxy() -> None:
    """The proxy header names the user when the caller is in trusted_proxies; from any
    other address it is ignored (401), as is a trusted call without it."""
    settings = Settings(
        web={"auth": "proxy", "proxy_header": "X-Auth-User", "trusted_proxies": ["10.0.0.0/24"]}
    )
    app = app_for(settings)
    assert call(app, "GET", "/api/v1/me", "10.0.0.7", **{"x-auth-user": "ana"}).json() == {
        "user": "ana"
    }
    assert call(app, "POST", "/checkin", "10.0.0.7", **{"x-auth-user": "ana"}).status_code == 200
    assert call(app, "GET", "/api/v1/me", "10.0.1.7", **{"x-auth-user": "ana"}).status_code == 401
    assert call(app, "GET", "/api/v1/me", "10.0.0.7").status_code == 401
    assert call(app, "GET", "/api/v1/me", "127.0.0.1", **{"x-auth-user": "ana"}).status_code == 401


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("127.0.0.1", False),
        ("::1", False),
        ("localhost", False),
        ("0.0.0.0", True),  # noqa: S104
        ("10.1.2.3", True),
        ("::", True),
        ("example.org", True),
    ],
)
def test_auth_none_binds_to_loopback_only(host: str, refused: bool, tmp_path: Path) -> None:
    """Binding beyond loopback with auth = none is a ConfigError naming web.auth and the
    option; with token auth any address is allowed."""
    if refused:
        with pytest.raises(ConfigError, match=r"web\.auth .*--host"):
            check_bind(Settings(), host, "--host")
    else:
        check_bind(Settings(), host, "--host")
    check_bind(token_settings(tmp_path), host, "--host")


def test_config_file_errors_name_the_web_key(tmp_path: Path) -> None:
    """[web] problems in the file are file:line errors: auth without its keys, a bad proxy."""
    cfg = tmp_path / "okrsync.toml"
    cfg.write_text('[web]\nauth = "token"\n')
    with pytest.raises(ConfigError, match="tokens_env or tokens_file"):
        load_settings(cfg)
    cfg.write_text('[web]\nauth = "proxy"\ntrusted_proxies = ["10.0.0.1", "nope"]\n')
    with pytest.raises(ConfigError, match=r"okrsync.toml:3.*'nope' is not an IP address"):
        load_settings(cfg)


def test_token_sources_are_checked_without_quoting_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A malformed tokens_file line is named by file and line; a short token is refused;
    tokens_env takes comma-separated entries and an unset variable is named."""
    with pytest.raises(ConfigError, match=r"tokens, line 2: expected name:token") as bad:
        Access.of(token_settings(tmp_path, f"alice:{ALICE}\n{BOB}\n"))
    assert BOB not in str(bad.value)
    with pytest.raises(ConfigError, match="at least 16"):
        Access.of(token_settings(tmp_path, "alice:short\n"))
    env_settings = Settings(web={"auth": "token", "tokens_env": "OKRSYNC_TEST_WEB_TOKENS"})
    with pytest.raises(ConfigError, match="OKRSYNC_TEST_WEB_TOKENS"):
        Access.of(env_settings)
    monkeypatch.setenv("OKRSYNC_TEST_WEB_TOKENS", f"alice:{ALICE}, bob:{BOB}")
    assert [name for name, _ in Access.of(env_settings).tokens] == ["alice", "bob"]


def test_require_user_without_a_user_in_token_mode_is_401() -> None:
    """require_user asks for authentication (401) when auth is on but no user is known."""
    scope: dict[str, Any] = {"type": "http", "state": {"user": None}, "app": Starlette()}
    scope["app"].state.access = Access(mode="token")
    with pytest.raises(Exception, match="authentication required") as err:
        require_user(Request(scope))
    assert getattr(err.value, "status_code", None) == 401
