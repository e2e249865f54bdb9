"""AsanaConnector driven through the sandbox's fake Asana, in process (no socket).

The sandbox (`okrsync.sandbox`) is the one fake Asana: its truth says what a correct connector
produces, its controls change data, refuse access and inject faults, and its request log shows
what the connector asked. Pure normaliser tests use the recorded vendor shapes (tests/vendor.py).
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from okrsync_connectors.asana import TASK_FIELDS, AsanaConfig, AsanaConnector
from okrsync_connectors.asana.cursor import AsanaCursor
from okrsync_connectors.asana.normalise import Normaliser
from structlog.testing import capture_logs

from okrsync.config import ConnectorConfig
from okrsync.demo import sandbox_connectors, sandbox_env
from okrsync.errors import AuthError, CursorRejected, PayloadError
from okrsync.http import Http
from okrsync.models import DEFAULT_DROPPED_NAMES, Cursor, ItemKind, Page, StatusCategory
from okrsync.sandbox import Sandbox, TruthItem
from tests.vendor import VENDOR_API

VENDOR = VENDOR_API / "asana"
# Seed 1 with 18 tasks: project P1 has 9 (a milestone, 2 subtasks, done / in progress / to do),
# P2 has 6, P3 has 3 (one in "Cancelled").
SEED = 1
TASKS = 18
P1, P2, P3 = "1201000000000001", "1201000000000002", "1201000000000003"
UNKNOWN = "1201000000000099"  # no such project: Asana answers 404
KIND = {"task": ItemKind.TASK, "milestone": ItemKind.MILESTONE, "section": ItemKind.SECTION}
STATUS = {s.value: s for s in StatusCategory}


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's (fake, fixed) secrets in the environment the configs name."""
    for name, value in sandbox_env(Sandbox(seed=SEED, sizes={})).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def sb() -> Sandbox:
    """A private sandbox (in process: no `start()`, no socket) a test may change and fault."""
    return Sandbox(seed=SEED, sizes={"asana": TASKS})


# -- the sandbox's truth, in listing order ----------------------------------------------------


def truth(
    sb: Sandbox, project: str, kinds: tuple[str, ...] = ("task", "milestone")
) -> list[TruthItem]:
    live = [
        t
        for t in sb.truth("asana").values()
        if t.scope == project and not t.deleted and t.kind in kinds
    ]
    return sorted(live, key=lambda t: (t.updated, int(t.external_id.removeprefix("section:"))))


def task_ids(sb: Sandbox, project: str = P1) -> list[str]:
    """A project's live tasks (milestones too) as Asana lists them: by (modified_at, gid)."""
    return [t.external_id for t in truth(sb, project)]


def section_ids(sb: Sandbox, project: str = P1) -> list[str]:
    return [t.external_id for t in truth(sb, project, ("section",))]


def section_gid(sb: Sandbox, project: str, title: str) -> str:
    (gid,) = [
        s.removeprefix("section:") for s in section_ids(sb, project) if title_of(sb, s) == title
    ]
    return gid


def title_of(sb: Sandbox, external_id: str) -> str:
    return sb.truth("asana")[external_id].title


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def newest(sb: Sandbox, project: str = P1) -> str:
    return iso(max(t.updated for t in truth(sb, project)))


def calls(sb: Sandbox, path_end: str) -> list[dict[str, str]]:
    """The query of each logged request whose path ends with `path_end`."""
    return [e.query for e in sb.requests if e.path.endswith(path_end)]


def statuses(sb: Sandbox, path_end: str) -> list[int]:
    return [e.status for e in sb.requests if e.path.endswith(path_end)]


# -- running the connector --------------------------------------------------------------------


@dataclass
class Result:
    pages: list[Page]
    http: Http
    sleeps: list[float]
    error: BaseException | None = None

    @property
    def cursor(self) -> Cursor:
        return self.pages[-1].cursor

    def items(self, *kinds: ItemKind) -> list[Any]:
        return [i for p in self.pages for i in p.items if not kinds or i.kind in kinds]

    def tasks(self) -> list[Any]:
        """Tasks and milestones (everything but sections), in the order yielded."""
        return self.items(ItemKind.TASK, ItemKind.MILESTONE)

    def deleted(self) -> list[str]:
        return [d for p in self.pages for d in p.deleted]


class Hooked(httpx.AsyncBaseTransport):
    """The sandbox transport, calling `hook` before each request is served (to change the
    sandbox at a chosen moment of a run)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, hook: Callable[[httpx.Request], None]):
        self.inner, self.hook = inner, hook

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.hook(request)
        return await self.inner.handle_async_request(request)


def config(sb: Sandbox, scope: list[str] | None = None, **kw: Any) -> ConnectorConfig:
    """The demo's Asana connector on this sandbox, for `scope` (default P1), with `kw`."""
    (cfg,) = [c for c in sandbox_connectors(sb, scope=scope or [P1], **kw) if c.type == "asana"]
    return cfg


def run(
    sb: Sandbox,
    cfg: ConnectorConfig,
    cursor: Cursor | None = None,
    stop_after: int | None = None,
    hook: Callable[[httpx.Request], None] | None = None,
) -> Result:
    """One pull against the sandbox; exceptions are captured with the pages yielded before them."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def go() -> Result:
        transport: httpx.AsyncBaseTransport = sb.transport()
        if hook is not None:
            transport = Hooked(transport, hook)
        async with httpx.AsyncClient(transport=transport) as client:
            http = Http(client, connector=cfg.name, sleep=sleep)
            result = Result([], http, sleeps)
            gen = AsanaConnector(cfg, http).pull(cursor)
            assert isinstance(gen, AsyncGenerator)  # `pull` is an async generator function
            try:
                async for page in gen:
                    result.pages.append(page)
                    if stop_after is not None and len(result.pages) >= stop_after:
                        break
            except Exception as exc:
                result.error = exc
            finally:
                await gen.aclose()
            return result

    return asyncio.run(go())


# -- recorded vendor shapes, for the pure normaliser tests ------------------------------------


def recorded_task() -> dict[str, Any]:
    records = json.loads(
        (VENDOR / "recorded/airbyte-source-asana/expected_records.subset.json").read_text(
            encoding="utf-8"
        )
    )
    task: dict[str, Any] = next(r["data"] for r in records if r["stream"] == "tasks")
    return copy.deepcopy(task)


def make_task(
    gid: str,
    project: str = "P1",
    *,
    modified: str = "2024-05-01T10:00:00.000Z",
    section: str = "To Do",
    completed: bool = False,
    estimate: float | None = None,
    estimate_name: str = "Estimate",
) -> dict[str, Any]:
    """The recorded Airbyte task, re-identified and moved into `project`/`section`."""
    task = recorded_task()
    task.update(gid=gid, name=f"Task {gid}", modified_at=modified, completed=completed)
    task["completed_at"] = modified if completed else None
    task["memberships"] = [
        {
            "project": {"gid": project, "name": f"Project {project}"},
            "section": {"gid": f"{project}-s-{section}", "name": section},
        }
    ]
    if estimate is not None:
        task["custom_fields"].append(
            {
                "gid": "cf-est",
                "name": estimate_name,
                "type": "number",
                "resource_subtype": "number",
                "number_value": estimate,
            }
        )
    return task


def normaliser(dropped: list[str] | None = None, estimate: str | None = None) -> Normaliser:
    return Normaliser.build("t", DEFAULT_DROPPED_NAMES if dropped is None else dropped, estimate)


# -- first run, paging, census ----------------------------------------------------------------


def test_first_run_pages_to_the_end_and_emits_a_census(sb: Sandbox) -> None:
    """A first run takes the 412 sync token, lists sections and every task page, then a census."""
    ids, sections = task_ids(sb), section_ids(sb)
    assert len(ids) == 9
    res = run(sb, config(sb, page_size=2))
    assert res.error is None
    assert statuses(sb, "/events") == [412]
    assert [t.external_id for t in res.tasks()] == ids
    assert [s.external_id for s in res.items(ItemKind.SECTION)] == sections
    task_calls = calls(sb, "/tasks")
    # page one, then each page's own next offset (a refused or reused offset would not be 200)
    assert ["offset" in c for c in task_calls] == [False, True, True, True, True]
    assert len({c.get("offset") for c in task_calls}) == 5
    assert statuses(sb, "/tasks") == [200] * 5
    assert all("modified_since" not in c for c in task_calls)
    census = [p.census for p in res.pages if p.census]
    assert census == [{P1: [*sections, *ids]}]
    assert res.pages[-1].census  # on the last page
    st = res.cursor["scopes"][P1]
    assert st["window"] == newest(sb)
    assert st["sync"]
    assert st["pending"] is None
    assert st["census_due"] is False


def test_every_task_subtask_milestone_and_section_matches_the_truth(sb: Sandbox) -> None:
    """Each project's tasks (subtasks with their parent), milestones and sections normalise to
    the sandbox's truth: kind, title, status, parent, labels, estimate, updated, container."""
    scopes = sb.scopes("asana")
    res = run(sb, config(sb, scopes))
    assert res.error is None

    def view(t: TruthItem) -> tuple[Any, ...]:
        return (t.kind, t.title, t.status, t.parent_key, t.labels, t.estimate, t.updated, t.scope)

    got = {
        i.external_id: (
            i.kind.value,
            i.title,
            i.status.value,
            i.parent_key,
            tuple(sorted(i.labels)),
            i.estimate,
            i.updated,
            i.container,
        )
        for i in res.items()
    }
    want = {t.external_id: view(t) for t in sb.truth("asana").values() if not t.deleted}
    assert got == want
    assert sum(1 for v in want.values() if v[3] is not None) >= 4  # subtasks are covered
    assert {v[0] for v in want.values()} == {"task", "milestone", "section"}


def test_opt_fields_are_exactly_the_fields_used(sb: Sandbox) -> None:
    """Task listings ask only for the fields the normaliser reads."""
    run(sb, config(sb))
    assert calls(sb, "/tasks")[0]["opt_fields"] == TASK_FIELDS
    assert set(TASK_FIELDS.split(",")) == {
        "name",
        "resource_subtype",
        "completed",
        "completed_at",
        "created_at",
        "modified_at",
        "due_on",
        "assignee.name",
        "assignee.email",
        "tags.name",
        "parent.gid",
        "memberships.project.gid",
        "memberships.project.name",
        "memberships.section.gid",
        "memberships.section.name",
        "permalink_url",
        "custom_fields.name",
        "custom_fields.number_value",
        "custom_fields.type",
    }
    assert calls(sb, "/tasks")[0]["limit"] == "100"


def test_no_change_rerun_costs_one_events_request_per_scope(sb: Sandbox) -> None:
    """With no events, each scope costs exactly one request: the events call."""
    cfg = config(sb, [P1, P2])
    first = run(sb, cfg)
    sb.clear_requests()
    second = run(sb, cfg, first.cursor)
    assert [(e.path, e.query["resource"], e.status) for e in sb.requests] == [
        ("/events", P1, 200),
        ("/events", P2, 200),
    ]
    assert second.http.stats.requests == 2
    assert second.items() == []


def test_events_trigger_a_poll_with_modified_since_from_the_window(sb: Sandbox) -> None:
    """A changed event makes the next run poll tasks with modified_since = the stored window."""
    ids = task_ids(sb)
    first = run(sb, config(sb))
    window = first.cursor["scopes"][P1]["window"]
    at_window = [t.external_id for t in truth(sb, P1) if iso(t.updated) == window]
    sb.update("asana", ids[0], title="renamed")
    # an hour ago: modified after the window, and before the next run's start (the whole
    # second of its first `Date` header), so the window may advance
    when = datetime.now(UTC) - timedelta(hours=1)
    assert iso(when) > window
    sb.set_updated("asana", [ids[0]], when)
    second = run(sb, config(sb), first.cursor)
    assert calls(sb, "/tasks")[-1]["modified_since"] == window
    # the changed task, after the tasks modified at the window itself (the boundary)
    assert [t.external_id for t in second.tasks()] == [*at_window, ids[0]]
    assert second.tasks()[-1].title == "renamed"
    assert second.cursor["scopes"][P1]["window"] == iso(sb.truth("asana")[ids[0]].updated)
    assert len(calls(sb, "/sections")) == 1  # sections only on run one


def test_equal_timestamps_across_a_page_boundary_lose_nothing_and_terminate(sb: Sandbox) -> None:
    """Tasks sharing the boundary timestamp across pages are all seen, and re-polls end."""
    ids = task_ids(sb)
    ts = datetime(2024, 5, 1, 10, tzinfo=UTC)
    sb.set_updated("asana", ids, ts)
    first = run(sb, config(sb, page_size=2))
    assert sorted(t.external_id for t in first.tasks()) == sorted(ids)
    assert first.cursor["scopes"][P1]["window"] == "2024-05-01T10:00:00.000Z"
    sb.set_updated("asana", [ids[-1]], ts)  # a `changed` event, the timestamp unchanged
    second = run(sb, config(sb, page_size=2), first.cursor)
    assert second.error is None
    assert calls(sb, "/tasks")[-1]["modified_since"] == "2024-05-01T10:00:00.000Z"
    assert len(second.tasks()) == len(ids)  # boundary duplicates; the store de-duplicates
    assert second.cursor["scopes"][P1]["window"] == "2024-05-01T10:00:00.000Z"
    assert second.cursor["scopes"][P1]["pending"] is None


def test_item_updated_during_the_run_keeps_the_starting_window(sb: Sandbox) -> None:
    """A task modified at/after the run's start keeps the window and leaves a re-poll pending."""
    ids = task_ids(sb)
    first = run(sb, config(sb))
    window = first.cursor["scopes"][P1]["window"]
    # Not before the next run's start: the whole second of its first response's `Date`.
    later = datetime.now(UTC) + timedelta(seconds=0.05)
    sb.set_updated("asana", [ids[1]], later)
    second = run(sb, config(sb), first.cursor)
    st = second.cursor["scopes"][P1]
    assert st["window"] == window
    assert st["pending"] == {"since": window, "offset": None, "high": None, "keep": False}
    # until the server's clock (whole seconds) has passed `later`
    passed = later.replace(microsecond=0) + timedelta(seconds=1, milliseconds=10)
    time.sleep(max(0.0, (passed - datetime.now(UTC)).total_seconds()))
    sb.clear_requests()
    third = run(sb, config(sb), second.cursor)  # no events, but the re-poll still happens
    assert [(e.path.rsplit("/", 1)[-1], e.status) for e in sb.requests] == [
        ("events", 200),
        ("tasks", 200),
    ]
    assert third.cursor["scopes"][P1]["window"] == iso(sb.truth("asana")[ids[1]].updated)
    assert third.cursor["scopes"][P1]["pending"] is None


def test_killed_run_resumes_at_the_stored_offset(sb: Sandbox) -> None:
    """A run stopped after a task page resumes from its offset, replaying at most one page."""
    ids = task_ids(sb)
    cfg = config(sb, page_size=2)
    partial = run(sb, cfg, stop_after=3)  # events, sections, tasks page 1
    assert [t.external_id for t in partial.tasks()] == ids[:2]
    offset = partial.cursor["scopes"][P1]["pending"]["offset"]
    assert offset
    sb.clear_requests()
    rest = run(sb, cfg, partial.cursor)
    resumed = [t.external_id for t in rest.tasks()]
    assert resumed[:7] == ids[2:]
    assert calls(sb, "/tasks")[0]["offset"] == offset
    assert statuses(sb, "/tasks")[0] == 200
    # the census of the interrupted full listing is redone in the census pass, with full tasks
    assert tasks_in(rest.pages[-1].census[P1]) == sorted(ids)
    assert resumed[7:] == ids
    assert calls(sb, "/tasks")[-1]["opt_fields"] == TASK_FIELDS


def test_pending_poll_restarts_from_its_window_when_events_arrived(sb: Sandbox) -> None:
    """If events arrived since the interrupted run, the pending poll restarts at page one."""
    ids = task_ids(sb)
    cfg = config(sb, page_size=2)
    partial = run(sb, cfg, stop_after=3)
    sb.update("asana", ids[0], title="renamed")  # now the newest: listed last
    sb.clear_requests()
    rest = run(sb, cfg, partial.cursor)
    assert "offset" not in calls(sb, "/tasks")[0]
    assert [t.external_id for t in rest.tasks()] == [*ids[1:], ids[0]]  # none skipped
    assert rest.tasks()[-1].title == "renamed"


# -- normalisation ----------------------------------------------------------------------------


def test_recorded_task_is_normalised() -> None:
    """The real recorded task (in the list envelope) maps onto the WorkItem fields."""
    raw = recorded_task()
    raw["memberships"][0]["project"]["name"] = "Airbyte OKRs"
    raw["memberships"][0]["section"]["name"] = "Doing"
    raw["assignee"]["name"] = "Natalie Kwong"
    raw["tags"][0]["name"] = "growth"
    raw.update(due_on="2021-10-01", parent={"gid": "1200000000000001"})
    raw["custom_fields"].append(
        {"gid": "9", "name": "estimate", "type": "number", "number_value": 3}
    )
    scope = "1200357126478233"
    item = normaliser().task(raw, scope)
    assert (item.external_id, item.key, item.kind) == (raw["gid"], raw["gid"], ItemKind.TASK)
    assert item.item_type == "default_task"
    assert item.container == scope
    assert item.title == raw["name"]
    assert item.url == raw["permalink_url"]
    assert item.status == StatusCategory.IN_PROGRESS
    assert item.section == "Doing"
    assert item.custom == {"project": "Airbyte OKRs", "section": "Doing"}
    assert item.labels == ("growth",)
    assert item.assignee == "Natalie Kwong"
    assert item.parent_key == "1200000000000001"
    assert item.estimate == 3.0
    assert str(item.due) == "2021-10-01"
    assert item.completed_at is None
    assert item.created.isoformat() == "2021-05-20T07:51:45.495000+00:00"
    assert item.updated.isoformat() == "2021-09-15T06:52:25.346000+00:00"


def test_estimate_comes_from_the_configured_field_name(sb: Sandbox) -> None:
    """`estimate_field` names the number custom field read as the estimate."""
    want = {t.external_id: t.estimate for t in truth(sb, P1)}
    assert any(v is not None for v in want.values())
    default = run(sb, config(sb)).tasks()
    assert {i.key: i.estimate for i in default} == want  # the sandbox's field is "Estimate"
    other = run(sb, config(sb, estimate_field="Story Points")).tasks()
    assert [i.estimate for i in other] == [None] * len(want)
    # the configured name is the one read, not "Estimate" (recorded shape, no HTTP)
    norm = normaliser(estimate="Story Points")
    a = norm.task(make_task("A", estimate=5, estimate_name="Story Points"), "P1")
    b = norm.task(make_task("B", estimate=8), "P1")
    assert [(i.key, i.estimate) for i in (a, b)] == [("A", 5.0), ("B", None)]


@pytest.mark.parametrize(
    ("section", "completed", "expected"),
    [
        ("To Do", False, StatusCategory.TODO),
        ("In Progress", False, StatusCategory.IN_PROGRESS),
        ("doing", False, StatusCategory.IN_PROGRESS),
        ("IN REVIEW", False, StatusCategory.IN_PROGRESS),
        ("Cancelled", False, StatusCategory.DROPPED),
        ("Won\u2019t Do", False, StatusCategory.DROPPED),
        ("In Progress", True, StatusCategory.DONE),
        ("Cancelled", True, StatusCategory.DROPPED),
    ],
)
def test_status_from_completion_and_section(
    sb: Sandbox, section: str, completed: bool, expected: StatusCategory
) -> None:
    """Completion and the section name in this project fold into the status category."""
    # open tasks live in "To do", completed ones in "Done": rename that section to `section`
    home, status = ("Done", "done") if completed else ("To do", "todo")
    sb.rename_section(section_gid(sb, P1, home), section)
    members = [t.external_id for t in truth(sb, P1) if t.status == status]
    assert members
    items = {i.key: i for i in run(sb, config(sb)).tasks()}
    for gid in members:
        assert items[gid].section == section
        assert items[gid].status == expected
        assert (items[gid].completed_at is not None) == completed


def test_dropped_sections_are_configurable(sb: Sandbox) -> None:
    """`dropped_statuses` replaces the default dropped names (case-insensitive)."""
    sb.rename_section(section_gid(sb, P3, "To do"), "Parked")
    by_status = {t.external_id: t.status for t in truth(sb, P3)}
    assert sorted(by_status.values()) == ["done", "dropped", "todo"]
    items = run(sb, config(sb, [P3], dropped_statuses=["parked"])).tasks()
    got = {i.key: (i.section, i.status) for i in items}
    for gid, status in by_status.items():
        if status == "todo":
            assert got[gid] == ("Parked", StatusCategory.DROPPED)
        elif status == "dropped":  # "Cancelled" is no longer a dropped name
            assert got[gid][0] == "Cancelled"
            assert got[gid][1] in (StatusCategory.TODO, StatusCategory.DONE)
        else:
            assert got[gid] == ("Done", StatusCategory.DONE)


def test_milestones_and_sections_are_containers(sb: Sandbox) -> None:
    """Milestone tasks become milestone containers; sections become section containers."""
    res = run(sb, config(sb))
    (ms,) = res.items(ItemKind.MILESTONE)
    assert [ms.key] == [t.external_id for t in truth(sb, P1) if t.kind == "milestone"]
    assert ms.kind.is_container
    assert ms.item_type == "milestone"
    sections = res.items(ItemKind.SECTION)
    assert [(s.external_id, s.key, s.title, s.container) for s in sections] == [
        (t.external_id, t.external_id, t.title, P1) for t in truth(sb, P1, ("section",))
    ]
    assert [s.title for s in sections] == ["To do", "In Progress", "Done", "Cancelled"]
    assert all(s.kind.is_container for s in sections)


def test_dates_with_offsets_become_utc() -> None:
    """Timestamps with a UTC offset are converted to aware UTC datetimes (recorded shape)."""
    item = normaliser().task(make_task("A", modified="2024-05-01T12:00:00.000+02:00"), "P1")
    assert item.updated.isoformat() == "2024-05-01T10:00:00+00:00"


# -- events, deletions, moves, census ---------------------------------------------------------


def test_first_sync_412_then_events_with_a_deleted_task(sb: Sandbox) -> None:
    """The first events call's 412 token is stored; a later `deleted` event lands in deleted."""
    ids = task_ids(sb)
    first = run(sb, config(sb))
    assert first.error is None
    assert calls(sb, "/events")[0] == {"resource": P1}
    assert statuses(sb, "/events") == [412]
    token = first.cursor["scopes"][P1]["sync"]
    sb.delete("asana", ids[2])
    second = run(sb, config(sb), first.cursor)
    assert calls(sb, "/events")[-1] == {"resource": P1, "sync": token}
    assert statuses(sb, "/events")[-1] == 200
    assert second.deleted() == [ids[2]]
    assert second.cursor["scopes"][P1]["sync"] != token


def test_events_with_has_more_are_read_to_the_end() -> None:
    """Events are fetched again while `has_more` is true, each time with the newer token."""
    sb = Sandbox(seed=SEED, sizes={"asana": 480})
    ids = task_ids(sb)
    first = run(sb, config(sb))
    gone = ids[:150]
    for gid in gone:
        sb.delete("asana", gid)
    second = run(sb, config(sb), first.cursor)
    events = calls(sb, "/events")
    assert len(events) == 3
    assert events[2]["sync"] != events[1]["sync"]
    assert statuses(sb, "/events") == [412, 200, 200]
    assert sorted(second.deleted()) == sorted(gone)


def test_expired_sync_token_gets_a_new_one_and_polls_from_the_window(sb: Sandbox) -> None:
    """A 412 for a stored token stores the new token and polls from the window, no error."""
    first = run(sb, config(sb))
    sb.inject("asana", "expire_sync_token")
    second = run(sb, config(sb), first.cursor)
    assert second.error is None
    assert statuses(sb, "/events") == [412, 412]
    assert calls(sb, "/tasks")[-1]["modified_since"] == first.cursor["scopes"][P1]["window"]
    token = second.cursor["scopes"][P1]["sync"]
    assert token != first.cursor["scopes"][P1]["sync"]
    run(sb, config(sb), second.cursor)
    assert calls(sb, "/events")[-1]["sync"] == token
    assert statuses(sb, "/events")[-1] == 200  # the new token is one the server issued


def test_task_moved_between_projects_is_not_reported_deleted(sb: Sandbox) -> None:
    """A move P1→P2 re-homes the task; P1's census (after P2's poll) omits it, no deletion."""
    ids = task_ids(sb)
    cfg = config(sb, [P1, P2])
    first = run(sb, cfg)
    moved = ids[0]
    sb.move("asana", moved, P2)  # `removed` from P1, `added` to P2
    second = run(sb, cfg, first.cursor)
    assert second.deleted() == []
    seen = [(i.key, i.container) for i in second.tasks()]
    assert (moved, P2) in seen
    census_pages = [i for i, p in enumerate(second.pages) if p.census]
    p2_item = next(i for i, p in enumerate(second.pages) if any(t.key == moved for t in p.items))
    assert census_pages
    assert min(census_pages) > p2_item
    assert second.pages[census_pages[0]].census == {P1: [*section_ids(sb), *ids[1:]]}


def test_census_runs_every_census_every_runs(sb: Sandbox) -> None:
    """Every `census_every` runs a full listing of each scope emits a census (same page cost)."""
    cfg = config(sb, census_every=2)
    first = run(sb, cfg)
    second = run(sb, cfg, first.cursor)
    assert not any(p.census for p in second.pages)
    sb.clear_requests()
    third = run(sb, cfg, second.cursor)
    assert third.pages[-1].census == {P1: [*section_ids(sb), *task_ids(sb)]}
    assert [c["opt_fields"] for c in calls(sb, "/tasks")] == [TASK_FIELDS, TASK_FIELDS]
    assert third.cursor["scopes"][P1]["runs"] == 0


# -- errors -----------------------------------------------------------------------------------


def test_expired_offset_restarts_the_listing_from_the_window(sb: Sandbox) -> None:
    """A 400 about the pagination token restarts the scope's listing from page one."""
    ids = task_ids(sb)
    sb.inject("asana", "expire_offset")
    res = run(sb, config(sb, page_size=4))
    assert res.error is None
    task_calls = calls(sb, "/tasks")
    assert ["offset" in c for c in task_calls] == [False, True, False, True, True]
    assert statuses(sb, "/tasks") == [200, 400, 200, 200, 200]
    assert task_calls[1]["offset"] == task_calls[3]["offset"]  # the same position, re-issued
    assert len({t.key for t in res.tasks()}) == len(ids)
    assert tasks_in(res.pages[-1].census[P1]) == sorted(ids)  # the restart listed each once


def test_expired_offset_restarts_are_bounded(sb: Sandbox) -> None:
    """An offset refused again and again ends in CursorRejected after three restarts."""
    sb.inject("asana", "expire_offset", count=99)
    res = run(sb, config(sb, page_size=2))
    assert isinstance(res.error, CursorRejected)
    assert len([c for c in calls(sb, "/tasks") if "offset" in c]) == 4
    assert statuses(sb, "/tasks") == [200, 400] * 4


def test_other_bad_request_is_a_payload_error(sb: Sandbox) -> None:
    """A 400 that is not about the offset (here a bad modified_since) is a PayloadError."""
    state = {"window": "yesterday", "sync": None, "runs": 0, "census_due": False}
    cursor: Cursor = {"v": 1, "scopes": {P1: {**state, "sections_due": False, "pending": None}}}
    res = run(sb, config(sb), cursor)
    assert isinstance(res.error, PayloadError)
    assert statuses(sb, "/tasks") == [400]
    assert "modified_since: Not a valid datetime: yesterday" in str(res.error)


def test_rate_limit_waits_at_least_retry_after(sb: Sandbox) -> None:
    """A 429 with Retry-After is retried by Http after a recorded sleep >= Retry-After."""
    sb.inject("asana", "429", retry_after=7)
    res = run(sb, config(sb))
    assert res.error is None
    assert statuses(sb, "/events") == [429, 412]
    assert res.sleeps
    assert res.sleeps[0] >= 7
    assert res.http.stats.retries == 1
    assert len(res.tasks()) == len(task_ids(sb))


def test_server_error_is_retried(sb: Sandbox) -> None:
    """A 503 is retried and the run completes."""
    sb.inject("asana", "503")
    res = run(sb, config(sb))
    assert res.error is None
    assert statuses(sb, "/events") == [503, 412]
    assert len(res.sleeps) == 1
    assert len(res.tasks()) == len(task_ids(sb))


def test_unauthorized_raises_auth_error_and_yields_nothing(sb: Sandbox) -> None:
    """A 401 fails the run with AuthError before any page (the cursor never advances)."""
    sb.revoke_token("asana")
    res = run(sb, config(sb, [P1, P2]))
    assert isinstance(res.error, AuthError)
    assert res.pages == []
    assert [e.status for e in sb.requests] == [401]


@pytest.mark.parametrize("status", [403, 404])
def test_lost_project_is_reported_not_deleted(sb: Sandbox, status: int) -> None:
    """A project answering 403/404 yields lost_scopes and the other scopes still sync."""
    lost = P1 if status == 403 else UNKNOWN
    if status == 403:
        sb.hide_scope("asana", P1)
    res = run(sb, config(sb, [lost, P2]))
    assert res.error is None
    assert [e.status for e in sb.requests if e.query.get("resource") == lost] == [status]
    assert [p.lost_scopes for p in res.pages if p.lost_scopes] == [[lost]]
    assert all(not p.deleted and lost not in p.census for p in res.pages)
    assert [i.key for i in res.tasks()] == task_ids(sb, P2)


@pytest.mark.parametrize("status", [403, 404])
def test_project_lost_during_the_task_poll(sb: Sandbox, status: int) -> None:
    """A 403/404 on the tasks listing (after the events call) is a lost scope too."""
    first = run(sb, config(sb))
    sb.update("asana", task_ids(sb)[0], title="changed")

    def hide(request: httpx.Request) -> None:  # access revoked between the two requests
        if request.url.path.endswith("/tasks"):
            sb.hide_scope("asana", P1)

    if status == 404:
        sb.inject("asana", "404", path_contains="/tasks")
    res = run(sb, config(sb), first.cursor, hook=hide if status == 403 else None)
    assert res.error is None
    assert [(e.path.rsplit("/", 1)[-1], e.status) for e in sb.requests[-2:]] == [
        ("events", 200),
        ("tasks", status),
    ]
    assert res.pages[-1].lost_scopes == [P1]
    assert res.cursor["scopes"][P1]["pending"] is not None  # polled again once visible


def test_authorization_header_is_bearer_token(sb: Sandbox) -> None:
    """Requests carry `Authorization: Bearer <PAT>` from the configured secret."""
    run(sb, config(sb))
    assert {e.headers_in["authorization"] for e in sb.requests} == {
        f"Bearer {sb.credentials['asana_token']}"
    }


def test_section_events_refresh_or_delete_sections(sb: Sandbox) -> None:
    """A deleted section is reported as `section:<gid>`; a renamed one is re-listed."""
    old = sb.add_section(P1, "Old")
    first = run(sb, config(sb))
    assert f"section:{old}" in [s.external_id for s in first.items(ItemKind.SECTION)]
    sb.rename_section(section_gid(sb, P1, "In Progress"), "Doing now")
    sb.delete_section(old)
    second = run(sb, config(sb), first.cursor)
    assert second.deleted() == [f"section:{old}"]
    assert "Doing now" in [s.title for s in second.items(ItemKind.SECTION)]
    assert f"section:{old}" not in [s.external_id for s in second.items(ItemKind.SECTION)]
    assert second.cursor["scopes"][P1]["sections_due"] is False


def test_the_sandbox_deletes_only_empty_added_sections(sb: Sandbox) -> None:
    """Like Asana, the sandbox refuses to delete a section that still holds tasks."""
    done = section_gid(sb, P1, "Done")
    with pytest.raises(ValueError, match="not empty"):
        sb.delete_section(done)
    with pytest.raises(KeyError):
        sb.rename_section(UNKNOWN, "x")
    added = sb.add_section(P1, "Later")
    sb.delete_section(added)
    assert sb.truth("asana")[f"section:{added}"].deleted


def test_the_ignored_workspace_key_is_logged_at_sync(sb: Sandbox) -> None:
    """`workspace` never did anything: a run says so (once, with the fix) and syncs as before."""
    cfg = AsanaConfig.of(config(sb)).model_copy(update={"workspace": "12000"})
    with capture_logs() as logs:
        res = run(sb, cfg)
    assert res.error is None
    assert len(res.tasks()) == len(task_ids(sb))
    ignored = [e for e in logs if e["event"] == "asana.workspace_ignored"]
    assert len(ignored) == 1
    assert "remove it" in ignored[0]["hint"]


def test_the_normaliser_is_a_function_of_the_json() -> None:
    """No HTTP: a task record in, a work item out, its status from the plug-in's vocabulary."""
    norm = Normaliser.build("t", ["Won\u2019t do"], "Points")
    doing = norm.task(make_task("1", section="Doing", estimate=3, estimate_name="Points"), "P1")
    assert (doing.status, doing.status_raw, doing.estimate) == (
        StatusCategory.IN_PROGRESS,
        "open / Doing",
        3.0,
    )
    dropped = norm.task(make_task("2", section="won't do", completed=True), "P1")
    assert dropped.status is StatusCategory.DROPPED
    with pytest.raises(KeyError):
        norm.task({"gid": "3"}, "P1")  # no created_at: the connector logs and skips it


def test_the_cursor_is_typed_and_keeps_its_stored_json_shape() -> None:
    """A stored cursor loads as AsanaCursor and dumps back unchanged; unconfigured projects
    are dropped, a new one starts with a census due, another version starts over."""
    poll = {"since": "2024-05-01T10:00:00.000Z", "offset": "eyJ0", "high": None, "keep": True}
    p1 = {
        "window": "2024-05-01T10:00:00.000Z",
        "sync": "tok",
        "runs": 2,
        "census_due": False,
        "sections_due": True,
        "pending": poll,
    }
    raw: Cursor = {"v": 1, "scopes": {"P1": p1, "OLD": {**p1, "pending": None}}}
    cursor = AsanaCursor.load(raw, ["P1"])
    pending = cursor.scopes["P1"].pending
    assert pending is not None
    assert pending.offset == "eyJ0"
    assert cursor.dump() == {"v": 1, "scopes": {"P1": p1}}
    fresh = AsanaCursor.load({**raw, "v": 2}, ["P1"]).dump()["scopes"]["P1"]
    assert (fresh["census_due"], fresh["window"], fresh["pending"]) == (True, None, None)


def tasks_in(census: Iterable[str]) -> list[str]:
    """The task gids of a census (its `section:<gid>` entries left out), sorted."""
    return sorted(i for i in census if not i.startswith("section:"))
