"""The read API under /api/v1/ through the real ASGI app over a real SQLite store: export
shapes, the "now" view from snapshots, the items behind counts as `okrsync items` lists them,
runs, errors naming the parameter, the OpenAPI document, and no token in any answer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from okrsync.config import ConnectorConfig, Settings
from okrsync.models import WorkItem
from okrsync.pipeline import recompute
from okrsync.report import export_tree
from okrsync.signal_types import Period
from okrsync.signals import today
from okrsync.store import Store
from okrsync.web import api
from okrsync.web import app as web_app
from okrsync.web.api import tree_cache
from okrsync.web.app import WebContext, create_app
from okrsync.web.server import WebServer
from tests.helpers import run_cli, write
from tests.signal_fixtures import AS_OF, SIGNAL_TREE, at, days_ago, item, link, load_tree_into

TOKEN = "ghp_web_api_test_SECRET_0123456789"
DAY = AS_OF.isoformat()
SCHEMA = json.loads((Path(__file__).parents[2] / "okrsync/schema/export.schema.json").read_text())


def tracked(n: int, status: str = "todo", **kw: Any) -> WorkItem:
    base = item(n, status, **kw)
    return dataclasses.replace(base, url=f"https://github.com/o/r/issues/{n}", assignee="dana")


def fill(store: Store, folder: Path) -> None:
    """The signal tree, items behind several counts, a check-in, snapshots, two runs (one
    failed with a tracker's error that quotes the token)."""
    load_tree_into(store, folder)
    link(store, [
        tracked(1, "done"), tracked(2, "in_progress", updated=days_ago(20)),
        tracked(3, "todo", due=AS_OF - timedelta(days=2)), tracked(5, "dropped"),
    ], "checkout", ["r-checkout"])  # fmt: skip
    link(store, [tracked(4, "todo")], ["checkout", "pricing"], ["r2"])
    link(store, [tracked(6, "done", completed=days_ago(1))], "cache")
    store.add_checkin("conv", 9.0, confidence=0.7, note="weekly", author="ana",
                      at=at(AS_OF - timedelta(days=3)))  # fmt: skip
    recompute(store, None, AS_OF - timedelta(days=7))
    recompute(store, None, AS_OF)
    store.finish_run(store.start_run("gh"), "ok", requests=3)
    store.finish_run(store.start_run("gh"), "failed", error=f"401 for token {TOKEN}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Settings, Path]]:
    """A filled store, settings with a GitHub connector whose token is in the environment."""
    root = tmp_path_factory.mktemp("web")
    mp = pytest.MonkeyPatch()
    mp.setenv("OKRSYNC_WEB_TEST_TOKEN", TOKEN)
    cc = ConnectorConfig.model_validate(
        {"name": "gh", "type": "github", "base_url": "https://api.github.com",
         "scope": ["o/r"], "token_env": "OKRSYNC_WEB_TEST_TOKEN"}
    )  # fmt: skip
    db = root / "data" / "okrsync.db"
    settings = Settings(store={"url": f"sqlite:///{db}"}, connectors=[cc], base_dir=root)
    store = Store.open(settings.store_url())
    fill(store, root / "okrs")
    try:
        yield store, settings, root
    finally:
        store.close()
        mp.undo()


@pytest.fixture(scope="module")
def app(world: tuple[Store, Settings, Path]) -> Any:
    store, settings, _ = world
    return create_app(WebContext(settings, store))


def get(app: Any, path: str) -> httpx.Response:
    """GET through the ASGI app as a loopback caller."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://okrsync") as http:
            return await http.get(path)

    return asyncio.run(call())


def ok(app: Any, path: str) -> Any:
    r = get(app, path)
    assert r.status_code == 200, (path, r.text)
    return r.json()


def tactics_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for o in doc["objectives"] for k in o["key_results"] for t in k["tactics"]}


def test_tree_as_of_a_date_is_the_export_document(
    app: Any, world: tuple[Store, Settings, Path]
) -> None:
    """/tree?as_of=D equals `okrsync export --as-of D` and validates against its schema."""
    store, settings, _ = world
    doc = ok(app, f"/api/v1/tree?as_of={DAY}")
    jsonschema.validate(doc, SCHEMA)
    assert doc == export_tree(store, AS_OF, settings.signals)
    assert [k["id"] for k in doc["objectives"][0]["key_results"]] == ["conv", "latency"]


def test_tree_now_takes_each_tactic_from_its_newest_snapshot(
    app: Any, world: tuple[Store, Settings, Path]
) -> None:
    """Without as_of, tactics show their newest snapshot (the last recompute's figures) and
    key results are rolled up for today; the document still validates as an export."""
    store, settings, _ = world
    doc = ok(app, "/api/v1/tree")
    jsonschema.validate(doc, SCHEMA)
    assert doc["as_of"] == today().isoformat()
    at_recompute = tactics_of(export_tree(store, AS_OF, settings.signals))
    for tid, node in tactics_of(doc).items():
        assert node["signals"] == at_recompute[tid]["signals"], tid
    conv = doc["objectives"][0]["key_results"][0]
    assert conv["outcome"]["current"] == 9.0
    assert conv["outcome"]["expected"] == Period(date(2026, 10, 1), date(2026, 12, 31)).expected(
        today()
    )


def test_tree_now_is_computed_while_a_tactic_has_no_snapshot(tmp_path: Path) -> None:
    """A store never recomputed has no snapshots: the now view computes from the items."""
    store = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")
    try:
        load_tree_into(store, tmp_path / "okrs")
        link(store, [tracked(1, "done"), tracked(2, "todo")], "checkout")
        app = create_app(WebContext(Settings(), store))
        doc = ok(app, "/api/v1/tree")
        assert tactics_of(doc)["checkout"]["signals"]["items_total"] == 2
        assert doc == export_tree(store, today(), Settings().signals)
    finally:
        store.close()


def test_tree_filters_and_their_errors(app: Any) -> None:
    """period and objective select as `report` does; bad values are 400 naming the param."""
    assert [o["id"] for o in ok(app, "/api/v1/tree?period=2026-q4")["objectives"]] == ["grow"]
    assert ok(app, "/api/v1/tree?period=2025")["objectives"] == []
    assert [o["id"] for o in ok(app, "/api/v1/tree?objective=grow")["objectives"]] == ["grow"]
    for query, param in [("period=2026-Q9", "period"), ("as_of=15-11-2026", "as_of"),
                         ("colour=red", "colour")]:  # fmt: skip
        r = get(app, f"/api/v1/tree?{query}")
        assert (r.status_code, r.json()["param"]) == (400, param), query
        assert param in r.json()["error"]
    r = get(app, "/api/v1/tree?objective=nope")
    assert r.status_code == 404
    assert "nope" in r.json()["error"]


def test_key_result_and_tactic_hold_the_export_nodes(app: Any) -> None:
    """/key-results/ID and /tactics/ID carry the export's node, its parents, and 404 JSON
    for an unknown id."""
    tree = ok(app, f"/api/v1/tree?as_of={DAY}")
    grow = tree["objectives"][0]
    conv = grow["key_results"][0]
    kr = ok(app, f"/api/v1/key-results/conv?as_of={DAY}")
    assert kr["key_result"] == conv
    assert kr["objective"] == {k: v for k, v in grow.items() if k != "key_results"}
    t = ok(app, f"/api/v1/tactics/pricing?as_of={DAY}")
    assert t["tactic"] == next(x for x in conv["tactics"] if x["id"] == "pricing")
    assert t["key_result"] == {k: v for k, v in conv.items() if k != "tactics"}
    for path in ("/api/v1/key-results/nope", "/api/v1/tactics/nope", "/api/v1/tactics/conv"):
        r = get(app, path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/json"
        assert "nope" in r.json()["error"] or "conv" in r.json()["error"]


def test_history_lists_snapshots_and_a_key_results_checkins(app: Any) -> None:
    """History: snapshots oldest first (both recomputes changed expected pace), check-ins
    with value, confidence, note and author; 404 for an unknown subject."""
    kr = ok(app, "/api/v1/key-results/conv/history")
    days = [s["as_of"] for s in kr["snapshots"]]
    assert days == sorted(days)
    assert days[-1] == DAY
    assert kr["snapshots"][-1]["values"]["outcome"]["current"] == 9.0
    [c] = kr["checkins"]
    assert (c["value"], c["confidence"], c["note"], c["author"]) == (9.0, 0.7, "weekly", "ana")
    tactic = ok(app, "/api/v1/tactics/checkout/history")
    assert tactic["snapshots"][-1]["values"]["items_total"] == 4
    assert "checkins" not in tactic
    assert get(app, "/api/v1/tactics/nope/history").status_code == 404


def test_items_use_the_cli_filters_and_give_url_and_rule(
    app: Any, world: tuple[Store, Settings, Path]
) -> None:
    """/tactics/ID/items answers what `okrsync items --tactic ID --json` prints, for the same
    filters; each item has its tracker URL and the rule that linked it."""
    _, settings, root = world
    write(root / "okrsync.toml", f'[store]\nurl = "{settings.store.url}"\n')
    cases = [("", ()), ("?status=todo", ("--status", "todo")), ("?overdue=true", ("--overdue",)),
             ("?stale=1&status=in_progress", ("--stale", "--status", "in_progress"))]  # fmt: skip
    for query, flags in cases:
        sep = "&" if query else "?"
        doc = ok(app, f"/api/v1/tactics/checkout/items{query}{sep}as_of={DAY}")
        cli = run_cli("items", "--tactic", "checkout", *flags, "--json", "--as-of", DAY, cwd=root)
        assert cli.code == 0, cli.stderr
        assert doc == json.loads(cli.stdout), query
    every = ok(app, f"/api/v1/tactics/checkout/items?as_of={DAY}")["items"]
    assert {i["key"]: i["rule"] for i in every}["o/r#1"] == "r-checkout"
    assert all(i["url"].startswith("https://github.com/o/r/issues/") for i in every)


def test_items_refuse_bad_filters_naming_them(app: Any) -> None:
    """A bad status or flag value is 400 with the parameter; an unknown tactic 404."""
    for query, param in [("status=doing", "status"), ("stale=maybe", "stale"),
                         ("as_of=yesterday", "as_of"), ("assignee=dana", "assignee")]:  # fmt: skip
        r = get(app, f"/api/v1/tactics/checkout/items?{query}")
        assert (r.status_code, r.json()["param"]) == (400, param), query
    assert get(app, "/api/v1/tactics/nope/items").status_code == 404


def test_runs_list_filter_and_show_one(app: Any) -> None:
    """/runs newest first, ?failed, ?connector and ?limit; /runs/ID; 400/404 as documented."""
    runs = ok(app, "/api/v1/runs")["runs"]
    assert [r["status"] for r in runs] == ["failed", "ok"]
    assert [r["status"] for r in ok(app, "/api/v1/runs?failed=true")["runs"]] == ["failed"]
    assert ok(app, "/api/v1/runs?connector=other")["runs"] == []
    assert len(ok(app, "/api/v1/runs?limit=1")["runs"]) == 1
    one = ok(app, f"/api/v1/runs/{runs[1]['id']}")
    assert (one["connector"], one["status"], one["requests"]) == ("gh", "ok", 3)
    for path, status in [("/api/v1/runs?limit=0", 400), ("/api/v1/runs?limit=x", 400),
                         ("/api/v1/runs/999", 404), ("/api/v1/runs/abc", 404)]:  # fmt: skip
        assert get(app, path).status_code == status, path


def test_no_answer_contains_the_tracker_token(app: Any) -> None:
    """Every API answer (the failed run's stored error quotes the token) is free of it."""
    paths = [
        "/api/v1/openapi.json", "/api/v1/tree", f"/api/v1/tree?as_of={DAY}",
        "/api/v1/key-results/conv", "/api/v1/key-results/conv/history",
        "/api/v1/tactics/checkout", "/api/v1/tactics/checkout/history",
        "/api/v1/tactics/checkout/items", "/api/v1/runs", "/api/v1/runs/2",
        "/healthz", "/readyz", "/api/v1/nope",
    ]  # fmt: skip
    answers = {p: get(app, p) for p in paths}
    assert "***" in answers["/api/v1/runs/2"].json()["error"]
    for path, r in answers.items():
        assert TOKEN not in r.text, path
        assert TOKEN not in json.dumps(dict(r.headers)), path


def test_openapi_document_is_valid_and_lists_every_route(app: Any) -> None:
    """/api/v1/openapi.json validates as OpenAPI 3.1 and documents each API route."""
    doc = ok(app, "/api/v1/openapi.json")
    validate(doc)
    served = {f"/api/v1{r.path}".replace("{id:int}", "{id}") for r in api.routes}  # type: ignore[attr-defined]
    assert served - {"/api/v1/openapi.json"} == set(doc["paths"])
    with pytest.raises(Exception, match="required"):
        validate({"openapi": "3.1.0", "paths": {}})


def test_security_headers_and_no_store(app: Any) -> None:
    """Every answer has the CSP (no inline script) and friends; the API is never cached."""
    for path in ("/api/v1/tree", "/healthz", "/api/v1/nope", "/static/dashboard.css"):
        h = get(app, path).headers
        assert "script-src 'self'" in h["content-security-policy"], path
        assert "unsafe-inline" not in h["content-security-policy"], path
        assert (h["x-frame-options"], h["x-content-type-options"]) == ("DENY", "nosniff")
        assert h["referrer-policy"] == "same-origin"
        assert (h.get("cache-control") == "no-store") == path.startswith("/api/"), path


def test_web_command_refuses_a_missing_store_and_a_public_address(tmp_path: Path) -> None:
    """`okrsync web` with no store says how to create one (exit 2, nothing created); on
    0.0.0.0 with auth = none it names web.auth (exit 2)."""
    missing = run_cli("web", cwd=tmp_path)
    assert missing.code == 2
    assert "no store at" in missing.stderr
    assert "okrsync db upgrade" in missing.stderr
    assert not (tmp_path / "okrsync.db").exists()
    assert run_cli("db", "upgrade", cwd=tmp_path).code == 0
    public = run_cli("web", "--host", "0.0.0.0", cwd=tmp_path)  # noqa: S104 - the refusal
    assert public.code == 2
    assert 'web.auth is "none"' in public.stderr
    assert "Traceback" not in public.stderr


def test_web_and_demo_help_name_the_access_rule_and_the_url(tmp_path: Path) -> None:
    """`okrsync web --help` names [web] auth (not swallowed as markup) and says it runs no
    syncs; `okrsync demo --help` names the dashboard's URL and --no-serve."""
    web = run_cli("web", "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert web.code == 0
    assert web.stdout.count('[web] auth = "token" or "proxy"') == 2  # the text and --host
    assert "runs no syncs" in web.stdout
    demo = run_cli("demo", "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert "http://127.0.0.1:PORT/" in demo.stdout
    assert "--no-serve" in demo.stdout


def test_web_command_serves_the_api_until_interrupted(tmp_path: Path) -> None:
    """`okrsync web --port 0` prints its URL, answers the API and exits 0 on SIGINT,
    without a traceback."""
    assert run_cli("db", "upgrade", cwd=tmp_path).code == 0
    env = {**os.environ, "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "okrsync.cli", "web", "--port", "0"]
    with subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            line = proc.stdout.readline()
            url = line.split("serving the dashboard on ", 1)[1].split()[0]
            r = httpx.get(f"{url}api/v1/runs", timeout=10)
            assert (r.status_code, r.json()) == (200, {"runs": []})
            assert r.headers["cache-control"] == "no-store"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
            assert "Traceback" not in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()


def test_tree_now_follows_checkins_recomputes_and_mapping_changes(tmp_path: Path) -> None:
    """The now view is kept between requests but never outlives a change: a check-in, a
    recompute that moves a tactic, a renamed key result each show on the next request."""
    store = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")
    try:
        load_tree_into(store, tmp_path / "okrs")
        recompute(store)
        app = create_app(WebContext(Settings(), store))

        def conv() -> dict[str, Any]:
            kr: dict[str, Any] = ok(app, "/api/v1/tree")["objectives"][0]["key_results"][0]
            return kr

        assert (conv()["outcome"]["current"], conv()["title"]) == (None, "Trial conversion")
        store.add_checkin("conv", 10.0)
        assert conv()["outcome"]["current"] == 10.0
        link(store, [tracked(1, "done"), tracked(2, "todo")], "checkout")
        recompute(store)
        assert tactics_of(ok(app, "/api/v1/tree"))["checkout"]["signals"]["items_total"] == 2
        load_tree_into(store, tmp_path / "okrs", SIGNAL_TREE.replace("Trial conv", "Paid conv"))
        assert conv()["title"] == "Paid conversion"
    finally:
        store.close()


def test_served_app_rebuilds_the_now_tree_after_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Served by uvicorn (lifespan on), the app rebuilds the now tree in the background once
    the store changes, so the next request finds it ready, with the change."""
    monkeypatch.setattr(web_app, "WARM_EVERY_S", 0.05)
    store = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")
    load_tree_into(store, tmp_path / "okrs")
    recompute(store)
    app = create_app(WebContext(Settings(), store))

    async def scenario() -> Any:
        server = WebServer(app, "127.0.0.1", 0)
        await server.start()
        try:
            store.add_checkin("conv", 11.0)
            version = store.data_version()
            for _ in range(200):
                if any(key[0] == version for key in tree_cache(app).held()):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the tree was not rebuilt after the check-in")
            async with httpx.AsyncClient() as http:
                r = await http.get(f"http://127.0.0.1:{server.port}/api/v1/tree")
            return r.json()
        finally:
            await server.stop()

    try:
        doc = asyncio.run(scenario())
    finally:
        store.close()
    assert doc["objectives"][0]["key_results"][0]["outcome"]["current"] == 11.0


def test_config_show_lists_the_web_section(tmp_path: Path) -> None:
    """`okrsync config show` prints [web] with each key's origin, naming tokens by source."""
    env = {"OKRSYNC_WEB__AUTH": "token", "OKRSYNC_WEB__TOKENS_ENV": "OKRSYNC_WEB_TOKENS"}
    shown = run_cli("config", "show", cwd=tmp_path, env=env)
    assert shown.code == 0, shown.stderr
    web = shown.stdout.split("[web]", 1)[1].split("\n\n", 1)[0]
    assert 'auth = "token"' in web
    assert "env OKRSYNC_WEB__AUTH" in web
    assert 'proxy_header = "X-Forwarded-User"' in web


def test_daemon_refuses_a_public_address_without_web_auth(tmp_path: Path) -> None:
    """`okrsync run` with service.host = 0.0.0.0 and [web] auth = none exits 2 naming
    web.auth and service.host, before serving anything."""
    write(tmp_path / "okrs" / "main.toml", SIGNAL_TREE)
    write(tmp_path / "okrsync.toml", """
        [store]
        url = "sqlite:///okrsync.db"
        [mappings]
        paths = ["okrs"]
        [service]
        host = "0.0.0.0"
        port = 0
        [[connectors]]
        name = "gh"
        type = "github"
        base_url = "http://127.0.0.1:9"
        scope = ["o/r"]
        token_env = "OKRSYNC_WEB_TEST_TOKEN"
        schedule = "every 1h"
    """)  # fmt: skip
    r = run_cli("run", cwd=tmp_path, env={"OKRSYNC_WEB_TEST_TOKEN": TOKEN})
    assert r.code == 2, r.stderr
    assert 'web.auth is "none"' in r.stderr
    assert "service.host" in r.stderr
    assert "Traceback" not in r.stderr
