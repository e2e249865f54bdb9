"""The dashboard in a real browser: the daemon against the sandbox, Debian's chromium driven
by Playwright (never a downloaded browser build).

Module fixtures (torn down after test_dashboard.py, so Playwright's event loop never outlives
it and later tests can call asyncio.run): `site` starts the sandbox (small sizes), writes a
config (the example mappings, JSON logs to a file, `[service] port = 0`, `[web] auth =
"token"` with a token in the environment so check-ins are allowed), loads the tree and a few
check-ins, starts `okrsync run` and waits until every connector has synced once. `browser` is
a persistent chromium context on a fresh user-data dir with the bearer token on every request.
Screenshots go to test-artifacts/screenshots/ (not committed).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from okrsync.config import Settings
from okrsync.demo import DEMO_CHECKINS, MAPPINGS, earlier_readings, sandbox_connectors, sandbox_env
from okrsync.pipeline import MappingState
from okrsync.sandbox import Sandbox
from okrsync.store import Store
from tests.integration.test_service import events, toml_value, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SIZES = {"jira": 40, "jira_dc": 20, "asana": 30, "github": 40}
NAMES = ("jira", "jira-dc", "asana", "github")
USER, TOKEN = "dana", "browser-test-token-0123456789abcdef"
TOKENS_ENV = "OKRSYNC_TEST_WEB_TOKENS"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@dataclass
class Site:
    url: str
    store_url: str
    log: Path
    proc: subprocess.Popen[bytes]


def config_text(sb: Sandbox, store_url: str, log: Path) -> str:
    """okrsync.toml: the sandbox's connectors, the example mappings, token auth, port 0."""
    lines = [
        f"[store]\nurl = {toml_value(store_url)}\n",
        f"[mappings]\npaths = [{toml_value(str(MAPPINGS))}]\n",
        f'[logging]\nlevel = "info"\nformat = "json"\nfile = {toml_value(str(log))}\n',
        '[service]\nhost = "127.0.0.1"\nport = 0\n',
        f'[web]\nauth = "token"\ntokens_env = "{TOKENS_ENV}"\n',
    ]
    for cc in sandbox_connectors(sb, schedule="every 1h"):
        body = cc.model_dump(exclude_none=True)
        lines.append(
            "[[connectors]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in body.items())
        )
    return "\n".join(lines)


def seed(store_url: str) -> None:
    """The tree from the example mappings and the demo's check-ins (with earlier ones)."""
    settings = Settings(store={"url": store_url}, mappings={"paths": [str(MAPPINGS)]})
    store = Store.open(store_url)
    try:
        mapping = MappingState.load(settings)
        mapping.apply(store, settings)
        for kr_id, (value, confidence, note) in DEMO_CHECKINS.items():
            for at, earlier in earlier_readings(mapping.tree, kr_id, value):
                store.add_checkin(kr_id, earlier, note="earlier", author="seed", at=at)
            store.add_checkin(kr_id, value, confidence=confidence, note=note, author="seed")
    finally:
        store.close()


def synced(store_url: str) -> bool:
    store = Store.open(store_url, upgrade=False)
    try:
        return {r.connector for r in store.runs(limit=100) if r.status == "ok"} == set(NAMES)
    finally:
        store.close()


def start_daemon(tmp: Path, cfg: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **env, TOKENS_ENV: f"{USER}:{TOKEN}", "NO_COLOR": "1"}
    with (tmp / "daemon.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "okrsync.cli", "-c", str(cfg), "run"],
            env=full_env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def listening_url(log: Path, proc: subprocess.Popen[bytes], tmp: Path) -> str:
    def found() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(f"the daemon exited: {(tmp / 'daemon.err').read_text()}")
        ev = next((e for e in events(log) if e["event"] == "service.listening"), None)
        return None if ev is None else f"http://127.0.0.1:{ev['port']}"

    return wait_for(found, "the daemon to listen")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The daemon serving the dashboard over a store synced from the sandbox."""
    tmp = tmp_path_factory.mktemp("dashboard")
    store_url, log = f"sqlite:///{tmp / 'okrsync.db'}", tmp / "okrsync.log"
    with Sandbox(seed=7, sizes=SIZES) as sb:
        cfg = tmp / "okrsync.toml"
        cfg.write_text(config_text(sb, store_url, log), encoding="utf-8")
        seed(store_url)
        proc = start_daemon(tmp, cfg, sandbox_env(sb), log)
        try:
            url = listening_url(log, proc, tmp)
            wait_for(lambda: synced(store_url), "a run of every connector", timeout=30)
            yield Site(url, store_url, log, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Debian's chromium, headless, a fresh profile, the bearer token on every request."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium. Run .ci/run "
            "(it installs it) or `sudo apt-get install chromium`; never `playwright install`."
        )
    profile = tmp_path_factory.mktemp("chromium-profile")
    shutil.rmtree(SHOTS, ignore_errors=True)  # this run's screenshots only, none left stale
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
            extra_http_headers={"Authorization": f"Bearer {TOKEN}"},
        )
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    """A new tab at 1280×800; closed after the test."""
    tab = browser.new_page()
    tab.set_viewport_size({"width": 1280, "height": 800})
    try:
        yield tab
    finally:
        tab.close()


def screenshot(page: Page, name: str) -> None:
    """Keep a full-page screenshot as a test artifact."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
