"""Helpers shared by tests: running the real CLI and writing mapping files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from okrsync.config import Settings


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> CliResult:
    """Run `okrsync ARGS` as a user would, in a subprocess."""
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "okrsync.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


TREE = """
[[objective]]
id = "grow"
title = "Grow revenue"
owner = "Dana"
period = "2026-Q4"

[[key_result]]
id = "conv"
objective = "grow"
title = "Trial conversion"
unit = "%"
start = 8
target = 12

[[key_result]]
id = "latency"
objective = "grow"
title = "p95 latency"
start = 40
target = 10
direction = "decrease"

[[tactic]]
id = "checkout"
key_result = "conv"
title = "Checkout revamp"
"""


def coalescing_github(store_url: str, coalesce_s: float = 0.05) -> Settings:
    """One GitHub connector `gh` whose webhook hints coalesce within `coalesce_s` (the
    dispatcher's tests)."""
    from okrsync.config import Settings

    return Settings(
        store={"url": store_url},
        connectors=[
            {
                "name": "gh",
                "type": "github",
                "base_url": "http://127.0.0.1:9",
                "scope": ["o/r"],
                "webhook_coalesce_s": coalesce_s,
            }
        ],
    )
