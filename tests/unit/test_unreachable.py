"""A tracker nothing answers for: named with its URL, the attempts and the last error, the
first warning at the first failed attempt (loopback ports only, nothing listening)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from okrsync.errors import TransientError
from okrsync.http import Http, RetryPolicy
from tests.helpers import TREE, run_cli, write

Logged = MutableMapping[str, Any]  # one event as structlog's capture_logs records it


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, attempts: int, sleeps: list[tuple[float, list[Logged]]]) -> None:
    """GET `url` through `Http`; each sleep records its length and the logs seen before it."""

    async def go() -> None:
        with capture_logs() as logs:

            async def sleep(seconds: float) -> None:
                sleeps.append((seconds, list(logs)))

            async with httpx.AsyncClient() as client:
                http = Http(
                    client,
                    connector="jira",
                    policy=RetryPolicy(max_attempts=attempts, base_s=0.01),
                    sleep=sleep,
                )
                await http.get_json(url)

    asyncio.run(go())


def test_final_error_names_url_attempts_and_last_error() -> None:
    """After the last attempt the error reads "<error> from <URL> after N attempts"."""
    url = f"http://127.0.0.1:{dead_port()}/rest/api/2/serverInfo"
    with pytest.raises(TransientError) as err:
        fetch(url, 3, [])
    text = str(err.value)
    assert text.startswith("network error (ConnectError")
    assert f"from {url} after 3 attempts" in text


def test_first_failure_is_logged_with_url_and_error_before_any_wait() -> None:
    """The first failed attempt logs `http.retry` (URL, error, attempt 1 of N) before waiting."""
    url = f"http://127.0.0.1:{dead_port()}/rest/api/3/search"
    sleeps: list[tuple[float, list[Logged]]] = []
    with pytest.raises(TransientError):
        fetch(url, 2, sleeps)
    assert len(sleeps) == 1
    before_first_wait = [e for e in sleeps[0][1] if e["event"] == "http.retry"]
    assert len(before_first_wait) == 1
    first = before_first_wait[0]
    assert first["url"] == url
    assert first["attempt"] == 1
    assert first["max_attempts"] == 2
    assert "ConnectError" in first["error"]


def test_credentials_in_the_url_never_reach_the_message() -> None:
    """Userinfo and token query parameters are redacted in the final message."""
    port = dead_port()
    url = f"http://bob:hunter2secret@127.0.0.1:{port}/api?access_token=tok_abcdef123"
    with pytest.raises(TransientError) as err:
        fetch(url, 1, [])
    text = str(err.value)
    assert "hunter2secret" not in text
    assert "tok_abcdef123" not in text
    assert f"from http://127.0.0.1:{port}/api?access_token=" in text
    assert "after 1 attempt" in text


def test_sync_once_against_a_dead_tracker_names_it(tmp_path: Path) -> None:
    """`sync --once` exits 1; stderr warns at the first attempt, the summary names URL and tries."""
    base = f"http://127.0.0.1:{dead_port()}"
    write(tmp_path / "okrs" / "main.toml", TREE)
    cfg = write(
        tmp_path / "okrsync.toml",
        f"""
        [mappings]
        paths = ["okrs"]
        [[connectors]]
        name = "jira"
        type = "jira"
        base_url = "{base}"
        scope = ["PROJ"]
        token_env = "JIRA_TOKEN"
        max_attempts = 2
        """,
    )
    r = run_cli("-c", str(cfg), "sync", "--once", cwd=tmp_path, env={"JIRA_TOKEN": "me:tok"})
    assert r.code == 1, r.stderr
    warned = [line for line in r.stderr.splitlines() if "http.retry" in line]
    assert len(warned) == 1
    assert base in warned[0]
    summary = [line for line in r.stdout.splitlines() if line.startswith("jira: ")]
    assert len(summary) == 1
    assert summary[0].startswith("jira: network error (ConnectError")
    assert f"from {base}/rest/api/" in summary[0]
    assert summary[0].endswith("after 2 attempts")
    assert "Traceback" not in r.stderr
