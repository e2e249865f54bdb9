"""`okrsync demo` serves the dashboard on a terminal until Ctrl-C; scripts never block."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import run_cli

URL = re.compile(rb"http://127\.0\.0\.1:(\d+)/")


def on_a_terminal(*args: str, cwd: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`okrsync ARGS` with stdin/stdout/stderr on a pseudo-terminal; returns (proc, master)."""
    master, slave = pty.openpty()
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "okrsync.cli", *args],
        stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    return proc, master


def read_until(master: int, pattern: re.Pattern[bytes], timeout: float = 90) -> bytes:
    """The terminal's output up to the first match of `pattern` (fails at the deadline)."""
    seen, deadline = b"", time.monotonic() + timeout
    while not pattern.search(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"no {pattern.pattern!r} in: {seen[-2000:]!r}"
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
    return seen


def test_demo_on_a_terminal_prints_the_url_and_serves_until_ctrl_c(tmp_path: Path) -> None:
    """On a terminal the demo prints the dashboard's URL, serves the tree there, and a
    Ctrl-C (SIGINT) stops it with exit 0."""
    proc, master = on_a_terminal(
        "demo", "--workdir", str(tmp_path / "demo"), "--port", "0", cwd=tmp_path
    )
    try:
        out = read_until(master, URL)
        port = int(URL.search(out).group(1))  # type: ignore[union-attr]
        tree = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert tree.status_code == 200
        assert "Grow self-serve revenue" in tree.text
        assert proc.poll() is None  # still serving
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_demo_with_no_serve_on_a_terminal_exits_after_the_report(tmp_path: Path) -> None:
    """--no-serve on a terminal: the report, no URL, exit 0 without waiting."""
    proc, master = on_a_terminal(
        "demo", "--workdir", str(tmp_path / "demo"), "--no-serve", cwd=tmp_path
    )
    try:
        out = read_until(master, re.compile(rb"dashboard: run okrsync demo on a terminal"))
        assert proc.wait(timeout=30) == 0
        assert not URL.search(out.split(b"3. the OKR report")[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_demo_off_a_terminal_does_not_block(tmp_path: Path) -> None:
    """Piped (as `make demo` in CI), the demo ends with exit 0 and says how to see the
    dashboard instead of serving it."""
    demo = ("demo", "--workdir", str(tmp_path / "demo"))
    r = run_cli(*demo, cwd=tmp_path, timeout=120, env={"COLUMNS": "60"})
    assert r.code == 0, r.stderr
    assert "dashboard: run okrsync demo on a terminal" in r.stdout
    assert "4. the dashboard" not in r.stdout
    (hint,) = [line for line in r.stdout.splitlines() if line.startswith("dashboard:")]
    assert hint.endswith(" okrsync web"), hint  # one line to copy, never folded
