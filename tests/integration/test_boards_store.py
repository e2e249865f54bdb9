"""Boards and iterations in the store (issue 19): committed, read back for matching, remapped,
re-derived when the day changes, and kept by the upgrade from revision 0007."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rich.console import Console

from okrsync.cli_items import items_table
from okrsync.mapping import Link, Matcher
from okrsync.models import ItemKind, Page, StatusCategory, StoredItem, WorkItem
from okrsync.okrfile import load_tree
from okrsync.pipeline import MappingState, remap
from okrsync.report import _board_fields
from okrsync.store import LinkRow, ListedItem, Relinked, Store
from okrsync.store.migrate import current_revision, head_revision, upgrade
from okrsync.store.tables import ITEM_LINK, WORK_ITEM
from okrsync.textsafe import clean_item
from tests.helpers import TREE, write

T0 = datetime(2026, 12, 1, tzinfo=UTC)
BOARD = "project:acme/12"
S14 = (date(2026, 12, 7), date(2026, 12, 21))  # Sprint 14; the end is exclusive
RULES = f'[[tactic.rule]]\ncontainer = "{BOARD}"\niteration = "@current"\n'


def item(n: int, **kw: Any) -> WorkItem:
    """Issue acme/web#n on board project:acme/12 in Sprint 14."""
    base: dict[str, Any] = {
        "connector": "gh",
        "external_id": str(n),
        "key": f"acme/web#{n}",
        "kind": ItemKind.ISSUE,
        "title": f"Item {n}",
        "status": StatusCategory.TODO,
        "status_raw": "open",
        "created": T0,
        "updated": T0,
        "container": "acme/web",
        "boards": (BOARD,),
        "board_names": ("Payments roadmap",),
        "iteration": "Sprint 14",
        "iteration_start": S14[0],
        "iteration_end": S14[1],
        "custom": {"Status": "Todo"},
    }
    return WorkItem(**{**base, **kw})


def tree(tmp_path: Path, rules: str = RULES) -> Any:
    return load_tree([write(tmp_path / "mappings" / "okrs.toml", TREE + rules)])


def links(store: Store) -> list[tuple[str, str]]:
    q = sa.select(ITEM_LINK.c.external_id, ITEM_LINK.c.tactic_id)
    with store.engine.connect() as conn:
        return sorted((r[0], r[1]) for r in conn.execute(q))


def test_commit_reads_back_boards_and_iteration(store: Store) -> None:
    """Boards, their titles and the iteration (title and dates) are stored, read back for
    matching and whole, and replaced by a later update (an item taken off its board)."""
    store.commit_page("gh", Page([item(1), item(2, boards=(), board_names=(), iteration=None,
                                                    iteration_start=None, iteration_end=None)],
                                 {}))  # fmt: skip
    by_id = {i.external_id: i for i in store.stored_items()}
    one = by_id["1"]
    assert (one.boards, one.board_names) == ((BOARD,), ("Payments roadmap",))
    assert (one.iteration, one.iteration_start, one.iteration_end) == ("Sprint 14", *S14)
    assert (by_id["2"].boards, by_id["2"].iteration, by_id["2"].iteration_end) == ((), None, None)
    (row,) = [r for r in store.items("gh") if r.external_id == "1"]
    assert (row.boards, row.iteration_start) == ([BOARD], S14[0])
    later = item(1, updated=T0 + timedelta(hours=1), boards=(), board_names=(),
                 iteration="Sprint 15", iteration_start=S14[1],
                 iteration_end=S14[1] + timedelta(days=14))  # fmt: skip
    store.commit_page("gh", Page([later], {}))
    moved = next(i for i in store.stored_items() if i.external_id == "1")
    assert (moved.boards, moved.iteration, moved.iteration_start) == ((), "Sprint 15", S14[1])


def test_an_item_taken_off_its_board_is_rewritten_though_its_updated_did_not_move(
    store: Store,
) -> None:
    """Leaving a board does not move the issue's own `updated`: the commit still sees a change
    (the boards differ) and stores it, instead of counting the item unchanged."""
    store.commit_page("gh", Page([item(1)], {}))
    off = item(1, boards=(), board_names=())  # same updated, key, container, title
    (result,) = store.commit_pages("gh", [Page([off], {})])
    assert result.unchanged == 0
    assert next(i for i in store.stored_items() if i.external_id == "1").boards == ()
    (again,) = store.commit_pages("gh", [Page([off], {})])
    assert again.unchanged == 1


def test_remap_links_by_board_and_current_iteration(store: Store, tmp_path: Path) -> None:
    """Remapping stored items with a board + @current rule links the items on the board in
    the iteration running that day, and unlinks them once it has ended."""
    store.apply_okr_tree(tree(tmp_path))
    off_board = item(3, boards=(), board_names=())
    store.commit_page("gh", Page([item(1), item(2, iteration_start=None), off_board], {}))
    rules = Matcher.from_tree(tree(tmp_path), today=S14[0]).rules
    report = remap(store, Matcher(rules, S14[0] + timedelta(days=2)))
    assert (report.added, links(store)) == (1, [("1", "checkout")])
    report = remap(store, Matcher(rules, S14[1]))
    assert (report.removed, links(store)) == (1, [])


def test_new_day_rederives_date_relative_links_once(store: Store, tmp_path: Path) -> None:
    """A mapping with a date-relative rule re-derives every link once per new day, whoever
    asks first, and the page linker then links as of that day; same day: nothing to do."""
    okrs = tree(tmp_path)
    store.apply_okr_tree(okrs)
    state = MappingState(okrs, Matcher.from_tree(okrs, today=S14[1] - timedelta(days=1)), "", T0)
    store.commit_pages("gh", [Page([item(1)], {})], state.linker(store)([item(1)]))
    assert links(store) == [("1", "checkout")]
    assert state.new_day(store, S14[1] - timedelta(days=1)) is None
    report = state.new_day(store, S14[1])
    assert report is not None
    assert (report.removed, links(store)) == (1, [])
    assert state.new_day(store, S14[1]) is None
    assert state.today_matcher.today == S14[1]
    assert state.linker(store)([item(1)]) == {"1": []}


def test_new_day_links_pages_as_of_the_new_day_while_it_remaps(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page another connector links while the new day's remap runs gets the new day's
    links: committed after the remap, yesterday's would stay until the item changed."""
    okrs = tree(tmp_path)
    store.apply_okr_tree(okrs)
    state = MappingState(okrs, Matcher.from_tree(okrs, today=S14[1] - timedelta(days=1)), "", T0)
    during: list[Mapping[str, Sequence[Link]]] = []
    relink = store.relink

    def linking_meanwhile(wanted_of: Callable[[list[StoredItem]], set[LinkRow]]) -> Relinked:
        during.append(state.linker(store)([item(1)]))
        return relink(wanted_of)

    monkeypatch.setattr(store, "relink", linking_meanwhile)
    assert state.new_day(store, S14[1]) is not None
    assert during == [{"1": []}]  # Sprint 14 ended: no longer @current


def test_new_day_whose_remap_fails_is_retried(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remap that fails leaves the previous day's matcher in place (the stored links are
    still that day's), so the next caller re-derives them."""
    okrs = tree(tmp_path)
    store.apply_okr_tree(okrs)
    state = MappingState(okrs, Matcher.from_tree(okrs, today=S14[1] - timedelta(days=1)), "", T0)
    store.commit_pages("gh", [Page([item(1)], {})], state.linker(store)([item(1)]))
    relink = store.relink

    def failing(wanted_of: Callable[[list[StoredItem]], set[LinkRow]]) -> Relinked:
        raise sa.exc.OperationalError("relink", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "relink", failing)
    with pytest.raises(sa.exc.OperationalError):
        state.new_day(store, S14[1])
    assert state.today_matcher.today == S14[1] - timedelta(days=1)
    monkeypatch.setattr(store, "relink", relink)
    report = state.new_day(store, S14[1])
    assert report is not None
    assert (report.removed, links(store)) == (1, [])


def test_new_day_costs_nothing_without_date_relative_rules(store: Store, tmp_path: Path) -> None:
    """A mapping whose rules name no iteration keyword never re-derives on a new day."""
    okrs = tree(tmp_path, '[[tactic.rule]]\niteration = "Sprint 14"\n')
    store.apply_okr_tree(okrs)
    state = MappingState(okrs, Matcher.from_tree(okrs, today=S14[0]), "", T0)
    assert state.new_day(store, S14[1] + timedelta(days=100)) is None


# work_item as revision 0007 had it (before the board columns).
NEW_COLUMNS = ("boards", "board_names", "iteration", "iteration_start", "iteration_end")
OLD_COLUMNS = [c.name for c in WORK_ITEM.columns if c.name not in NEW_COLUMNS]


def test_upgrade_from_0007_keeps_items_and_adds_empty_boards(
    store_url: str, tmp_path: Path
) -> None:
    """An item stored under 0007 survives the upgrade to 0008 on no board and in no
    iteration; it can then be committed with its board and read back."""
    store = Store.open(store_url, upgrade=False)
    try:
        upgrade(store.engine, "0007")
        old = sa.table("work_item", *(sa.column(c, WORK_ITEM.c[c].type) for c in OLD_COLUMNS))
        values = {k: v for k, v in _row(item(1)).items() if k in OLD_COLUMNS}
        with store.tx() as conn:
            conn.execute(sa.insert(old), [values])
        store.upgrade()
        assert current_revision(store.engine) == head_revision()  # 0008 and any later
        (kept,) = store.stored_items()
        assert (kept.key, kept.boards, kept.board_names, kept.iteration) == (
            "acme/web#1", (), (), None)  # fmt: skip
        store.commit_page("gh", Page([item(1, updated=T0 + timedelta(hours=1))], {}))
        (again,) = store.stored_items()
        assert (again.boards, again.iteration_end) == ((BOARD,), S14[1])
    finally:
        store.close()


def _row(it: WorkItem) -> dict[str, Any]:
    """A work_item row of `it`, as the store writes it."""
    row = {f.name: getattr(it, f.name) for f in dataclasses.fields(it)}
    row.update(kind=str(it.kind), status=str(it.status), labels=[], previous_keys=[],
               first_seen=T0, last_seen=T0, status_basis=None, status_names=[],
               assignee_ids=[], deleted_at=None, lost_at=None)  # fmt: skip
    return row


def test_board_titles_and_iteration_are_cleaned_before_the_store(store: Store) -> None:
    """A board title or iteration title carrying terminal escapes or control characters is
    stored printable, as every other tracker text is (`textsafe.clean_item`)."""
    hostile = item(1, board_names=("Road\x1b[31mmap\x07",), iteration="Sprint\x1b]0;x\x07 14")
    clean = clean_item(hostile)
    store.commit_page("gh", Page([clean], {}))
    (stored,) = store.stored_items()
    assert stored.board_names[0].isprintable()
    assert "Road" in stored.board_names[0]
    assert stored.iteration is not None
    assert stored.iteration.isprintable()
    assert "\x1b" not in stored.iteration
    assert clean_item(item(2)) == item(2)  # clean text is left as it is


def listed(**kw: Any) -> ListedItem:
    base: dict[str, Any] = {
        "tactic_id": "checkout", "rule_id": "checkout#1", "connector": "gh",
        "key": "acme/web#1", "title": "Item 1", "status": "todo", "assignee": None,
        "created": T0, "updated": T0, "due": None, "completed_at": None, "url": None,
    }  # fmt: skip
    return ListedItem(**{**base, **kw})


def shown(found: list[ListedItem]) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(items_table(console, found, with_rule=False))
    return console.export_text()


def test_items_table_and_export_show_the_board_and_iteration_when_set() -> None:
    """`okrsync items` adds a board column (board titles · iteration) only when a listed item
    is on a board; the export adds boards and iteration to such items only."""
    on_board = listed(boards=[BOARD], board_names=["Payments roadmap"], iteration="Sprint 14")
    table = shown([on_board, listed(key="acme/web#2")])
    assert "board" in table.splitlines()[1]
    assert "Payments roadmap · Sprint 14" in table
    assert "board" not in shown([listed()])
    assert on_board.as_json()["boards"] == [BOARD]
    assert _board_fields(on_board) == {"boards": ["Payments roadmap"], "iteration": "Sprint 14"}
    assert _board_fields(listed()) == {}
