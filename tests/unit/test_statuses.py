"""Status vocabularies (okrsync/statuses.py): the rules, the connectors' names, `status_map`
from the config, and `remap` re-applying a changed map to stored items."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from okrsync_connectors.asana.normalise import Normaliser as AsanaNormaliser
from okrsync_connectors.jira.normalise import Normaliser as JiraNormaliser

from okrsync.config import Settings, load_settings
from okrsync.connector import status_names
from okrsync.errors import ConfigError
from okrsync.models import ItemKind, Page, StatusCategory, WorkItem
from okrsync.pipeline import restatus
from okrsync.statuses import StatusNames, categorise
from okrsync.store import Store
from tests.unit.test_asana import make_task
from tests.unit.test_jira import recorded_issue

TODO, DOING, DONE, DROPPED = (
    StatusCategory.TODO,
    StatusCategory.IN_PROGRESS,
    StatusCategory.DONE,
    StatusCategory.DROPPED,
)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


# -- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("basis", "named", "want"),
    [
        (TODO, None, TODO),
        (TODO, DOING, DOING),
        (TODO, DONE, DONE),
        (DOING, TODO, TODO),
        (DONE, DOING, DONE),  # the tracker closed it: a name cannot reopen it
        (DROPPED, DONE, DROPPED),
        (DONE, DROPPED, DROPPED),  # a dropped name wins over everything
    ],
)
def test_categorise_order(
    basis: StatusCategory, named: StatusCategory | None, want: StatusCategory
) -> None:
    """Dropped by name wins; then a closed basis; then the names; then the basis."""
    assert categorise(basis, named) == want


def test_status_map_wins_over_dropped_statuses_and_the_vocabulary() -> None:
    """Names compare loosely; status_map beats dropped_statuses beats the vocabulary; of several
    mapped names the strongest counts."""
    names = StatusNames.build(
        {"review": DOING, "icebox": TODO},
        ["Icebox", "Won\u2019t Do"],
        {"  REVIEW ": TODO, "Shipped": DONE},
    )
    assert names.of(["review"]) == TODO
    assert names.of(["ICEBOX"]) == DROPPED
    assert names.of(["won't do"]) == DROPPED
    assert names.of(["Shipped", "review"]) == DONE
    assert names.of(["unknown", None, ""]) is None


# -- the connectors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "want"),
    [
        ("Review", DOING),
        ("Code Review", DOING),
        ("QA", DOING),
        ("Testing", DOING),
        ("In Test", DOING),
        ("Blocked", DOING),
        ("Doing", DOING),
        ("Backlog", TODO),
        ("Cancelled", DROPPED),
    ],
)
def test_asana_sections_teams_commonly_use(section: str, want: StatusCategory) -> None:
    """An open task in a Review, QA, Testing or Blocked section is in progress by default
    (before: only In Progress, Doing and In Review were)."""
    item = AsanaNormaliser.build("a", ["Cancelled"], None).task(
        make_task("1", section=section), "P1"
    )
    assert item.status == want
    assert (item.status_basis, item.status_names) == (TODO, (section,))


def test_asana_status_map_and_completed_tasks() -> None:
    """status_map maps a section (even to dropped); a completed task is done whatever its
    section says, unless the section means dropped."""
    norm = AsanaNormaliser.build("a", [], None, {"Icebox": DROPPED, "Ready": DOING})
    assert norm.task(make_task("1", section="ready"), "P1").status == DOING
    assert norm.task(make_task("2", section="Icebox"), "P1").status == DROPPED
    assert norm.task(make_task("3", section="Review", completed=True), "P1").status == DONE
    iced = norm.task(make_task("4", section="Icebox", completed=True), "P1")
    assert iced.status == DROPPED
    assert iced.completed_at is not None  # dropped work keeps its close date


def jira_issue(status: str, category: str, resolution: str | None = None) -> dict[str, Any]:
    issue = copy.deepcopy(recorded_issue())
    fields = issue["fields"]
    fields["status"] = {"name": status, "statusCategory": {"key": category}}
    fields["resolution"] = {"name": resolution} if resolution else None
    fields["resolutiondate"] = "2026-10-20T10:00:00.000+0000" if resolution else None
    return issue


def test_jira_status_map_refines_the_status_category() -> None:
    """A Jira status in the To Do category that the map calls in progress is in progress; the
    category decides otherwise."""
    norm = JiraNormaliser.build("j", "https://x.atlassian.net", [], status_map={"Blocked": DOING})
    assert norm.item(jira_issue("Blocked", "new")).status == DOING
    assert norm.item(jira_issue("Selected", "new")).status == TODO
    assert norm.item(jira_issue("Doing", "indeterminate")).status == DOING


def test_jira_dropped_work_keeps_its_resolution_date() -> None:
    """An issue resolved as Won't Do is dropped and keeps its resolution date, so the history
    rule can leave it out of later periods (before: completed_at was null)."""
    norm = JiraNormaliser.build("j", "https://x.atlassian.net", ["Won't Do"])
    item = norm.item(jira_issue("Closed", "done", "Won't Do"))
    assert item.status == DROPPED
    assert item.completed_at == datetime(2026, 10, 20, 10, 0, tzinfo=UTC)


# -- config and remap -----------------------------------------------------------------------


def asana_section(**extra: Any) -> dict[str, Any]:
    return {
        "name": "asana",
        "type": "asana",
        "base_url": "https://app.asana.com/api/1.0",
        "scope": ["1200000000000001"],
        "token_env": "ASANA_TOKEN",
        **extra,
    }


CONFIG = """[[connectors]]
name = "asana"
type = "asana"
base_url = "https://app.asana.com/api/1.0"
scope = ["1200000000000001"]
token_env = "ASANA_TOKEN"
status_map = {map}
"""


@pytest.mark.parametrize(
    ("table", "says"),
    [
        (
            '{ "QA" = "in-progress" }',
            "the category must be one of todo, in_progress, done, dropped",
        ),
        ('{ "QA" = "todo", "qa" = "done" }', "are the same name"),
        ('{ " " = "todo" }', "has an empty name"),
        ('"QA"', "must be a table of name = category"),
    ],
)
def test_a_bad_status_map_is_refused_at_its_line(tmp_path: Path, table: str, says: str) -> None:
    """A wrong category, one name spelled twice, an empty name or a non-table is refused with
    the file, the line and what to write."""
    path = tmp_path / "okrsync.toml"
    path.write_text(CONFIG.replace("{map}", table), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert f"{path}:7" in str(exc.value)
    assert says in str(exc.value)


def stored_task(gid: str, section: str, basis: StatusCategory, status: StatusCategory) -> WorkItem:
    return WorkItem(
        connector="asana",
        external_id=gid,
        key=gid,
        kind=ItemKind.TASK,
        title=f"Task {gid}",
        status=status,
        status_raw=f"open / {section}",
        created=T0,
        updated=T0,
        container="1200000000000001",
        section=section,
        status_basis=basis,
        status_names=(section,),
    )


def test_remap_reapplies_a_changed_status_map_to_stored_items(tmp_path: Path) -> None:
    """After status_map changes, restatus (run by `okrsync remap` and every mapping apply)
    moves stored items to their new category without a pull; items without a basis keep
    theirs."""
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        items = [
            stored_task("1", "Ready for QA", TODO, TODO),
            stored_task("2", "Icebox", TODO, TODO),
            stored_task("3", "Review", DONE, DONE),
            stored_task("4", "Review", TODO, DOING),
        ]
        legacy = stored_task("5", "Icebox", TODO, TODO)
        legacy.status_basis, legacy.status_names = None, ()
        store.commit_page("asana", Page([*items, legacy], {}))
        cfg = asana_section(status_map={"Ready for QA": "in_progress", "Icebox": "dropped"})
        settings = Settings(connectors=[cfg])
        assert status_names(settings.connectors[0]).of(["review"]) == DOING
        assert restatus(store, settings) == {"asana": 2}
        got = {i.external_id: i.status for i in store.items("asana")}
        assert got == {
            "1": "in_progress",
            "2": "dropped",
            "3": "done",
            "4": "in_progress",
            "5": "todo",
        }
        assert restatus(store, settings) == {"asana": 0}
    finally:
        store.close()
