"""The fault matrix's hostile-tracker section: a tracker that lies on purpose.

Off-origin links, paging loops, huge pages, huge fields and terminal escapes, each in the
vendor's own response shape (see `okrsync.sandbox._faults`), against every tracker it
applies to. Every case asserts that the run ends within a bounded number of requests, that
nothing (least of all a credential) reached the sandbox's witness listener on another port,
that no credential is in the stored run error or the log, and that once the fault is gone
the next runs converge to the sandbox's truth (`assert_converged`, as in test_faults.py).
A lie the product can detect fails the run with a clear error; a lie that only carries bad
text (huge fields, escapes) is stored cleaned and capped, and the run succeeds.

The default run keeps one tracker per hostile kind (a fast diagonal); `--run-slow`
(`make faults`) adds the rest.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from okrsync.config import Settings
from okrsync.logging import configure
from okrsync.sandbox import RequestLog, Sandbox
from okrsync.store import Store
from okrsync.sync import RunResult, sync_once
from okrsync.textsafe import TITLE_LIMIT
from tests.integration.sandbox_utils import TRACKER
from tests.integration.test_faults import (
    CONTAINER_PREFIXES,
    assert_converged,
    case,
    of,
    run,
    settle,
    world,
)

NAMES = list(TRACKER)
PAGE = 10  # items per page asked for: every scope spans several pages
FOREVER = 500  # uses of a fault meant to last a run: a run that never notices stops here
MAX_REQUESTS = 60  # a hostile run that fails must fail before this many requests
RUN_LIMIT_S = 60.0  # a run still going after this long counts as hung
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Outcome:
    """What one hostile run did, as seen by the sandbox, the store and the log."""

    result: RunResult
    requests: list[RequestLog]
    log: str


# --- running a hostile case ---------------------------------------------------------------


@contextmanager
def captured_log() -> Iterator[io.StringIO]:
    """okrsync's own JSON log chain (redaction included) at debug level, into a buffer."""
    saved = structlog.get_config()
    out = io.StringIO()
    configure("debug", fmt="json", stream=out)
    try:
        yield out
    finally:
        structlog.configure(**saved)


def hostile_run(sb: Sandbox, settings: Settings, store: Store, name: str) -> Outcome:
    """One run of `name`, stopped as hung after `RUN_LIMIT_S`, with its requests and log."""
    sb.clear_requests()
    with captured_log() as out:
        try:
            (result,) = asyncio.run(asyncio.wait_for(sync_once(settings, store, name), RUN_LIMIT_S))
        except TimeoutError:
            pytest.fail(
                f"{name}: the run did not end in {RUN_LIMIT_S:.0f}s ({len(of(sb, name))} requests)"
            )
    return Outcome(result, of(sb, name), out.getvalue())


def secrets_of(sb: Sandbox, name: str) -> list[str]:
    """Every form in which the connector's credential travels."""
    tokens = [v for k, v in sb.credentials.items() if k.endswith("token")]
    basic = f"{sb.credentials['jira_email']}:{sb.credentials['jira_token']}".encode()
    return [*tokens, base64.b64encode(basic).decode()] if name == "jira" else tokens


def assert_contained(sb: Sandbox, store: Store, name: str, outcome: Outcome) -> None:
    """Bounded, nothing sent elsewhere, no credential in the run error or the log."""
    assert len(outcome.requests) <= MAX_REQUESTS, (
        f"{len(outcome.requests)} requests; last: {[r.path for r in outcome.requests[-3:]]}"
    )
    assert_witness_untouched(sb)
    assert '"sync.end"' in outcome.log  # the log was captured
    stored = store.runs(name)[0]
    assert stored.status == outcome.result.status
    for secret in secrets_of(sb, name):
        assert secret not in (outcome.result.error or "")
        assert secret not in (stored.error or "")
        assert secret not in outcome.log


def assert_witness_untouched(sb: Sandbox) -> None:
    """Not one request reached the other listener (so no credential either)."""
    visits = sb.witness.visits
    with_auth = sum(1 for v in visits if "authorization" in v.headers)
    assert visits == [], (
        f"{len(visits)} requests reached {sb.witness.origin}, {with_auth} with Authorization"
    )


def assert_failed_clearly(outcome: Outcome, pattern: str) -> None:
    """Status failed, the error says what happened (matches `pattern`), no traceback."""
    error = outcome.result.error or ""
    assert outcome.result.status == "failed", (outcome.result.status, error)
    assert re.search(pattern, error, re.IGNORECASE), error
    assert "Traceback" not in error
    assert CONTROLS.search(error) is None, repr(error)


def recover(sb: Sandbox, settings: Settings, store: Store, name: str) -> None:
    """The fault gone, the next run succeeds and the store converges to the truth."""
    sb.clear_faults()
    settle()
    result = run(settings, store, name)
    assert result.status == "ok", result.error
    assert_converged(sb, settings, store, name)
    assert_witness_untouched(sb)


# --- off-origin links ----------------------------------------------------------------------

# GitHub's next link is followed verbatim, so a foreign one must fail the run before anything
# is sent; Asana's next_page.uri and Jira's self / baseUrl are never followed, so the run
# succeeds (and still sends nothing there).
FOLLOWED = {"github"}


@pytest.mark.parametrize("name", [case(n, fast=n == "github") for n in NAMES])
def test_off_origin_links_get_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """Links to another port of the host: no request, no credential ever goes there."""
    with world(monkeypatch, tmp_path, name, page_size=PAGE) as (sb, settings, store):
        sb.inject(TRACKER[name], "offorigin_link", count=FOREVER)
        outcome = hostile_run(sb, settings, store, name)
        assert sb.faults.fired.get("offorigin_link", 0) >= 1
        assert_contained(sb, store, name, outcome)
        if name in FOLLOWED:
            elsewhere = re.escape(sb.witness.origin.split("//")[1])
            assert_failed_clearly(outcome, rf"origin|host|{elsewhere}")
        else:
            assert outcome.result.status == "ok", outcome.result.error
        recover(sb, settings, store, name)


# --- paging loops --------------------------------------------------------------------------

LOOPS = [
    case("github", "loop_link", "repeat", fast=True),
    case("github", "loop_link", "count", fast=True),
    case("asana", "alternate_offset", "-", fast=True),
    case("jira", "alternate_token", "-", fast=True),
    case("jira-dc", "huge_total", "-", fast=True),
]


@pytest.mark.parametrize(("name", "kind", "mode"), LOOPS)
def test_paging_loop_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, kind: str, mode: str
) -> None:
    """A listing whose next page never ends (repeating or alternating cursor, a next link
    counting up over the same items, a total of 1e9): the run fails within a few pages."""
    params: dict[str, Any] = {} if mode == "-" else {"mode": mode}
    with world(monkeypatch, tmp_path, name, page_size=PAGE) as (sb, settings, store):
        sb.inject(TRACKER[name], kind, count=FOREVER, **params)
        outcome = hostile_run(sb, settings, store, name)
        assert sb.faults.fired.get(kind, 0) >= 1
        assert_contained(sb, store, name, outcome)
        assert_failed_clearly(outcome, r"loop")
        recover(sb, settings, store, name)


def test_asana_events_has_more_forever_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Asana /events answers the same events with has_more and a fresh sync token forever."""
    with world(monkeypatch, tmp_path, "asana", page_size=PAGE) as (sb, settings, store):
        assert run(settings, store, "asana").status == "ok"  # a stored sync token per project
        settle()
        sb.inject("asana", "events_forever", count=FOREVER)
        outcome = hostile_run(sb, settings, store, "asana")
        assert sb.faults.fired.get("events_forever", 0) >= 2
        assert_contained(sb, store, "asana", outcome)
        assert_failed_clearly(outcome, r"loop")
        recover(sb, settings, store, "asana")


# --- huge pages and bodies ------------------------------------------------------------------


@pytest.mark.parametrize("name", [case(n, fast=n == "jira-dc") for n in NAMES])
def test_page_far_beyond_its_size_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, request: pytest.FixtureRequest
) -> None:
    """A page of 200,000 items (20,000 in the fast set) when 10 were asked for: refused,
    none of them stored."""
    items = 200_000 if request.node.get_closest_marker("slow") else 20_000
    with world(monkeypatch, tmp_path, name, page_size=PAGE) as (sb, settings, store):
        sb.inject(TRACKER[name], "huge_page", items=items)
        outcome = hostile_run(sb, settings, store, name)
        assert sb.faults.fired.get("huge_page") == 1
        assert_contained(sb, store, name, outcome)
        assert_failed_clearly(outcome, r"item")
        assert {i.external_id for i in store.items(name)} <= set(sb.truth(TRACKER[name]))
        recover(sb, settings, store, name)


@pytest.mark.parametrize("name", [case(n, fast=n == "jira") for n in NAMES])
def test_body_over_the_response_cap_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """A 5 MB title with `max_response_mb = 1`: the page is refused, the run fails."""
    overrides = {"page_size": PAGE, "max_response_mb": 1}
    with world(monkeypatch, tmp_path, name, **overrides) as (sb, settings, store):
        target = target_item(sb, name)
        sb.inject(TRACKER[name], "huge_field", count=FOREVER, external_id=target)
        outcome = hostile_run(sb, settings, store, name)
        assert sb.faults.fired.get("huge_field", 0) >= 1
        assert_contained(sb, store, name, outcome)
        assert_failed_clearly(outcome, r"max_response_mb|\bMB\b|too large|bytes")
        assert all(len(i.title) <= TITLE_LIMIT for i in store.items(name))
        recover(sb, settings, store, name)


# --- hostile text ----------------------------------------------------------------------------


def target_item(sb: Sandbox, name: str) -> str:
    """A live leaf item with labels and an assignee (the text faults rewrite all three)."""
    recs = sb.world.state(TRACKER[name]).recs.values()
    return next(
        str(r.id)
        for r in sorted(recs, key=lambda r: r.id)
        if not r.deleted and r.labels and r.assignee and not r.ext_id.startswith(CONTAINER_PREFIXES)
    )


def stored_item(store: Store, name: str, external_id: str) -> Any:
    return next(i for i in store.items(name) if i.external_id == external_id)


def text_of(item: Any) -> list[str]:
    return [item.title, *item.labels, item.assignee or ""]


def repair(sb: Sandbox, name: str, external_id: str) -> None:
    """Touch the item upstream so the next run reads it again (now served as it is)."""
    tracker = TRACKER[name]
    sb.update(tracker, external_id, title=sb.truth(tracker)[external_id].title)


@pytest.mark.parametrize("name", [case(n, fast=n == "asana") for n in NAMES])
def test_huge_title_is_stored_capped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """A 5 MB title (under the response cap): the run succeeds, the title is cut to 2,000."""
    with world(monkeypatch, tmp_path, name, page_size=PAGE) as (sb, settings, store):
        target = target_item(sb, name)
        sb.inject(TRACKER[name], "huge_field", count=FOREVER, external_id=target)
        outcome = hostile_run(sb, settings, store, name)
        assert_contained(sb, store, name, outcome)
        assert outcome.result.status == "ok", outcome.result.error
        assert sb.faults.fired.get("huge_field", 0) >= 1
        title = stored_item(store, name, target).title
        assert len(title) == TITLE_LIMIT
        assert title.startswith(f"HUGE {sb.truth(TRACKER[name])[target].title} ")
        assert max(len(i.title) for i in store.items(name)) == TITLE_LIMIT
        sb.clear_faults()
        repair(sb, name, target)
        recover(sb, settings, store, name)


@pytest.mark.parametrize("name", [case(n, fast=n == "github") for n in NAMES])
def test_escape_sequences_are_stripped_on_ingest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """Clear-screen, OSC 8 links, C1 CSI and BEL in a title, labels and assignee: the run
    succeeds and the stored text has no control character left (nor a `[2J` remnant)."""
    with world(monkeypatch, tmp_path, name, page_size=PAGE) as (sb, settings, store):
        target = target_item(sb, name)
        title = sb.truth(TRACKER[name])[target].title
        sb.inject(TRACKER[name], "escapes", count=FOREVER, external_id=target)
        outcome = hostile_run(sb, settings, store, name)
        assert_contained(sb, store, name, outcome)
        assert outcome.result.status == "ok", outcome.result.error
        assert sb.faults.fired.get("escapes", 0) >= 1
        hostile = stored_item(store, name, target)
        for text in text_of(hostile):
            assert CONTROLS.search(text) is None, repr(text)
            assert "[2J" not in text, repr(text)
            assert "]8;;" not in text, repr(text)
        assert title in hostile.title
        assert "click here" in hostile.title
        sb.clear_faults()
        repair(sb, name, target)
        recover(sb, settings, store, name)
        clean = stored_item(store, name, target)
        assert sorted(hostile.labels) == sorted(clean.labels)
        assert hostile.assignee == clean.assignee
