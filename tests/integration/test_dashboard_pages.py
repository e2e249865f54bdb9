"""The dashboard's pages through the real ASGI app over a real SQLite store (no browser):
tracker text stays text, only http(s) item URLs are linked, check-ins need a user and a
valid token, run pages show the run's log lines."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from okrsync.config import Settings
from okrsync.pipeline import recompute
from okrsync.store import Store
from okrsync.web.app import WebContext, create_app
from okrsync.web.pages import CheckinForm, forecast_sentence, nest, parse_checkin
from tests.signal_fixtures import SIGNAL_TREE, item, link, load_tree_into

TOKEN = "pages-test-token-0123456789abcdef"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    """The signal tree, items with a hostile title and a javascript: URL, a run, a log file."""
    root = tmp_path_factory.mktemp("pages")
    store = Store.open(f"sqlite:///{root / 'okrsync.db'}")
    load_tree_into(store, root / "okrs")
    bad = dataclasses.replace(item(1, "done"), title=HOSTILE, url="javascript:alert(1)")
    good = dataclasses.replace(item(2, "todo"), url="https://tracker.example/o/r/2")
    link(store, [bad, good], "checkout")
    recompute(store)
    run_id = store.start_run("gh")
    store.finish_run(run_id, "ok", requests=2)
    lines = [
        {"timestamp": f"2026-11-15T10:00:0{n}Z", "level": "info", "event": event, "run_id": rid}
        for n, (event, rid) in enumerate(
            [("sync.start", run_id), ("other", run_id + 1), ("sync.end", run_id)]
        )
    ]
    (root / "okrsync.log").write_text("".join(json.dumps(x) + "\n" for x in lines) + "not json\n")
    try:
        yield store, root
    finally:
        store.close()


def app_of(store: Store, root: Path, **web: Any) -> Any:
    settings = Settings(
        store={"url": "sqlite://"}, logging={"file": str(root / "okrsync.log")}, web=web
    )
    return create_app(WebContext(settings, store))


def call(app: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://okrsync") as http:
            return await http.request(method, path, **kw)

    return asyncio.run(go())


@pytest.fixture
def token_app(world: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OKRSYNC_PAGES_TOKENS", f"ana:{TOKEN}")
    return app_of(*world, auth="token", tokens_env="OKRSYNC_PAGES_TOKENS")


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_tracker_text_is_escaped_and_only_http_urls_are_linked(world: tuple[Store, Path]) -> None:
    """An item title with markup is shown as text; a javascript: URL is not made a link,
    an https one is."""
    page = call(app_of(*world), "GET", "/tactic/checkout/items").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "javascript:" not in page
    assert 'href="https://tracker.example/o/r/2"' in page


def test_pages_carry_the_security_headers_and_no_inline_script(world: tuple[Store, Path]) -> None:
    """Every page answers with the CSP and has no <script> and no style attribute."""
    app = app_of(*world)
    for path in ("/", "/kr/conv", "/tactic/checkout", "/tactic/checkout/items", "/admin"):
        r = call(app, "GET", path)
        assert r.status_code == 200, (path, r.text)
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "<script" not in r.text
        assert " style=" not in r.text


def test_without_auth_the_form_is_hidden_and_a_post_is_refused(world: tuple[Store, Path]) -> None:
    """auth = none: the key result page says how to enable check-ins and a POST is a 403
    page naming [web] auth; nothing is recorded."""
    app = app_of(*world)
    before = len(world[0].checkins("conv"))
    assert '<form method="post"' not in call(app, "GET", "/kr/conv").text
    r = call(app, "POST", "/kr/conv/checkin", data={"value": "9"})
    assert r.status_code == 403
    assert "[web] auth" in r.text
    assert len(world[0].checkins("conv")) == before


def test_a_signed_in_checkin_is_recorded_and_redirects(
    world: tuple[Store, Path], token_app: Any
) -> None:
    """A user with a token posts the form with its CSRF token: 303 to the key result, the
    reading stored under the user's name."""
    form = call(token_app, "GET", "/kr/conv", headers=AUTH).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    r = call(
        token_app, "POST", "/kr/conv/checkin", headers=AUTH,
        data={"value": "9.5", "confidence": "0.6", "note": "n", "csrf_token": csrf.group(1)},
    )  # fmt: skip
    assert r.status_code == 303
    assert re.fullmatch(r"/kr/conv\?recorded=\d+#checkins", r.headers["location"])
    newest = world[0].checkins("conv")[-1]
    assert (newest.value, newest.confidence, newest.author) == (9.5, 0.6, "ana")


def test_a_checkin_for_an_unknown_key_result_is_a_404(token_app: Any) -> None:
    """A valid form posted to an id that is no active key result is a 404 page."""
    form = call(token_app, "GET", "/kr/conv", headers=AUTH).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    r = call(
        token_app, "POST", "/kr/nope/checkin", headers=AUTH,
        data={"value": "1", "csrf_token": csrf.group(1)},
    )  # fmt: skip
    assert r.status_code == 404


def test_run_page_shows_only_that_runs_log_lines(world: tuple[Store, Path]) -> None:
    """/admin/runs/N lists the log file's lines of run N (not another run's, not non-JSON)."""
    store, root = world
    run_id = store.runs(limit=1)[0].id
    page = call(app_of(store, root), "GET", f"/admin/runs/{run_id}").text
    assert "sync.start" in page
    assert "sync.end" in page
    assert ">other<" not in page
    settings = Settings(store={"url": "sqlite://"})
    bare = call(create_app(WebContext(settings, store)), "GET", f"/admin/runs/{run_id}").text
    assert "No log file is configured" in bare


def test_checkin_form_values_are_checked_field_by_field() -> None:
    """Value must be a finite number, confidence 0..1, the date not in the future; today's
    date records now, an earlier one its midnight UTC."""
    now = datetime(2026, 11, 15, 9, 30, tzinfo=UTC)
    form = CheckinForm("nan", "2", "", "2026-11-16")
    assert parse_checkin(form, now) == (None, 2.0, None)
    assert set(form.errors) == {"value", "confidence", "at"}
    assert "future" in form.errors["at"]
    ok = CheckinForm("9,5", "", "", "2026-11-15")
    assert parse_checkin(ok, now) == (9.5, None, None)
    assert not ok.errors
    past = CheckinForm("9", "", "", "2026-11-01")
    assert parse_checkin(past, now)[2] == datetime(2026, 11, 1, tzinfo=UTC)
    long = CheckinForm("9", "", "x" * 501, "")
    parse_checkin(long, now)
    assert "note" in long.errors


def test_forecast_sentence_names_the_period_end_in_every_case() -> None:
    """Late, on time, and no forecast (nothing done lately / nothing left) each name the
    period end; only a late forecast is classed late."""
    end = date(2026, 12, 31)
    base = {"items_total": 4, "items_todo": 2, "items_in_progress": 0}
    late = forecast_sentence({**base, "forecast_finish": "2027-01-10"}, end)
    assert late == (
        "Forecast finish 2027-01-10: 10 days after the period ends (2026-12-31).",
        "late",
    )
    early = forecast_sentence({**base, "forecast_finish": "2026-12-21"}, end)
    assert early[1] == "on-time"
    assert "10 days before the period ends" in early[0]
    idle = forecast_sentence({**base, "forecast_finish": None}, end)
    assert idle == (
        "No forecast: no item done in the throughput window; the period ends 2026-12-31.",
        "none",
    )
    finished = forecast_sentence({**base, "items_todo": 0, "forecast_finish": None}, end)
    assert "nothing left to do" in finished[0]


class Ancestry(HTMLParser):
    """For each <li id=...>: the ids of the <li> elements it sits inside."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.within: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "li":
            own = dict(attrs).get("id") or ""
            self.within[own] = [i for i in self.stack if i]
            self.stack.append(own)

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self.stack.pop()


NESTED_TREE = (
    SIGNAL_TREE
    + """
[[objective]]
id = "onboard"
title = "Onboarding"
period = "2026-Q4"
parent = "grow"

[[objective]]
id = "docs"
title = "Docs"
period = "2026-Q4"
parent = "onboard"
"""
)


def test_a_sub_objective_is_drawn_inside_its_parent(tmp_path: Path) -> None:
    """The tree nests each objective under its parent (two levels deep here), not beside it."""
    store = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")
    try:
        load_tree_into(store, tmp_path / "okrs", NESTED_TREE)
        page = call(app_of(store, tmp_path), "GET", "/").text
    finally:
        store.close()
    parsed = Ancestry()
    parsed.feed(page)
    assert parsed.within["objective-grow"] == []
    assert parsed.within["objective-onboard"] == ["objective-grow"]
    assert parsed.within["objective-docs"] == ["objective-grow", "objective-onboard"]
    assert "under grow" not in page  # the nesting says it


def test_nest_keeps_order_and_survives_a_parent_cycle() -> None:
    """Objectives whose parent is not shown stay at the top in order; a cycle is cut, never
    looped over, and every objective appears once."""
    objs: list[dict[str, Any]] = [
        {"id": "a", "parent": "b"},
        {"id": "b", "parent": "a"},
        {"id": "c", "parent": None},
        {"id": "d", "parent": "c"},
        {"id": "e", "parent": "gone"},
    ]
    forest = nest(objs)

    def ids(nodes: list[dict[str, Any]]) -> list[Any]:
        return [(n["id"], ids(n["children"])) for n in nodes]

    assert ids(forest) == [("c", [("d", [])]), ("e", []), ("a", [("b", [])])]


def test_pages_opened_from_an_as_of_tree_keep_its_date_and_period(
    world: tuple[Store, Path],
) -> None:
    """Links from /?as_of=D&period=P carry both; the key result, tactic and items pages
    show their figures as of D (the chart's marker at D) and link back to the same view."""
    app = app_of(*world)
    view = "as_of=2026-11-05&amp;period=2026-Q4"
    tree = call(app, "GET", "/?as_of=2026-11-05&period=2026-Q4").text
    assert f'href="/kr/conv?{view}"' in tree
    assert f'href="/tactic/checkout?{view}"' in tree
    assert f'href="/tactic/checkout/items?{view}"' in tree

    kr = call(app, "GET", "/kr/conv?as_of=2026-11-05&period=2026-Q4").text
    assert "as of 2026-11-05" in kr
    assert f'href="/?{view}"' in kr  # back to the same tree
    marker = re.search(r'class="marker today" data-date="([^"]+)"', kr)
    assert marker is not None
    assert marker.group(1) == "2026-11-05"

    # item 1 was done on 2026-11-12: in the throughput window as of 11-15, not as of 11-05
    throughput = re.compile(r"([\d.]+) / week</a>")
    now = call(app, "GET", "/tactic/checkout?as_of=2026-11-15").text
    then = call(app, "GET", "/tactic/checkout?as_of=2026-11-05").text
    assert [throughput.findall(p) for p in (now, then)] == [["0.25"], ["0"]]
    assert 'href="/tactic/checkout/items?as_of=2026-11-05&amp;count=done"' in then
    items = call(app, "GET", "/tactic/checkout/items?as_of=2026-11-05&count=done").text
    assert "as of 2026-11-05</span></h1>" in items
    assert 'href="/tactic/checkout/items?as_of=2026-11-05&amp;count=stale"' in items
    bad = call(app, "GET", "/kr/conv?as_of=yesterday")
    assert bad.status_code == 400
    assert "as_of must be a date" in bad.text


def test_admin_and_run_pages_show_what_triggered_each_run(world: tuple[Store, Path]) -> None:
    """/admin's runs table and a run's page say whether the timer, a person or a webhook
    started it."""
    store, root = world
    run_id = store.start_run("gh", trigger="webhook")
    store.finish_run(run_id, "ok")
    admin = call(app_of(store, root), "GET", "/admin").text
    assert '<td class="run-trigger">webhook</td>' in admin
    page = call(app_of(store, root), "GET", f"/admin/runs/{run_id}").text
    assert re.search(r"trigger</\w+>\s*<\w+[^>]*>webhook<", page), page
