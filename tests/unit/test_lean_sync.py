"""What a sync carries: compact census ids, no unused libraries, no CA bundle it cannot use."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.config import connector_config
from okrsync.models import IdList
from okrsync.sync import needs_tls, new_client


def test_id_list_keeps_every_id_and_writes_them_as_json_strings() -> None:
    """Decimal ids, odd-looking numbers and other ids all come back as the strings given."""
    ids = ["12", "0", "900000000000000001", "007", "-4", "1e3", "١٢", "section:55", "x", "12"]
    listed = IdList(ids)
    assert len(listed) == len(ids)  # the repeated "12" is kept
    assert set(listed) == set(ids)
    assert set(json.loads(listed.json(chunk=2))) == set(ids)
    assert all(isinstance(i, str) for i in json.loads(listed.json()))
    assert listed == ["x", "section:55", *ids[:7], "12"]


def test_id_list_stores_decimal_ids_as_numbers() -> None:
    """A census of decimal ids costs 8 bytes per id, not a string object each."""
    listed = IdList(str(900_000_000 + n) for n in range(10_000))
    assert listed._nums.itemsize * len(listed._nums) == 80_000
    assert not listed._strs


@given(st.lists(st.one_of(st.integers(0, 2**62).map(str), st.text(max_size=12))))
def test_id_list_round_trips_any_ids(ids: list[str]) -> None:
    """Whatever the ids, the census reads back the same set, in JSON too."""
    listed = IdList(ids)
    assert set(listed) == set(ids)
    assert set(json.loads(listed.json(chunk=3))) == set(ids)


def test_empty_id_list_is_an_empty_json_array() -> None:
    """An empty census lists nothing (and so flags every stored item of its container)."""
    assert json.loads(IdList().json()) == []


SYNC_PATH_PROBE = """
import json, sys
import okrsync.pipeline, okrsync.store, okrsync.sync
print(json.dumps(sorted(sys.modules)))
"""


def test_the_sync_path_imports_no_cli_orm_or_postgres_libraries() -> None:
    """A sync loads SQLAlchemy's Core only (no ORM, no PostgreSQL dialects) and none of the
    extras httpx and structlog would pull in (their CLI and rich tracebacks, greenlet)."""
    out = subprocess.run(
        [sys.executable, "-c", SYNC_PATH_PROBE], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    tops = {m.partition(".")[0] for m in loaded}
    assert tops.isdisjoint({"rich", "click", "pygments", "typer", "greenlet", "sqlmodel"})
    assert "sqlalchemy.orm" not in loaded
    assert not {m for m in loaded if m.startswith("sqlalchemy.dialects.postgresql")}
    assert "httpx" in tops  # the probe did import the sync path
    assert "sqlalchemy" in tops


def _connector(url: str) -> object:
    return connector_config({"name": "gh", "type": "github", "base_url": url, "scope": ["a/b"]})


def test_tls_is_needed_only_for_https_origins() -> None:
    """Only an https origin makes the client load the CA bundle."""
    plain, secure = _connector("http://127.0.0.1:8000/github"), _connector("https://x.example")
    assert needs_tls([plain]) is False  # type: ignore[list-item]
    assert needs_tls([plain, secure]) is True  # type: ignore[list-item]


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


def test_a_client_without_tls_refuses_https_instead_of_skipping_verification(
    tmp_path: Path,
) -> None:
    """With no https origin configured, an https request fails its handshake (no trusted
    certificate): it is never sent unverified."""
    key, cert = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    async def scenario() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1024)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            async with new_client(tls=False) as client:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.get(f"https://127.0.0.1:{port}/")
            trusting = ssl.create_default_context(cafile=str(cert))
            async with httpx.AsyncClient(verify=trusting) as client:  # the server does answer
                assert (await client.get(f"https://127.0.0.1:{port}/")).text == "ok"
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


ARENAS = """
import ctypes, sys, threading
if sys.argv[1] == "settle":
    from okrsync.sync import settle_heap
    settle_heap()
def work():  # a thread that allocates, as the store's thread does during a sync
    keep = [bytearray(200_000) for _ in range(20)] + [b"x" * 600 for _ in range(2000)]
    del keep
thread = threading.Thread(target=work)
thread.start()
thread.join()
ctypes.CDLL(None).malloc_stats()  # glibc: one "Arena N:" block per arena, on stderr
"""


@pytest.mark.parametrize(("how", "arenas"), [("settle", 1), ("plain", 2)])
def test_after_settle_heap_the_threads_share_one_malloc_arena(how: str, arenas: int) -> None:
    """The store's thread allocates from the event loop's arena, not one of its own (whose
    free memory would add to the peak RSS); without `settle_heap` it gets its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    out = subprocess.run(
        [sys.executable, "-c", ARENAS, how], capture_output=True, text=True, check=True, env=env
    )
    assert sum(line.startswith("Arena ") for line in out.stderr.splitlines()) == arenas
