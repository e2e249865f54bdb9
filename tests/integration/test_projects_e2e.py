"""GitHub Projects end to end on the sandbox (issue 19): a rule on a board's iteration attaches
the board's items in the current iteration, and a status change on the board moves the
tactic's counts at the next run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from okrsync import signals
from okrsync.config import Settings, SignalsConfig
from okrsync.demo import (
    DEMO_HOOK_ENV,
    MAPPINGS,
    demo_github_keys,
    sandbox_connectors,
    sandbox_env,
)
from okrsync.mapping import Matcher
from okrsync.okrfile import load_tree
from okrsync.pipeline import MappingState, sync_and_recompute
from okrsync.sandbox import Sandbox
from okrsync.sandbox._projects import Iteration, current_iteration
from okrsync.service import NEW_DAY_JOB, Service
from okrsync.signal_types import ItemCounts
from okrsync.store import Store
from tests.helpers import write

BOARD = "project:acme/12"


def okr_tree(rules: str) -> str:
    """One objective of this year with one tactic, `board-sprint`, holding `rules`."""
    year = signals.today().year
    return f"""
[[objective]]
id = "ship"
title = "Ship the payments roadmap"
period = "{year}"

[[key_result]]
id = "nps"
objective = "ship"
title = "NPS"
start = 30
target = 40

[[tactic]]
id = "board-sprint"
key_result = "nps"
title = "The roadmap's current sprint"
{rules}"""


@contextmanager
def board_world(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rules: str
) -> Iterator[tuple[Sandbox, Settings, Store, MappingState]]:
    """The sandbox, a GitHub connector on its repositories and board acme/12, an empty
    store, and the mapping applied."""
    with Sandbox(seed=5, sizes={"jira": 1, "jira_dc": 1, "asana": 1, "github": 80}) as sb:
        for k, v in sandbox_env(sb).items():
            monkeypatch.setenv(k, v)
        # The board's Status feeds the status category through the connector's status_map.
        keys = {"scope": [*sb.scopes("github"), BOARD], "status_map": {"Done": "done"}}
        (github,) = [c for c in sandbox_connectors(sb, {"github": keys}) if c.name == "github"]
        settings = Settings(
            store={"url": f"sqlite:///{tmp_path / 'okrsync.db'}"}, connectors=[github]
        )
        tree = load_tree([write(tmp_path / "mappings" / "okrs.toml", okr_tree(rules))])
        state = MappingState(tree, Matcher.from_tree(tree), "", datetime.now(UTC))
        store = Store.open(settings.store_url())
        try:
            state.apply(store, settings, allow_empty=True)
            yield sb, settings, store, state
        finally:
            store.close()


def run(settings: Settings, store: Store, state: MappingState) -> None:
    done = asyncio.run(sync_and_recompute(settings, store, state))
    assert [r.status for r in done.results] == ["ok"], [r.error for r in done.results]


def counts(store: Store) -> ItemCounts:
    _, by_tactic, _ = store.signal_inputs(signals.today(), SignalsConfig(), ["board-sprint"])
    return by_tactic.get("board-sprint", ItemCounts())


def linked_keys(store: Store) -> set[str]:
    structure, _, _ = store.signal_inputs(signals.today(), SignalsConfig())
    found = store.tactic_items(structure, signals.today(), SignalsConfig(), ["board-sprint"])
    return {i.key for i in found["board-sprint"]}


def current_sprint(sb: Sandbox) -> Iteration:
    board = sb.world.projects.get(BOARD)
    sprint = current_iteration(board.field("Iteration"), signals.today())
    assert sprint is not None
    return sprint


def keys_in(sb: Sandbox, title: str) -> set[str]:
    """The keys of the board's items in iteration `title` (drafts as the connector keys them)."""
    truth = [t for t in sb.project_truth(BOARD) if not t["archived"]]
    return {t["key"] or f"{BOARD}#draft-{t['id']}" for t in truth
            if t["values"].get("Iteration") == title}  # fmt: skip


def test_iteration_rule_attaches_the_current_sprint_and_follows_the_board_status(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`container = <board title>` + `iteration = "@current"` attaches exactly the board's
    items in the sprint holding today (issues, PRs and drafts); moving one to Done on the
    board moves the tactic's counts at the next run."""
    rules = '[[tactic.rule]]\ncontainer = "Payments roadmap"\niteration = "@current"\n'
    with board_world(monkeypatch, tmp_path, rules) as (sb, settings, store, state):
        run(settings, store, state)
        sprint = current_sprint(sb).title
        truth = [t for t in sb.project_truth(BOARD) if not t["archived"]]
        in_sprint = [t for t in truth if t["values"].get("Iteration") == sprint]
        assert in_sprint, "the sandbox's board has items in the current sprint"
        expected = {t["key"] or f"{BOARD}#draft-{t['id']}" for t in in_sprint}
        assert linked_keys(store) == expected
        before = counts(store)
        assert before.total > 0

        moved = next(
            t for t in in_sprint if t["key"] and t["values"].get("Status") in ("Todo", None)
        )
        sb.project_set(BOARD, moved["id"], "Status", "Done")
        run(settings, store, state)
        after = counts(store)
        assert (after.total, after.done) == (before.total, before.done + 1)
        assert after.todo + after.in_progress == before.todo + before.in_progress - 1


def test_rule_on_a_board_field_attaches_the_right_items(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`custom = { Team = "Payments" }` on the board id attaches the board's items of that
    team, and only those."""
    rules = f'[[tactic.rule]]\ncontainer = "{BOARD}"\ncustom = {{ Team = "Payments" }}\n'
    with board_world(monkeypatch, tmp_path, rules) as (sb, settings, store, state):
        run(settings, store, state)
        truth = [t for t in sb.project_truth(BOARD) if not t["archived"]]
        team = {t["key"] or f"{BOARD}#draft-{t['id']}" for t in truth
                if t["values"].get("Team") == "Payments"}  # fmt: skip
        assert team
        assert linked_keys(store) == team


def test_a_new_day_moves_current_iteration_links_at_the_next_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Once the current sprint has ended, the next run (nothing changed on the board)
    re-derives the links: the tactic now holds the next sprint's items, and its counts
    (recomputed for every tactic) follow."""
    rules = '[[tactic.rule]]\ncontainer = "Payments roadmap"\niteration = "@current"\n'
    with board_world(monkeypatch, tmp_path, rules) as (sb, settings, store, state):
        run(settings, store, state)
        sprint = current_sprint(sb)
        assert linked_keys(store) == keys_in(sb, sprint.title)
        ended = sprint.start + timedelta(days=sprint.duration)
        monkeypatch.setattr(signals, "today", lambda: ended)
        following = current_sprint(sb)
        assert following.title != sprint.title
        run(settings, store, state)
        assert linked_keys(store) == keys_in(sb, following.title)
        assert state.today_matcher.today == ended
        newest = store.snapshot_history("board-sprint", limit=1)[-1]
        assert (newest.as_of, newest.values["items_total"]) == (ended, counts(store).total)
        assert newest.values["items_total"] > 0


def test_hooks_register_skips_project_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering a GitHub connector's hooks (as `okrsync hooks register` and the demo do)
    with a board in its scope makes one hook per repository and none for the board, which
    has no repository hooks (it was a 404 that failed the whole registration)."""
    from okrsync.cli_hooks import plans_for, register_plan

    with Sandbox(seed=5, sizes={"jira": 1, "jira_dc": 1, "asana": 1, "github": 10}) as sb:
        for k, v in {**sandbox_env(sb), "OKRSYNC_TEST_GH_HOOK": "a-webhook-secret"}.items():
            monkeypatch.setenv(k, v)
        keys = {
            "scope": [*sb.scopes("github"), BOARD],
            "webhook_secret_env": "OKRSYNC_TEST_GH_HOOK",
        }
        (github,) = [c for c in sandbox_connectors(sb, {"github": keys}) if c.name == "github"]
        settings = Settings(store={"url": "sqlite:///:memory:"}, connectors=[github])
        (plan,) = plans_for(settings, "github", "http://127.0.0.1:9")
        targets = asyncio.run(register_plan(plan))
        assert sorted(t.where for t in targets) == sorted(sb.scopes("github"))
        subs = sb.hooks.subscriptions("github")
        assert sorted(s.scope or "" for s in subs) == sorted(sb.scopes("github"))


def test_the_demo_maps_a_tactic_by_the_boards_current_iteration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The example mappings' `payments-sprint` tactic, synced with the demo's github connector
    (board in scope), holds exactly the board's items in the current sprint."""
    with Sandbox(seed=7, sizes={"jira": 1, "jira_dc": 1, "asana": 1, "github": 80}) as sb:
        for k, v in {**sandbox_env(sb), DEMO_HOOK_ENV: "a-webhook-secret"}.items():
            monkeypatch.setenv(k, v)
        settings = Settings(
            store={"url": f"sqlite:///{tmp_path / 'okrsync.db'}"},
            mappings={"paths": [str(MAPPINGS)]},
            connectors=sandbox_connectors(sb, {"github": demo_github_keys(sb)}),
        )
        state = MappingState.load(settings)
        store = Store.open(settings.store_url())
        try:
            state.apply(store, settings)
            done = asyncio.run(sync_and_recompute(settings, store, state, "github"))
            assert [r.status for r in done.results] == ["ok"]
            structure, _, _ = store.signal_inputs(signals.today(), SignalsConfig())
            found = store.tactic_items(structure, signals.today(), SignalsConfig())
            got = {i.key for i in found["payments-sprint"]}
            assert got == keys_in(sb, current_sprint(sb).title)
            assert got
        finally:
            store.close()


async def day_jobs(service: Service) -> tuple[list[str], datetime | None]:
    """The daemon's jobs after planning and a config reload, and the new-day job's next fire."""
    service.scheduler = AsyncIOScheduler(timezone=UTC)
    service.scheduler.start(paused=True)
    service.schedule(service.enabled())
    service.plan_new_day()
    service._adopt(service.settings)  # a config reload prunes jobs here
    jobs = [j.id for j in service.scheduler.get_jobs()]
    job = service.scheduler.get_job(NEW_DAY_JOB)
    fire = job.trigger.get_next_fire_time(None, datetime.now(UTC)) if job else None
    service.scheduler.shutdown(wait=False)
    return jobs, fire


def test_the_daemon_rederives_links_daily_even_without_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The daemon plans a job at 00:00:05 UTC every day that a config reload keeps; run on a
    new day, it re-derives the date-relative links and recomputes the signals, no sync run
    needed."""
    rules = '[[tactic.rule]]\ncontainer = "Payments roadmap"\niteration = "@current"\n'
    with board_world(monkeypatch, tmp_path, rules) as (sb, settings, store, state):
        run(settings, store, state)
        service = Service(settings, store, state, None)
        try:
            jobs, fire = asyncio.run(day_jobs(service))
            assert NEW_DAY_JOB in jobs
            assert fire is not None
            assert (fire.hour, fire.minute, fire.second) == (0, 0, 5)
            sprint = current_sprint(sb)
            ended = sprint.start + timedelta(days=sprint.duration)
            monkeypatch.setattr(signals, "today", lambda: ended)
            runs = len(store.runs("github", limit=100))
            asyncio.run(service.day_job())
            assert linked_keys(store) == keys_in(sb, current_sprint(sb).title)
            assert store.snapshot_history("board-sprint", limit=1)[-1].as_of == ended
            assert len(store.runs("github", limit=100)) == runs  # no sync run was made
        finally:
            service.locks.close()
