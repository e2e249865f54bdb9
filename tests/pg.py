"""A throwaway PostgreSQL cluster for the test session (initdb/pg_ctl in a temp dir).

Sessions and CI run as root and initdb refuses root, so the server tools run as the
`postgres` system user; the server listens on 127.0.0.1 on a free port and is stopped after.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*args: str) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return list(args)


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for cand in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(cand)
    raise RuntimeError(f"PostgreSQL tool {name} not found; install PostgreSQL 15 server binaries")


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh, empty server; stop and remove it afterwards."""
    root = Path(tempfile.mkdtemp(prefix="okrsync-pg-"))
    os.chmod(root, 0o777)  # noqa: S103 - the postgres user must write here; temp dir only
    data = root / "data"
    port = _free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    subprocess.run(
        _as_postgres(
            _bin("initdb"), "-D", str(data), "-U", "okrsync", "--auth=trust", "-E", "UTF8"
        ),
        check=True,
        capture_output=True,
    )
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -k {root} -c fsync=off"
    subprocess.run(
        _as_postgres(
            _bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"
        ),
        check=True,
        capture_output=True,
    )
    try:
        _wait(port)
        yield f"postgresql+psycopg://okrsync@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres(_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _wait(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("PostgreSQL did not start")
