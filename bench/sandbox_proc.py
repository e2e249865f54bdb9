"""Run the sandbox in its own process for benchmarks (so the measured process is alone)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SandboxProc:
    port: int
    base_urls: dict[str, str] = field(default_factory=dict)
    scopes: dict[str, list[str]] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)

    def admin(self, name: str, body: dict[str, Any] | None = None, **query: str) -> Any:
        """Call `/_sandbox/<name>`: POST `body` as JSON if given, else GET with `query`."""
        url = f"http://127.0.0.1:{self.port}/_sandbox/{name}"
        if body is None:
            resp = httpx.get(url, params=query, timeout=120)
        else:
            resp = httpx.post(url, json=body, timeout=120)
        return resp.raise_for_status().json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sandbox_process(
    sizes: dict[str, int], seed: int = 7, warm: bool = True
) -> Iterator[SandboxProc]:
    """Start `python -m okrsync.sandbox` on a free port; parse what it prints; stop it after."""
    port = free_port()
    spec = ",".join(f"{k}={v}" for k, v in sizes.items())
    cmd = [
        sys.executable,
        "-m",
        "okrsync.sandbox",
        "--port",
        str(port),
        "--seed",
        str(seed),
        "--sizes",
        spec,
    ]
    proc = subprocess.Popen([*cmd, "--warm"] if warm else cmd, stdout=subprocess.PIPE, text=True)
    info = SandboxProc(port)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := re.match(r"^(\w+)\s+(http\S+)\s+scopes=(\S*)", line):
                info.base_urls[m.group(1)] = m.group(2)
                info.scopes[m.group(1)] = [s for s in m.group(3).split(",") if s]
            elif line.startswith("admin"):
                break
            elif m := re.match(r"^(\w+)\s+(\S+)$", line.strip()):
                info.credentials[m.group(1)] = m.group(2)
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=10)
