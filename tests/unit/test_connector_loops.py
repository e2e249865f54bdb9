"""Runs that never end: every listing of every connector stops on a looping tracker (issue 12).

Each hostile tracker below is the sandbox (in process, as in test_github.py, test_asana.py and
test_jira.py) with a hostile fault (`loop_link`, Jira DC `huge_total`; see sandbox/_faults.py):
it answers in the vendor's own shapes but never reaches the end of a listing: a page cursor
repeated or alternating, fresh cursors over the same or empty pages, a Jira DC `total` of 1e9.
The run must fail with `PagingLoop` (a `PayloadError`: never retried) within a few requests.
The faults last `LIMIT` pages, then the sandbox answers normally, so code without the guard
fails these tests instead of hanging them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from okrsync_connectors._guard import STALL_PAGES, PageGuard, shown
from okrsync_connectors._scope import Restarts, lost_scope, out_of_reach
from okrsync_connectors.jira import JiraConfig
from structlog.testing import capture_logs

from okrsync.demo import sandbox_env
from okrsync.errors import (
    AuthError,
    ConfigError,
    CursorRejected,
    NotFound,
    PagingLoop,
    PayloadError,
)
from okrsync.redaction import register_secret
from okrsync.sandbox import Sandbox
from tests.unit import test_asana as asana
from tests.unit import test_github as gh
from tests.unit import test_jira as jira

LIMIT = 40  # a hostile server serves this many looping pages, then answers normally / 418
BOUND = STALL_PAGES + 2  # the most requests a looping listing may cost


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's (fake, fixed) secrets in the environment the configs name."""
    for name, value in sandbox_env(Sandbox(sizes={})).items():
        monkeypatch.setenv(name, value)


# Cursor shapes: page n (1-based, the first page is n = 1) → the cursor of page n + 1, and
# whether page n brings the same items as page 1 ("same") or none at all ("empty").
SHAPES: dict[str, tuple[Callable[[int], str], str]] = {
    "repeated": (lambda n: "c1", "same"),
    "alternating": (lambda n: "cA" if n % 2 else "cB", "same"),
    "counting up over the same items": (lambda n: f"c{n}", "same"),
    "counting up over empty pages": (lambda n: f"c{n}", "empty"),
}


def assert_loop(error: BaseException | None, connector: str, scope: str) -> None:
    """The run failed with the clear, non-retried loop error naming connector and scope."""
    assert isinstance(error, PagingLoop), repr(error)
    assert isinstance(error, PayloadError)
    text = str(error)
    assert f"connector {connector!r}" in text
    assert scope in text
    assert "not retried" in text


# --- GitHub (the sandbox's `loop_link` fault) ------------------------------------------------


@pytest.fixture
def sb(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """test_github.py's fake GitHub: the sandbox, in process."""
    return gh.sandbox(monkeypatch)


# SHAPES as the sandbox serves them (`_faults.py`, `loop_link` modes; Asana and Jira too).
LOOP_MODES = {
    "repeated": "repeat",
    "alternating": "alternate",
    "counting up over the same items": "count",
    "counting up over empty pages": "empty",
}


@pytest.mark.parametrize("census", [False, True], ids=["issues", "census"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_github_next_link_loop_fails_the_run_within_a_few_requests(
    sb: Sandbox, shape: str, census: bool
) -> None:
    """A repeated, alternating or endlessly counting-up next link stops the listing with
    PagingLoop after at most a few requests, before the looping page is handed over."""
    cursor = gh.settled(sb)[1].cursor if census else None  # census: the incremental call is 304

    def hostile(served: int) -> None:
        if served == (1 if census else 0):
            sb.inject("github", "loop_link", count=LIMIT, mode=LOOP_MODES[shape])

    hostile(0)
    run = gh.Run()
    with pytest.raises(PagingLoop) as caught:
        gh.pull(sb, gh.config(sb, census_every=2), cursor, during=hostile, into=run)
    assert_loop(caught.value, "github", gh.SCOPE)
    assert ("census" if census else "issues") in str(caught.value)
    assert [r.status_code for r in run.responses][:1] == [304 if census else 200]
    assert len(run.requests) <= BOUND
    assert len(run.pages) < len(run.requests)  # the page that loops is never yielded


def test_github_loop_error_shows_the_repeated_link_redacted_and_short(sb: Sandbox) -> None:
    """The error names the repeated link without its token-like parameters, shortened."""
    extra = f"access_token=sekrit&hint={'x' * 300}"
    sb.inject("github", "loop_link", count=LIMIT, mode="repeat", extra=extra)
    with pytest.raises(PagingLoop) as caught:
        gh.pull(sb, gh.config(sb))
    text = str(caught.value)
    assert "sekrit" not in text
    assert f"'{sb.base_url('github')}/repos/acme/" in text  # the link's start, shortened
    assert "x" * 40 not in text


@pytest.mark.parametrize(
    "scope",
    [
        "o/r/../../../admin/x",
        "../admin",
        "o/..",
        "o/.",
        "o/r/issues",
        "o/r?per_page=1",
        "o/r#x",
        "o%2Fr/x",
        "owner",
        "-o/r",
        "o/r\n",
        "o/ r",
    ],
)
def test_github_scope_that_is_not_owner_repo_is_a_config_error_and_sends_nothing(
    sb: Sandbox, scope: str
) -> None:
    """A scope other than a plain `owner/repo` never reaches a URL: ConfigError naming it."""
    run = gh.Run()
    with pytest.raises(ConfigError, match="owner/repo") as caught:
        gh.pull(sb, gh.config(sb, [scope]), into=run)
    assert repr(scope) in str(caught.value)
    assert run.requests == []


@pytest.mark.parametrize("scope", ["octocat/Hello-World", "octocat/.github", "my_org-emu/a.b_c"])
def test_github_real_owner_repo_names_are_accepted(sb: Sandbox, scope: str) -> None:
    """Dots, underscores and hyphens of real names (`.github`, managed users' `_x`) pass."""
    run = gh.pull(sb, gh.config(sb, [scope]))
    assert str(run.requests[0].url).startswith(f"{sb.base_url('github')}/repos/{scope}/issues?")
    assert run.pages[-1].scope == scope


# --- Asana (the sandbox's `loop_link` fault on tasks, sections or events) --------------------


@pytest.fixture
def asb() -> Sandbox:
    """test_asana.py's fake Asana: the sandbox, in process (P1 holds 9 tasks)."""
    return Sandbox(seed=asana.SEED, sizes={"asana": asana.TASKS})


ASANA_SCOPE = f"project {asana.P1}"
ASANA_LOOPS = [
    (listing, shape)
    for listing in ("tasks", "sections", "events")
    for shape in SHAPES
    if (listing, SHAPES[shape][1]) != ("events", "empty")  # see the test after this one
]


def looped(sb: Sandbox, listing: str) -> int:
    """Requests to the looping listing (events: those carrying a sync token)."""
    if listing == "events":
        return sum(1 for q in asana.calls(sb, "/events") if "sync" in q)
    return len(asana.calls(sb, f"/{listing}"))


@pytest.mark.parametrize(("listing", "shape"), ASANA_LOOPS)
def test_asana_looping_listing_fails_the_run_within_a_few_requests(
    asb: Sandbox, listing: str, shape: str
) -> None:
    """Offsets repeated, alternating A/B or counting up over nothing new, and events with
    `has_more` forever (sync token repeated, alternating or fresh over the same events) stop
    the run with PagingLoop, before the looping page is handed over."""
    cfg = asana.config(asb)
    cursor = None
    if listing == "events":  # the events drain needs a stored sync token (a first run's 412)
        cursor = asana.run(asb, cfg).cursor
        asb.clear_requests()
    asb.inject("asana", "loop_link", count=LIMIT, mode=LOOP_MODES[shape], path_contains=listing)
    result = asana.run(asb, cfg, cursor)
    assert_loop(result.error, cfg.name, ASANA_SCOPE)
    assert listing in str(result.error)
    assert 2 <= looped(asb, listing) <= BOUND
    assert result.sleeps == []  # never retried
    assert asb.stats()["faults_fired"]["loop_link"] == looped(asb, listing)
    handed = [i.external_id for p in result.pages for i in p.items]
    assert len(handed) == len(set(handed))  # no page repeating what was seen is handed over


def test_asana_empty_events_page_with_has_more_ends_the_drain(asb: Sandbox) -> None:
    """An empty events page still saying `has_more` ends the drain: the project is polled."""
    cfg = asana.config(asb)
    cursor = asana.run(asb, cfg).cursor
    asb.inject("asana", "loop_link", count=LIMIT, mode="empty", path_contains="/events")
    result = asana.run(asb, cfg, cursor)
    assert result.error is None
    assert looped(asb, "events") == 2
    assert len(asana.calls(asb, "/tasks")) == 2  # the first run's one-page listing, then the poll


def test_asana_repeated_sync_token_names_it_shortened(asb: Sandbox) -> None:
    """The repeated events sync token appears in the error, shortened to a few characters."""
    cfg = asana.config(asb)
    cursor = asana.run(asb, cfg).cursor
    long_token = "s" * 20 + "y" * 300
    asb.inject("asana", "loop_link", count=LIMIT, path_contains="/events", token=long_token)
    result = asana.run(asb, cfg, cursor)
    assert isinstance(result.error, PagingLoop)
    assert "s" * 20 + "y" * 10 in str(result.error)
    assert "y" * 50 not in str(result.error)


# --- Jira (`loop_link` on Cloud search, `huge_total` on DC, limited by JQL) ------------------

INCREMENTAL, CENSUS = "ORDER BY updated", "ORDER BY key"


def looping_searches(j: jira.Jira, jql: str) -> int:
    return sum(1 for r in j.searches if jql in r.url.params["jql"])


def jira_cursor(j: jira.Jira, config: JiraConfig, census: bool) -> Any:
    """None, or for a census test the cursor of a first clean run (so the next runs a census)."""
    if not census:
        return None
    cursor = jira.run(j, config)[-1].cursor
    j.requests.clear()
    return cursor


@pytest.mark.parametrize("census", [False, True], ids=["search", "census"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_jira_cloud_looping_tokens_fail_the_run_within_a_few_requests(
    shape: str, census: bool
) -> None:
    """nextPageToken repeated, alternating, or fresh over the same or empty pages: PagingLoop."""
    j = jira.jira(n=4)
    config = jira.cfg(j, census_every=1)
    cursor = jira_cursor(j, config, census)
    jql = CENSUS if census else INCREMENTAL
    j.sb.inject(j.tracker, "loop_link", count=LIMIT, mode=LOOP_MODES[shape], jql=jql)
    pages: list[Any] = []
    with pytest.raises(PagingLoop) as caught:
        jira.run(j, config, cursor, pages)
    assert_loop(caught.value, "jira-t", f"project {j.scope}")
    assert ("census" if census else "search") in str(caught.value)
    assert 2 <= looping_searches(j, jql) <= BOUND
    assert [e for e in j.events if e[0] == "sleep"] == []  # never retried
    assert not any(p.census for p in pages)


DC_MODES = {"startAt stuck at 0": "stuck", "the same page at every offset": "same"}


@pytest.mark.parametrize("census", [False, True], ids=["search", "census"])
@pytest.mark.parametrize("shape", list(DC_MODES))
def test_jira_dc_total_of_1e9_never_drives_endless_requests(shape: str, census: bool) -> None:
    """DC claiming `total` = 1e9 over full pages that bring nothing new stops with PagingLoop."""
    j = jira.jira(cloud=False, n=4)
    j.sb.settings.jira_page_cap = 2  # full pages of 2 (DC reports maxResults 2)
    config = jira.cfg(j, census_every=1)
    cursor = jira_cursor(j, config, census)
    jql = CENSUS if census else INCREMENTAL
    j.sb.inject(j.tracker, "huge_total", count=LIMIT, mode=DC_MODES[shape], jql=jql)
    pages: list[Any] = []
    with pytest.raises(PagingLoop) as caught:
        jira.run(j, config, cursor, pages)
    assert_loop(caught.value, "jira-t", f"project {j.scope}")
    assert 2 <= looping_searches(j, jql) <= BOUND
    assert [e for e in j.events if e[0] == "sleep"] == []  # never retried
    assert not any(p.census for p in pages)


def test_jira_dc_short_pages_under_a_huge_total_end_the_listing_and_hold_the_window() -> None:
    """Fresh issues on pages shorter than the reported maxResults, total 1e9: the short page is
    the last; the listing counts as incomplete (window kept, no census), one request."""
    j = jira.jira(cloud=False, n=4)
    j.sb.inject(j.tracker, "huge_total", count=LIMIT, mode="short", size=2, jql=INCREMENTAL)
    pages = jira.run(j, jira.cfg(j))
    assert looping_searches(j, INCREMENTAL) == 1
    assert j.searches[0].url.params["maxResults"] == "1000"
    assert jira.items(pages) == j.keys(j.ids[:2])
    scope = pages[-1].cursor["scopes"][j.scope]
    assert (scope["since"], scope["census_pending"]) == (None, True)
    assert all(not p.census for p in pages)


def test_jira_dc_empty_page_below_total_ends_the_listing() -> None:
    """An empty DC page with startAt < total ends the listing at once (never loops)."""
    j = jira.jira(cloud=False, n=4)
    j.sb.inject(j.tracker, "huge_total", count=LIMIT, mode="empty", jql=INCREMENTAL)
    pages = jira.run(j, jira.cfg(j))
    assert looping_searches(j, INCREMENTAL) == 1
    assert pages[-1].cursor["scopes"][j.scope]["census_pending"]


# --- the guard itself ----------------------------------------------------------------------


def test_guard_counts_only_consecutive_pages_without_a_new_id() -> None:
    """Stalled pages separated by a page with a new id never add up to a loop."""
    guard = PageGuard("c", "s", "l")
    for n in range(20):
        ids = [n] if n % STALL_PAGES == 0 else [0]
        guard.step(ids, f"t{n}")
    guard.step(["fresh"], "t-fresh")
    for n in range(20, 20 + STALL_PAGES - 1):
        guard.step([], f"t{n}")
    with pytest.raises(PagingLoop, match=f"{STALL_PAGES} pages in a row"):
        guard.step([], "t-last")


def test_guard_never_fails_the_last_page() -> None:
    """A last page (no next cursor) ends the listing even if it brings nothing new."""
    guard = PageGuard("c", "s", "l", first="a")
    guard.step([1], "b")
    for n in range(STALL_PAGES - 1):
        guard.step([1], f"x{n}")
    guard.step([], None)
    assert guard.pages == STALL_PAGES + 1


def test_guard_holds_pages_without_progress_until_the_listing_moves_on() -> None:
    """A page with nothing new waits; progress or the listing's end releases it in order."""
    guard = PageGuard("c", "s", "l", first="a")
    guard.step([1, 2], "b")
    assert guard.hold("p1") == ["p1"]
    guard.step([1, 2], "c")
    assert guard.hold("p2") == []
    guard.step([3], "d")
    assert guard.hold("p3") == ["p2", "p3"]
    guard.step([3], None)
    assert guard.hold("p4") == ["p4"]


def test_a_loop_never_hands_on_the_pages_that_led_into_it() -> None:
    """Pages repeating what was seen are dropped when the stall turns out to be a loop."""
    guard = PageGuard("c", "s", "l", first=0)
    handed: list[str] = []
    guard.step([1, 2], 10)
    handed += guard.hold("first")
    for n in range(1, STALL_PAGES):
        guard.step([1, 2], 10 * (n + 1))
        handed += guard.hold(f"repeat{n}")
    with pytest.raises(PagingLoop):
        guard.step([1, 2], 10 * (STALL_PAGES + 1))
    assert handed == ["first"]


def test_guard_refuses_more_records_than_asked_before_normalising() -> None:
    """A page of more records than the page size (plus slack) fails the listing."""
    guard = PageGuard("c", "s", "l", limit=100)
    guard.step(range(110), "b")
    with pytest.raises(PayloadError, match="tracker returned 111 items on one page; asked for 100"):
        guard.step(range(1000, 1111), "c")


def test_shown_cursor_is_scrubbed_printable_and_short() -> None:
    """A cursor in an error: registered secrets masked, control characters replaced, cut."""
    register_secret("hunter2-secret")
    text = shown("abc\x1b[2Jhunter2-secret" + "z" * 200)
    assert "hunter2" not in text
    assert "\x1b" not in text
    assert len(text) <= 62


# --- the scope logic every connector shares (connectors/_scope.py) ---------------------------


def test_restarts_are_logged_with_the_scope_and_refused_past_three() -> None:
    """Three restarts of a listing are logged; the fourth refusal fails with CursorRejected."""
    restarts = Restarts("x", "conn", "o/r", "the paging links of o/r")
    with capture_logs() as logs:
        for _ in range(3):
            restarts.again("page_rejected", "HTTP 404 on a next link")
    assert [(e["event"], e["scope"], e["restart"]) for e in logs] == [
        ("x.page_rejected", "o/r", n) for n in (1, 2, 3)
    ]
    with pytest.raises(CursorRejected, match="the paging links of o/r refused 4 times in a row"):
        restarts.again("page_rejected", "HTTP 404 on a next link")


def test_a_lost_scope_is_one_page_without_deletions() -> None:
    """404/410 and 403 lose the scope (reported, nothing deleted); 401 is the credential's."""
    with capture_logs() as logs:
        page = lost_scope("x", "conn", "P1", {"v": 1}, status=404)
    assert (page.items, page.deleted, page.census, page.lost_scopes) == ([], [], {}, ["P1"])
    assert page.cursor == {"v": 1}
    assert logs[0]["event"] == "x.scope_lost"
    assert out_of_reach(NotFound("gone", status=404))
    assert out_of_reach(AuthError("no access", status=403))
    assert not out_of_reach(AuthError("bad token", status=401))
