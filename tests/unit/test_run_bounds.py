"""Every run is bounded and its items cleaned, whatever the connector: items per page, pages
per run, a deadline, credentials only to base_url's origin, text without control characters.
A run past a bound fails; what it committed before stays, with its cursor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import respx

import okrsync.sync as sync_module
from okrsync.config import ConnectorConfig, Settings
from okrsync.connector import load
from okrsync.errors import DEADLINE_EXCEEDED
from okrsync.http import Http
from okrsync.models import Cursor, Page, WorkItem
from okrsync.pipeline import MappingState
from okrsync.service import Service
from okrsync.store import Store
from okrsync.sync import Limiters, RunResult, max_pages_for, page_size_for, run_connector
from okrsync.textsafe import clean_item, clean_text, printable
from tests.unit.test_store import item
from tests.vendor import VENDOR_API

TOKEN_ENV = "OKRSYNC_TEST_BOUNDS_TOKEN"
TOKEN = "tok_bounds_secret_1234"
GH = "https://api.github.com"
ISSUES = f"{GH}/repos/o/r/issues"
OTHER = "http://other:1234/repos/o/r/issues"

Pull = Callable[[Cursor | None], AsyncIterator[Page]]


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")


def config(type_: str = "fake", **kw: Any) -> ConnectorConfig:
    base = GH if type_ == "github" else "https://tracker.example"
    scope = ["o/r"] if type_ == "github" else ["S"]
    return ConnectorConfig(
        name="gh", type=type_, base_url=base, scope=scope, token_env=TOKEN_ENV, **kw
    )


def plugin(pull: Pull, page_limit: int | None = None) -> type[Any]:
    """A third-party connector whose pages are `pull`'s."""

    class Fake:
        kind: ClassVar[str] = "fake"

        def __init__(self, cfg: ConnectorConfig, http: Http) -> None:
            if page_limit is not None:
                self.page_limit = page_limit

        def pull(self, cursor: Cursor | None) -> AsyncIterator[Page]:
            return pull(cursor)

    return Fake


def run(
    cc: ConnectorConfig,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    pull: Pull | None = None,
) -> RunResult:
    """One run of `cc` through `run_connector` (a plug-in `pull` stands in for the tracker)."""
    if pull is not None:
        monkeypatch.setattr(sync_module, "load", lambda _kind: plugin(pull))

    async def go() -> RunResult:
        async with sync_module.new_client() as client:
            return await run_connector(cc, store, client, Limiters())

    return asyncio.run(go())


def ids(store: Store) -> list[str]:
    return sorted((i.external_id for i in store.items("gh")), key=lambda s: (len(s), s))


def github_issue() -> dict[str, Any]:
    """GitHub's get-issue example as a plain issue without a milestone."""
    raw: dict[str, Any] = json.loads((VENDOR_API / "github/examples/get-issue.json").read_text())
    del raw["pull_request"]
    raw["milestone"] = None
    return raw


# --- items per page ----------------------------------------------------------------------------


def test_a_million_item_page_fails_the_run_before_it_is_stored(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of 1,000,000 items (page_size 100) fails with the count; the page before stays."""

    async def pull(cursor: Cursor | None) -> AsyncIterator[Page]:
        yield Page([item(n) for n in range(10)], {"page": 1})
        yield Page([item(99)] * 1_000_000, {"page": 2})

    result = run(config(page_size=100), store, monkeypatch, pull)
    assert result.status == "failed"
    assert result.error is not None
    assert "tracker returned 1000000 items on one page; asked for 100" in result.error
    assert ids(store) == [str(n) for n in range(10)]
    assert store.cursor("gh") == {"page": 1}


def test_a_github_page_over_per_page_fails_the_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub asked for 100 per page and sent 1,000 issues: the run fails, nothing stored."""
    issues = [{**github_issue(), "id": 1000 + n, "number": n} for n in range(1000)]
    with respx.mock as mock:
        mock.get(url__startswith=ISSUES).respond(200, json=issues)
        result = run(config("github"), store, monkeypatch)
    assert result.status == "failed"
    assert "tracker returned 1000 items on one page; asked for 100" in (result.error or "")
    assert ids(store) == []


@pytest.mark.parametrize(
    ("kind", "kw", "page_limit", "expected"),
    [
        ("github", {}, None, (100, 210)),  # each issue may bring its milestone
        ("github", {"page_size": 500}, None, (100, 210)),  # GitHub's largest page is 100
        ("asana", {"page_size": 50}, None, (50, 60)),
        ("jira", {}, None, (1000, 1010)),
        ("fake", {}, None, (1000, 1010)),  # a plug-in that says nothing
        ("fake", {"page_size": 20}, None, (20, 30)),
        ("fake", {}, 5000, (5000, 5010)),  # a plug-in's declared `page_limit`
    ],
)
def test_the_page_size_asked_for_and_the_items_allowed(
    kind: str, kw: dict[str, Any], page_limit: int | None, expected: tuple[int, int]
) -> None:
    """Page size: the connector's `page_limit`, else page_size up to the plug-in's largest."""

    async def nothing(cursor: Cursor | None) -> AsyncIterator[Page]:
        return
        yield

    fake = plugin(nothing, page_limit)(config(), cast(Http, None))
    connector = fake if kind == "fake" else load(kind)  # the plug-in class declares them
    cc = ConnectorConfig(name="x", type=kind, base_url=GH, scope=["s"], **kw)
    assert page_size_for(cc, connector) == expected


def test_requests_in_flight_are_the_plugins_default_unless_configured() -> None:
    """Per credential: `max_in_flight`, else the plug-in class's `default_in_flight`, else 4."""

    async def capacity(cc: ConnectorConfig, plugin: object) -> int:
        semaphore, taken = Limiters().for_connector(cc, "t0ken", plugin), 0
        while not semaphore.locked():
            await semaphore.acquire()
            taken += 1
        return taken

    async def capacities() -> list[int]:
        return [
            await capacity(config("github"), load("github")),
            await capacity(config("asana"), load("asana")),
            await capacity(config("jira"), load("jira")),
            await capacity(config(), plugin(nothing)),
            await capacity(config("github", max_in_flight=3), load("github")),
        ]

    async def nothing(cursor: Cursor | None) -> AsyncIterator[Page]:
        return
        yield

    assert asyncio.run(capacities()) == [1, 50, 4, 4, 3]


# --- pages per run -----------------------------------------------------------------------------


def test_the_page_cap_grows_with_the_items_stored() -> None:
    """10,000 pages on a first sync (a million items), plus four re-listings of what is stored;
    max_pages wins."""
    assert max_pages_for(config(), 0, 100) == 10_000
    assert max_pages_for(config(), 100_000, 100) == 14_000
    assert max_pages_for(config(), 100_000, 1000) == 14_000  # counted as 100-item pages
    assert max_pages_for(config(), 1000, 10) == 10_400
    assert max_pages_for(config(max_pages=7), 100_000, 100) == 7


def test_a_run_past_its_page_cap_fails_and_keeps_its_pages(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing that never ends stops at max_pages; those pages and their cursor stay."""

    async def forever(cursor: Cursor | None) -> AsyncIterator[Page]:
        n = 0
        while True:
            n += 1
            yield Page([item(n)], {"page": n})

    result = run(config(max_pages=5), store, monkeypatch, forever)
    assert result.status == "failed"
    assert "run stopped after 5 pages" in (result.error or "")
    assert ids(store) == ["1", "2", "3", "4", "5"]
    assert store.cursor("gh") == {"page": 5}


# --- deadline ----------------------------------------------------------------------------------


def test_a_run_past_its_deadline_fails_keeps_its_pages_and_is_reported(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that hangs after two pages fails at run_deadline_s with both pages and the
    second cursor stored; `okrsync runs` and `/readyz` report it."""

    async def hangs(cursor: Cursor | None) -> AsyncIterator[Page]:
        yield Page([item(1)], {"page": 1})
        yield Page([item(2)], {"page": 2})
        await asyncio.Event().wait()  # a tracker that never answers again
        yield Page([item(3)], {"page": 3})

    cc = config(run_deadline_s=0.5)
    result = run(cc, store, monkeypatch, hangs)
    assert result.status == "failed"
    assert (result.error or "").startswith(f"{DEADLINE_EXCEEDED}=0.5")
    assert ids(store) == ["1", "2"]
    assert store.cursor("gh") == {"page": 2}
    [row] = store.runs("gh")
    assert (row.status, row.error) == ("failed", result.error)
    service = Service(Settings(connectors=[cc]), store, cast(MappingState, None), None)
    assert [code for code, _ in service.not_ready_reasons()] == ["connector_deadline"]


# --- origin ------------------------------------------------------------------------------------


def test_an_off_origin_next_link_fails_the_run_and_is_never_followed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub's `Link: rel=next` to another host: the run fails before that page is stored
    (its cursor would carry the link), nothing is sent there, and once the tracker answers
    properly again the next run succeeds."""
    link = {"Link": f'<{OTHER}?page=2&access_token=x>; rel="next"'}
    with respx.mock as mock:
        listing = mock.get(url__startswith=ISSUES).respond(200, json=[github_issue()], headers=link)
        other = mock.route(host="other").respond(200, json=[])
        first = run(config("github"), store, monkeypatch)
        assert not other.called
        assert store.cursor("gh") is None
        listing.respond(200, json=[github_issue()])
        assert run(config("github"), store, monkeypatch).status == "ok"
    assert first.status == "failed"
    assert "the tracker pointed at http://other:1234/" in (first.error or "")
    assert "refusing to send credentials there" in (first.error or "")
    assert TOKEN not in (first.error or "")


def test_an_off_origin_link_in_a_stored_cursor_is_never_followed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cursor holding an off-origin next link (stored by an older version): the resumed run
    fails without a request there and leaves the cursor as it was."""
    page2 = f"{ISSUES}?page=2"
    with respx.mock as mock:
        link = {"Link": f'<{page2}>; rel="next"'}
        mock.get(page2).respond(401)  # the run stops with page 1 and its pending link stored
        mock.get(url__startswith=ISSUES).respond(200, json=[github_issue()], headers=link)
        assert "HTTP 401" in (run(config("github"), store, monkeypatch).error or "")
    stored = json.dumps(store.cursor("gh"))
    assert page2 in stored
    poisoned = json.loads(stored.replace(page2, f"{OTHER}?page=2"))
    store.commit_page("gh", Page([], poisoned))
    with respx.mock(assert_all_called=False) as mock:
        anywhere = mock.route().respond(200, json=[])
        resumed = run(config("github"), store, monkeypatch)
        assert not anywhere.called
    assert resumed.status == "failed"
    assert "the tracker pointed at http://other:1234/" in (resumed.error or "")
    assert store.cursor("gh") == poisoned


def test_a_response_over_max_response_mb_fails_the_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GitHub page larger than max_response_mb fails the run with the cap named."""
    with respx.mock as mock:
        mock.get(url__startswith=ISSUES).respond(200, content=b"[" + b" " * 2**20 + b"]")
        result = run(config("github", max_response_mb=0.5), store, monkeypatch)
    assert result.status == "failed"
    assert "response larger than 0.5 MB" in (result.error or "")


# --- text on ingest ----------------------------------------------------------------------------

HOSTILE = "\x1b[2J\x1b]8;;http://evil\x07click\x1b]8;;\x07 me\r\n\tnow\x9b31m\x7f"


def test_control_characters_and_huge_fields_are_stored_cleaned_and_capped(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Escape sequences and C0/C1 controls are gone; title 2,000, fields 500, labels 200."""
    dirty = item(
        1,
        title=HOSTILE + "a" * 200_000,
        labels=tuple(f"l{n}\x1b[1m" for n in range(300)),
        assignee="x" * 10_000,
        status_raw="open\x00",
        milestone="v1\x1b[H",
        custom={"team\x07": "core\x1b[0m"},
    )

    async def pull(cursor: Cursor | None) -> AsyncIterator[Page]:
        yield Page([dirty], {"page": 1})

    assert run(config(), store, monkeypatch, pull).status == "ok"
    [row] = store.items("gh")
    assert row.title.startswith("click me  now")
    assert len(row.title) == 2000
    assert row.labels == [f"l{n}" for n in range(200)]
    assert row.assignee == "x" * 500
    assert (row.status_raw, row.milestone) == ("open", "v1")
    assert row.custom == {"team": "core"}


def test_printable_keeps_line_breaks_and_drops_every_control() -> None:
    """`printable` (terminal output) removes escapes, C0/C1 and DEL but keeps \\n and \\t."""
    assert printable(HOSTILE) == "click me\n\tnow"
    assert printable("plain ünïcode ✓") == "plain ünïcode ✓"


def test_clean_text_is_one_capped_line() -> None:
    """`clean_text` turns tabs and newlines into spaces, drops the rest, cuts to the limit."""
    assert clean_text(HOSTILE, 100) == "click me  now"
    assert clean_text("a\nb" * 10, 5) == "a ba "
    assert clean_text("y" * 10**6, 3) == "yyy"


def test_a_clean_item_is_passed_through_untouched() -> None:
    """The fast path: an item with nothing to clean is the same object, even when its short
    fields together pass 500 characters."""
    it: WorkItem = item(1, labels=("a", "b"), custom={"k": "v"})
    assert clean_item(it) is it
    many = item(2, labels=tuple("l" * 400 + str(n) for n in range(3)))
    assert clean_item(many) is many


def test_one_field_over_its_cap_is_cut_alone() -> None:
    """A 501-character key is cut to 500; the other fields are kept as they were."""
    long_key = item(3, key="k" * 501, labels=("ok",))
    cleaned = clean_item(long_key)
    assert (cleaned.key, cleaned.labels, cleaned.title) == ("k" * 500, ("ok",), "Item 3")


def test_container_name_assignee_ids_and_status_names_are_cleaned_too() -> None:
    """Tracker text in the identity and status fields is cleaned like the rest: escapes go,
    each value is capped, and the lists are capped."""
    dirty = item(
        4,
        container_name="Gro\x1b[31mwth",
        assignee_ids=("ada@example.com\x07", "x" * 600),
        status_names=tuple(f"s{n}\x1b]0;t\x07" for n in range(300)),
    )
    cleaned = clean_item(dirty)
    assert cleaned.container_name == "Growth"
    assert cleaned.assignee_ids == ("ada@example.com", "x" * 500)
    assert len(cleaned.status_names) == 200
    assert cleaned.status_names[0] == "s0"
