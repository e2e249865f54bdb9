"""AsanaConnector against a fake Asana built from the vendored payloads (tests/fixtures)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from okrsync_connectors.asana import TASK_FIELDS, AsanaConfig, AsanaConnector
from okrsync_connectors.asana.cursor import AsanaCursor
from okrsync_connectors.asana.normalise import Normaliser
from structlog.testing import capture_logs

from okrsync.config import ConnectorConfig
from okrsync.errors import AuthError, CursorRejected, PayloadError
from okrsync.http import Http
from okrsync.models import Cursor, ItemKind, Page, StatusCategory
from tests.vendor import VENDOR_API

VENDOR = VENDOR_API / "asana"
BASE = "https://asana.test/api/1.0"
DATE = "Wed, 01 Jan 2025 12:00:00 GMT"  # server clock: later than every task below


def load(name: str) -> Any:
    return json.loads((VENDOR / "examples" / name).read_text(encoding="utf-8"))


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
    subtype: str = "default_task",
    estimate: float | None = None,
    estimate_name: str = "Estimate",
) -> dict[str, Any]:
    """The recorded Airbyte task, re-identified and moved into `project`/`section`."""
    task = recorded_task()
    task.update(
        gid=gid,
        name=f"Task {gid}",
        modified_at=modified,
        completed=completed,
        resource_subtype=subtype,
    )
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


def pick(obj: Any, paths: list[str]) -> Any:
    """Asana's `opt_fields` projection: only the requested (dotted) fields, plus gid."""
    if isinstance(obj, list):
        return [pick(o, paths) for o in obj]
    if not isinstance(obj, dict):
        return obj
    out = {"gid": obj["gid"]} if "gid" in obj else {}
    heads: dict[str, list[str]] = {}
    for p in paths:
        head, _, rest = p.partition(".")
        heads.setdefault(head, []).append(rest)
    for head, rests in heads.items():
        if head in obj:
            sub = [r for r in rests if r]
            out[head] = pick(obj[head], sub) if sub and obj[head] is not None else obj[head]
    return out


@dataclass
class FakeAsana:
    """Behaves like the Asana endpoints the connector uses: paging, filters, events, errors."""

    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    lost: dict[str, int] = field(default_factory=dict)  # project gid → status
    expire_offsets: int = 0  # how many offset uses answer 400
    script: list[httpx.Response] = field(default_factory=list)  # served first, in order
    on_request: Callable[[httpx.Request], None] | None = None
    date: str = DATE  # the server clock, sent as the `Date` header

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.on_request:
            self.on_request(request)
        if self.script:
            return self.script.pop(0)
        path = request.url.path.removeprefix("/api/1.0")
        q = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        parts = path.strip("/").split("/")
        gid = q.get("resource", "") if parts == ["events"] else parts[1]
        if gid in self.lost:
            return self.reply(self.lost[gid], load("error-400.json"))
        if parts == ["events"]:
            return self.serve_events(str(gid), q.get("sync"))
        rows = self.tasks.get(gid, []) if parts[2] == "tasks" else self.sections.get(gid, [])
        if "modified_since" in q:
            rows = [t for t in rows if t["modified_at"] >= q["modified_since"]]
        return self.serve_page(rows, q)

    def serve_page(self, rows: list[dict[str, Any]], q: dict[str, str]) -> httpx.Response:
        if "offset" in q and self.expire_offsets:
            self.expire_offsets -= 1
            body = load("error-400.json")
            body["errors"][0]["message"] = "offset: Your pagination token has expired."
            return self.reply(400, body)
        start = int(q.get("offset", "o0")[1:])
        limit = int(q.get("limit", "100"))
        body = load("get-tasks-for-project.json")
        fields = q.get("opt_fields", "").split(",")
        body["data"] = [pick(r, fields) for r in rows[start : start + limit]]
        end = start + limit
        if end < len(rows):
            body["next_page"].update(offset=f"o{end}", path=f"?offset=o{end}")
        else:
            body["next_page"] = None
        return self.reply(200, body, {"Date": self.date})

    def serve_events(self, gid: str, sync: str | None) -> httpx.Response:
        queue = self.events.setdefault(gid, [])
        if sync is None or sync not in self.tokens:
            body = load("get-events.412.json")
            body["sync"] = self.new_token(gid, len(queue))
            return self.reply(412, body, {"Date": self.date})
        seen = self.tokens[sync][1]
        batch = queue[seen : seen + 100]
        body = load("get-events.json")
        body.update(
            data=batch,
            sync=self.new_token(gid, seen + len(batch)),
            has_more=seen + len(batch) < len(queue),
        )
        return self.reply(200, body, {"Date": self.date})

    def new_token(self, gid: str, seen: int) -> str:
        token = f"sync-{len(self.tokens)}"
        self.tokens[token] = (gid, seen)
        return token

    def event(
        self, gid: str, resource: str, action: str, rtype: str = "task", parent: str | None = None
    ) -> None:
        ev = copy.deepcopy(load("get-events.json")["data"][0])
        ev["resource"].update(gid=resource, resource_type=rtype)
        ev.update(action=action, type=rtype, change=None)
        ev["parent"] = {"gid": parent, "resource_type": "project", "name": "p"} if parent else None
        self.events.setdefault(gid, []).append(ev)

    @staticmethod
    def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"Date": DATE, **(headers or {})})

    def calls(self, path_end: str) -> list[dict[str, str]]:
        return [
            {k: v[0] for k, v in parse_qs(r.url.query.decode()).items()}
            for r in self.requests
            if r.url.path.endswith(path_end)
        ]

    def section_rows(self, gid: str, names: list[str]) -> None:
        base = load("get-sections-for-project.json")["data"][0]
        self.sections[gid] = [
            {**base, "gid": f"{gid}-s-{n}", "name": n, "created_at": "2024-01-01T00:00:00.000Z"}
            for n in names
        ]


@dataclass
class Result:
    pages: list[Page]
    http: Http
    sleeps: list[float]
    error: BaseException | None = None

    @property
    def cursor(self) -> Cursor:
        return self.pages[-1].cursor

    def items(self, kind: ItemKind | None = None) -> list[Any]:
        return [i for p in self.pages for i in p.items if kind is None or i.kind == kind]


def config(scope: list[str] | None = None, **kw: Any) -> ConnectorConfig:
    return ConnectorConfig(
        name="t",
        type="asana",
        base_url=BASE,
        scope=scope or ["P1"],
        token_env="ASANA_TEST_TOKEN",
        **kw,
    )


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASANA_TEST_TOKEN", "asana-pat-123")


def run(
    fake: FakeAsana,
    cfg: ConnectorConfig,
    cursor: Cursor | None = None,
    stop_after: int | None = None,
) -> Result:
    """One pull against the fake; exceptions are captured with the pages yielded before them."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def go() -> Result:
        with respx.mock(assert_all_called=False) as router:
            router.route(host="asana.test").mock(side_effect=fake.handler)
            async with httpx.AsyncClient() as client:
                http = Http(client, connector="t", sleep=sleep)
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


def seeded(n: int = 5, project: str = "P1") -> FakeAsana:
    fake = FakeAsana()
    fake.tasks[project] = [
        make_task(f"{project}-{i}", project, modified=f"2024-05-0{1 + i % 9}T10:00:00.000Z")
        for i in range(n)
    ]
    fake.section_rows(project, ["To Do", "Doing"])
    return fake


# -- first run, paging, census ----------------------------------------------------------------


def test_first_run_pages_to_the_end_and_emits_a_census() -> None:
    """A first run takes the 412 sync token, lists sections and every task page, then a census."""
    fake = seeded(5)
    res = run(fake, config(page_size=2))
    assert res.error is None
    tasks = res.items(ItemKind.TASK)
    assert [t.external_id for t in tasks] == [f"P1-{i}" for i in range(5)]
    assert [s.external_id for s in res.items(ItemKind.SECTION)] == [
        "section:P1-s-To Do",
        "section:P1-s-Doing",
    ]
    assert [c["offset"] for c in fake.calls("/tasks") if "offset" in c] == ["o2", "o4"]
    assert all("modified_since" not in c for c in fake.calls("/tasks"))
    census = [p.census for p in res.pages if p.census]
    assert census == [
        {"P1": ["section:P1-s-To Do", "section:P1-s-Doing", *[f"P1-{i}" for i in range(5)]]}
    ]
    assert res.pages[-1].census  # on the last page
    st = res.cursor["scopes"]["P1"]
    assert st["window"] == "2024-05-05T10:00:00.000Z"
    assert st["sync"]
    assert st["pending"] is None
    assert st["census_due"] is False


def test_opt_fields_are_exactly_the_fields_used() -> None:
    """Task listings ask only for the fields the normaliser reads."""
    fake = seeded(1)
    run(fake, config())
    assert fake.calls("/tasks")[0]["opt_fields"] == TASK_FIELDS
    assert set(TASK_FIELDS.split(",")) == {
        "name",
        "resource_subtype",
        "completed",
        "completed_at",
        "created_at",
        "modified_at",
        "due_on",
        "assignee.name",
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
    assert fake.calls("/tasks")[0]["limit"] == "100"


def test_no_change_rerun_costs_one_events_request_per_scope() -> None:
    """With no events, each scope costs exactly one request: the events call."""
    fake = seeded(3, "P1")
    fake.tasks["P2"] = [make_task("P2-0", "P2")]
    cfg = config(["P1", "P2"])
    first = run(fake, cfg)
    fake.requests.clear()
    second = run(fake, cfg, first.cursor)
    assert [r.url.path for r in fake.requests] == ["/api/1.0/events", "/api/1.0/events"]
    assert second.http.stats.requests == 2
    assert second.items() == []


def test_events_trigger_a_poll_with_modified_since_from_the_window() -> None:
    """A changed event makes the next run poll tasks with modified_since = the stored window."""
    fake = seeded(3)
    first = run(fake, config())
    window = first.cursor["scopes"]["P1"]["window"]
    fake.tasks["P1"][0]["modified_at"] = "2024-06-01T08:00:00.000Z"
    fake.event("P1", "P1-0", "changed")
    second = run(fake, config(), first.cursor)
    assert fake.calls("/tasks")[-1]["modified_since"] == window
    assert [t.external_id for t in second.items()] == ["P1-0", "P1-2"]  # P1-2: the boundary
    assert second.cursor["scopes"]["P1"]["window"] == "2024-06-01T08:00:00.000Z"
    assert fake.calls("/sections") == fake.calls("/sections")[:1]  # sections only on run one


def test_equal_timestamps_across_a_page_boundary_lose_nothing_and_terminate() -> None:
    """Tasks sharing the boundary timestamp across pages are all seen, and re-polls end."""
    fake = FakeAsana()
    ts = "2024-05-01T10:00:00.000Z"
    fake.tasks["P1"] = [make_task(f"T{i}", modified=ts) for i in range(5)]
    first = run(fake, config(page_size=2))
    assert sorted(t.external_id for t in first.items(ItemKind.TASK)) == [f"T{i}" for i in range(5)]
    assert first.cursor["scopes"]["P1"]["window"] == ts
    fake.event("P1", "T4", "changed")
    second = run(fake, config(page_size=2), first.cursor)
    assert second.error is None
    assert len(second.items()) == 5  # boundary duplicates; the store de-duplicates
    assert second.cursor["scopes"]["P1"]["window"] == ts
    assert second.cursor["scopes"]["P1"]["pending"] is None


def test_item_updated_during_the_run_keeps_the_starting_window() -> None:
    """A task modified at/after the run's Date keeps the window and leaves a re-poll pending."""
    fake = seeded(3)
    first = run(fake, config())
    window = first.cursor["scopes"]["P1"]["window"]
    fake.tasks["P1"][1]["modified_at"] = "2025-01-01T12:00:00.000Z"  # == server Date
    fake.event("P1", "P1-1", "changed")
    second = run(fake, config(), first.cursor)
    st = second.cursor["scopes"]["P1"]
    assert st["window"] == window
    assert st["pending"] == {"since": window, "offset": None, "high": None, "keep": False}
    fake.requests.clear()
    fake.date = "Thu, 02 Jan 2025 12:00:00 GMT"
    third = run(fake, config(), second.cursor)  # no events, but the re-poll still happens
    assert [r.url.path.rsplit("/", 1)[-1] for r in fake.requests] == ["events", "tasks"]
    assert third.cursor["scopes"]["P1"]["window"] == "2025-01-01T12:00:00.000Z"


def test_killed_run_resumes_at_the_stored_offset() -> None:
    """A run stopped after a task page resumes from its offset, replaying at most one page."""
    fake = seeded(6)
    cfg = config(page_size=2)
    partial = run(fake, cfg, stop_after=3)  # events, sections, tasks page 1
    assert [t.external_id for t in partial.items(ItemKind.TASK)] == ["P1-0", "P1-1"]
    assert partial.cursor["scopes"]["P1"]["pending"]["offset"] == "o2"
    fake.requests.clear()
    rest = run(fake, cfg, partial.cursor)
    resumed = [t.external_id for t in rest.items(ItemKind.TASK)]
    assert resumed[:4] == ["P1-2", "P1-3", "P1-4", "P1-5"]
    assert fake.calls("/tasks")[0]["offset"] == "o2"
    # the census of the interrupted full listing is redone in the census pass, with full tasks
    assert rest.pages[-1].census["P1"][-6:] == [f"P1-{i}" for i in range(6)]
    assert resumed[4:] == [f"P1-{i}" for i in range(6)]
    assert fake.calls("/tasks")[-1]["opt_fields"] == TASK_FIELDS


def test_pending_poll_restarts_from_its_window_when_events_arrived() -> None:
    """If events arrived since the interrupted run, the pending poll restarts at page one."""
    fake = seeded(6)
    cfg = config(page_size=2)
    partial = run(fake, cfg, stop_after=3)
    fake.tasks["P1"][0]["name"] = "renamed"
    fake.event("P1", "P1-0", "changed")
    fake.requests.clear()
    rest = run(fake, cfg, partial.cursor)
    assert "offset" not in fake.calls("/tasks")[0]
    assert rest.items(ItemKind.TASK)[0].title == "renamed"


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
    fake = FakeAsana(tasks={scope: [raw]})
    (item,) = run(fake, config([scope])).items(ItemKind.TASK)
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


def test_estimate_comes_from_the_configured_field_name() -> None:
    """`estimate_field` names the number custom field read as the estimate."""
    fake = FakeAsana(
        tasks={
            "P1": [
                make_task("A", estimate=5, estimate_name="Story Points"),
                make_task("B", estimate=8),
            ]
        }
    )
    items = run(fake, config(estimate_field="Story Points")).items(ItemKind.TASK)
    assert [(i.key, i.estimate) for i in items] == [("A", 5.0), ("B", None)]


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
    section: str, completed: bool, expected: StatusCategory
) -> None:
    """Completion and the section name in this project fold into the status category."""
    fake = FakeAsana(tasks={"P1": [make_task("A", section=section, completed=completed)]})
    (item,) = run(fake, config()).items(ItemKind.TASK)
    assert item.status == expected
    assert (item.completed_at is not None) == completed


def test_dropped_sections_are_configurable() -> None:
    """`dropped_statuses` replaces the default dropped names (case-insensitive)."""
    fake = FakeAsana(
        tasks={"P1": [make_task("A", section="Parked"), make_task("B", section="Cancelled")]}
    )
    items = run(fake, config(dropped_statuses=["parked"])).items(ItemKind.TASK)
    assert [i.status for i in items] == [StatusCategory.DROPPED, StatusCategory.TODO]


def test_milestones_and_sections_are_containers() -> None:
    """Milestone tasks become milestone containers; sections become section containers."""
    fake = FakeAsana(tasks={"P1": [make_task("M", subtype="milestone")]})
    fake.section_rows("P1", ["Backlog"])
    res = run(fake, config())
    (ms,) = res.items(ItemKind.MILESTONE)
    (sec,) = res.items(ItemKind.SECTION)
    assert ms.kind.is_container
    assert ms.item_type == "milestone"
    assert (sec.external_id, sec.key, sec.title, sec.container) == (
        "section:P1-s-Backlog",
        "section:P1-s-Backlog",
        "Backlog",
        "P1",
    )


def test_dates_with_offsets_become_utc() -> None:
    """Timestamps with a UTC offset are converted to aware UTC datetimes."""
    fake = FakeAsana(tasks={"P1": [make_task("A", modified="2024-05-01T12:00:00.000+02:00")]})
    (item,) = run(fake, config()).items(ItemKind.TASK)
    assert item.updated.isoformat() == "2024-05-01T10:00:00+00:00"


# -- events, deletions, moves, census ---------------------------------------------------------


def test_first_sync_412_then_events_with_a_deleted_task() -> None:
    """The first events call's 412 token is stored; a later `deleted` event lands in deleted."""
    fake = seeded(3)
    first = run(fake, config())
    assert first.error is None
    assert fake.calls("/events")[0] == {"resource": "P1"}
    token = first.cursor["scopes"]["P1"]["sync"]
    del fake.tasks["P1"][2]
    fake.event("P1", "P1-2", "deleted")
    second = run(fake, config(), first.cursor)
    assert fake.calls("/events")[-1] == {"resource": "P1", "sync": token}
    assert [d for p in second.pages for d in p.deleted] == ["P1-2"]
    assert second.cursor["scopes"]["P1"]["sync"] != token


def test_events_with_has_more_are_read_to_the_end() -> None:
    """Events are fetched again while `has_more` is true, each time with the newer token."""
    fake = seeded(1)
    first = run(fake, config())
    for i in range(150):
        fake.event("P1", f"gone-{i}", "deleted")
    second = run(fake, config(), first.cursor)
    assert len(fake.calls("/events")) == 3
    assert len([d for p in second.pages for d in p.deleted]) == 150


def test_expired_sync_token_gets_a_new_one_and_polls_from_the_window() -> None:
    """A 412 for a stored token stores the new token and polls from the window, no error."""
    fake = seeded(2)
    first = run(fake, config())
    fake.tokens.clear()  # every token expired
    second = run(fake, config(), first.cursor)
    assert second.error is None
    assert fake.calls("/tasks")[-1]["modified_since"] == first.cursor["scopes"]["P1"]["window"]
    assert second.cursor["scopes"]["P1"]["sync"] in fake.tokens


def test_task_moved_between_projects_is_not_reported_deleted() -> None:
    """A move P1→P2 re-homes the task; P1's census (after P2's poll) omits it, no deletion."""
    fake = seeded(2, "P1")
    fake.tasks["P2"] = [make_task("P2-0", "P2")]
    cfg = config(["P1", "P2"])
    first = run(fake, cfg)
    moved = fake.tasks["P1"].pop(0)
    moved = make_task(moved["gid"], "P2", modified="2024-07-01T00:00:00.000Z")
    fake.tasks["P2"].append(moved)
    fake.event("P1", moved["gid"], "removed", parent="P1")
    fake.event("P2", moved["gid"], "added", parent="P2")
    second = run(fake, cfg, first.cursor)
    assert all(not p.deleted for p in second.pages)
    seen = [(i.key, i.container) for i in second.items(ItemKind.TASK)]
    assert ("P1-0", "P2") in seen
    census_pages = [i for i, p in enumerate(second.pages) if p.census]
    p2_item = next(i for i, p in enumerate(second.pages) if any(t.key == "P1-0" for t in p.items))
    assert census_pages
    assert min(census_pages) > p2_item
    assert second.pages[census_pages[0]].census == {
        "P1": ["section:P1-s-To Do", "section:P1-s-Doing", "P1-1"]
    }


def test_census_runs_every_census_every_runs() -> None:
    """Every `census_every` runs a full listing of each scope emits a census (same page cost)."""
    fake = seeded(3)
    cfg = config(census_every=2)
    first = run(fake, cfg)
    second = run(fake, cfg, first.cursor)
    assert not any(p.census for p in second.pages)
    fake.requests.clear()
    third = run(fake, cfg, second.cursor)
    assert third.pages[-1].census == {
        "P1": ["section:P1-s-To Do", "section:P1-s-Doing", "P1-0", "P1-1", "P1-2"]
    }
    assert [c["opt_fields"] for c in fake.calls("/tasks")] == [TASK_FIELDS, TASK_FIELDS]
    assert third.cursor["scopes"]["P1"]["runs"] == 0


# -- errors -----------------------------------------------------------------------------------


def test_expired_offset_restarts_the_listing_from_the_window() -> None:
    """A 400 about the pagination token restarts the scope's listing from page one."""
    fake = seeded(5)
    fake.expire_offsets = 1
    res = run(fake, config(page_size=2))
    assert res.error is None
    offsets = [c.get("offset") for c in fake.calls("/tasks")]
    assert offsets == [None, "o2", None, "o2", "o4"]
    assert len({t.key for t in res.items(ItemKind.TASK)}) == 5
    assert res.pages[-1].census["P1"][-5:] == [f"P1-{i}" for i in range(5)]


def test_expired_offset_restarts_are_bounded() -> None:
    """An offset refused again and again ends in CursorRejected after three restarts."""
    fake = seeded(5)
    fake.expire_offsets = 99
    res = run(fake, config(page_size=2))
    assert isinstance(res.error, CursorRejected)
    assert len([c for c in fake.calls("/tasks") if "offset" in c]) == 4


def test_other_bad_request_is_a_payload_error() -> None:
    """A 400 that is not about the offset (the example error body) is a PayloadError."""
    fake = seeded(1)
    fake.script = [
        FakeAsana.reply(412, load("get-events.412.json")),
        FakeAsana.reply(400, load("error-400.json")),
    ]
    res = run(fake, config())
    assert isinstance(res.error, PayloadError)
    assert "Missing input" in str(res.error)


def test_rate_limit_waits_at_least_retry_after() -> None:
    """A 429 with Retry-After is retried by Http after a recorded sleep >= Retry-After."""
    fake = seeded(1)
    fake.script = [FakeAsana.reply(429, load("error-400.json"), {"Retry-After": "7"})]
    res = run(fake, config())
    assert res.error is None
    assert res.sleeps
    assert res.sleeps[0] >= 7
    assert res.http.stats.retries == 1
    assert len(res.items(ItemKind.TASK)) == 1


def test_server_error_is_retried() -> None:
    """A 503 is retried and the run completes."""
    fake = seeded(1)
    fake.script = [FakeAsana.reply(503, load("error-400.json"))]
    res = run(fake, config())
    assert res.error is None
    assert len(res.sleeps) == 1
    assert len(res.items(ItemKind.TASK)) == 1


def test_unauthorized_raises_auth_error_and_yields_nothing() -> None:
    """A 401 fails the run with AuthError before any page (the cursor never advances)."""
    fake = seeded(1)
    fake.script = [FakeAsana.reply(401, load("error-400.json"))]
    res = run(fake, config(["P1", "P2"]))
    assert isinstance(res.error, AuthError)
    assert res.pages == []
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [403, 404])
def test_lost_project_is_reported_not_deleted(status: int) -> None:
    """A project answering 403/404 yields lost_scopes and the other scopes still sync."""
    fake = seeded(2, "P1")
    fake.tasks["P2"] = [make_task("P2-0", "P2")]
    fake.lost["P1"] = status
    res = run(fake, config(["P1", "P2"]))
    assert res.error is None
    assert [p.lost_scopes for p in res.pages if p.lost_scopes] == [["P1"]]
    assert all(not p.deleted and "P1" not in p.census for p in res.pages)
    assert [i.key for i in res.items(ItemKind.TASK)] == ["P2-0"]


def test_project_lost_during_the_task_poll() -> None:
    """A 404 on the tasks listing (after the events call) is a lost scope too."""
    fake = seeded(2)
    first = run(fake, config())
    fake.event("P1", "P1-0", "changed")

    def lose(request: httpx.Request) -> None:
        if request.url.path.endswith("/tasks"):
            fake.lost["P1"] = 404

    fake.on_request = lose
    res = run(fake, config(), first.cursor)
    assert res.error is None
    assert res.pages[-1].lost_scopes == ["P1"]
    assert res.cursor["scopes"]["P1"]["pending"] is not None  # polled again once visible


def test_authorization_header_is_bearer_token() -> None:
    """Requests carry `Authorization: Bearer <PAT>` from the configured secret."""
    fake = seeded(1)
    run(fake, config())
    assert {r.headers["authorization"] for r in fake.requests} == {"Bearer asana-pat-123"}


def test_section_events_refresh_or_delete_sections() -> None:
    """A deleted section is reported as `section:<gid>`; a renamed one is re-listed."""
    fake = seeded(1)
    first = run(fake, config())
    fake.sections["P1"][1]["name"] = "Doing now"
    fake.event("P1", "P1-s-Doing", "changed", rtype="section")
    fake.event("P1", "P1-s-Old", "deleted", rtype="section")
    second = run(fake, config(), first.cursor)
    assert [d for p in second.pages for d in p.deleted] == ["section:P1-s-Old"]
    assert "Doing now" in [s.title for s in second.items(ItemKind.SECTION)]
    assert second.cursor["scopes"]["P1"]["sections_due"] is False


def test_the_ignored_workspace_key_is_logged_at_sync() -> None:
    """`workspace` never did anything: a run says so (once, with the fix) and syncs as before."""
    cfg = AsanaConfig.of(config()).model_copy(update={"workspace": "12000"})
    with capture_logs() as logs:
        res = run(seeded(1), cfg)
    assert res.error is None
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
