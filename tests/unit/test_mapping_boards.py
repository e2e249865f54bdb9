"""Mapping rules on GitHub Projects boards (issue 19): a board as a container, the board's
field values as custom fields, and `iteration` by title or by a keyword relative to the day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from okrsync.explain import describe
from okrsync.mapping import Matcher, Rule, check_rules, compile_rules, iteration_keywords
from okrsync.models import ItemKind, StatusCategory, StoredItem, WorkItem
from okrsync.okrfile import load_tree
from okrsync.preview import unknown_values
from tests.helpers import TREE, write

T0 = datetime(2026, 12, 1, tzinfo=UTC)
HIT = [("checkout", "checkout#1")]
BOARD = "project:acme/12"
# Sprint 14 is 2026-12-07 .. 2026-12-20 (the end is the day after the last: exclusive).
S14 = (date(2026, 12, 7), date(2026, 12, 21))
TWO_WEEKS = timedelta(days=14)


def item(key: str = "acme/web#1", **kw: Any) -> WorkItem:
    """A GitHub issue on board project:acme/12 ("Payments roadmap") in Sprint 14."""
    base: dict[str, Any] = {
        "connector": "gh",
        "external_id": key,
        "key": key,
        "kind": ItemKind.ISSUE,
        "title": "Fix checkout",
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
        "custom": {"Status": "In Progress", "Iteration": "Sprint 14", "Team": "Payments"},
    }
    return WorkItem(**{**base, **kw})


def load(tmp_path: Path, rules: str) -> list[Rule]:
    path = write(tmp_path / "okrs.toml", TREE + rules)
    return compile_rules(load_tree([path]).rules())


def links(tmp_path: Path, rules: str, it: WorkItem, today: date = S14[0]) -> list[Any]:
    return Matcher(load(tmp_path, rules), today).match(it)


def problems(tmp_path: Path, rules: str) -> list[str]:
    path = write(tmp_path / "okrs.toml", TREE + rules)
    return [p.replace(str(tmp_path), "DIR") for p in check_rules(load_tree([path]).rules())[1]]


RULE_LINE = TREE.strip().count("\n") + 2  # the first [[tactic.rule]] header


# -- boards as containers ---------------------------------------------------------------------


def test_container_matches_a_board_by_id_or_title(tmp_path: Path) -> None:
    """`container` matches a board the item is on, by its id or its title (any case)."""
    for value in (BOARD, "payments ROADMAP"):
        assert links(tmp_path, f'[[tactic.rule]]\ncontainer = "{value}"\n', item()) == HIT
    assert links(tmp_path, f'[[tactic.rule]]\ncontainer = "{BOARD}"\n', item(boards=())) == []
    other = item(boards=("project:acme/13",), board_names=("Infra",))
    assert links(tmp_path, f'[[tactic.rule]]\ncontainer = "{BOARD}"\n', other) == []


def test_container_still_matches_the_items_own_repository(tmp_path: Path) -> None:
    """An item on a board keeps matching its own container (`owner/repo`)."""
    assert links(tmp_path, '[[tactic.rule]]\ncontainer = "acme/web"\n', item()) == HIT


def test_board_container_in_the_index_second_level(tmp_path: Path) -> None:
    """A rule filed by `keys` then a board container matches only items on that board
    (the board is read through the second-level table)."""
    rules = f'[[tactic.rule]]\nkeys = ["acme/web#1", "acme/web#2"]\ncontainer = "{BOARD}"\n'
    assert links(tmp_path, rules, item()) == HIT
    assert links(tmp_path, rules, item("acme/web#2", boards=(), board_names=())) == []


# -- board fields as custom fields --------------------------------------------------------------


def test_custom_matches_board_fields(tmp_path: Path) -> None:
    """`custom` reads the board's field values (single select, iteration) like any custom
    field, ignoring the case of names and values."""
    rules = '[[tactic.rule]]\ncustom = { "status" = "in progress", "Iteration" = "Sprint 14" }\n'
    assert links(tmp_path, rules, item()) == HIT
    done = item(custom={"Status": "Done", "Iteration": "Sprint 14"})
    assert links(tmp_path, rules, done) == []


# -- iteration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "word"),
    [
        (S14[0] - TWO_WEEKS - timedelta(days=1), None),  # more than one length before
        (S14[0] - TWO_WEEKS, "@next"),  # the first day of the iteration before it
        (S14[0] - timedelta(days=1), "@next"),
        (S14[0], "@current"),  # start <= today
        (S14[1] - timedelta(days=1), "@current"),  # its last day
        (S14[1], "@previous"),  # the end is exclusive: the next iteration's first day
        (S14[1] + TWO_WEEKS - timedelta(days=1), "@previous"),
        (S14[1] + TWO_WEEKS, None),  # two iterations later
    ],
)
def test_iteration_keywords_on_fixed_dates(today: date, word: str | None) -> None:
    """@current holds from the start to the day before the end; @previous for one iteration
    length from the end; @next for one iteration length before the start."""
    assert iteration_keywords(*S14, today) == ((word,) if word else ())


def test_iteration_keywords_need_both_dates_in_order() -> None:
    """An iteration without dates, or with an end not after its start, has no keyword."""
    assert iteration_keywords(None, S14[1], S14[0]) == ()
    assert iteration_keywords(S14[0], None, S14[0]) == ()
    assert iteration_keywords(S14[1], S14[0], S14[0]) == ()


def test_iteration_rule_by_keyword_follows_the_day(tmp_path: Path) -> None:
    """`iteration = "@current"` attaches the item while its iteration runs, not after;
    `@previous` the day after it ended; a list means any of them."""
    current = '[[tactic.rule]]\niteration = "@current"\n'
    assert links(tmp_path, current, item(), S14[0] + timedelta(days=3)) == HIT
    assert links(tmp_path, current, item(), S14[1]) == []
    previous = '[[tactic.rule]]\niteration = "@previous"\n'
    assert links(tmp_path, previous, item(), S14[1]) == HIT
    either = '[[tactic.rule]]\niteration = ["@next", "@current"]\n'
    assert links(tmp_path, either, item(), S14[0] - timedelta(days=1)) == HIT
    assert links(tmp_path, either, item(), S14[0]) == HIT
    assert links(tmp_path, either, item(), S14[1]) == []


def test_iteration_rule_by_title_ignores_case(tmp_path: Path) -> None:
    """`iteration = "sprint 14"` matches the item's iteration title on any day."""
    rules = '[[tactic.rule]]\niteration = "SPRINT 14"\n'
    assert links(tmp_path, rules, item(), date(2030, 1, 1)) == HIT
    assert links(tmp_path, rules, item(iteration="Sprint 15")) == []


def test_iteration_with_a_board_container_and_an_exclude(tmp_path: Path) -> None:
    """A board container with the current iteration, minus the board's Done column."""
    rules = (
        f'[[tactic.rule]]\ncontainer = "{BOARD}"\niteration = "@current"\n'
        'exclude = { custom = { Status = "Done" } }\n'
    )
    assert links(tmp_path, rules, item()) == HIT
    assert links(tmp_path, rules, item(custom={"Status": "Done"})) == []
    assert links(tmp_path, rules, item(iteration_start=None, iteration_end=None)) == []
    assert links(tmp_path, rules, item(boards=())) == []


def test_matcher_on_another_day_and_dated(tmp_path: Path) -> None:
    """A matcher moved to another day matches as of that day; only rules naming a keyword
    make a matcher `dated`."""
    matcher = Matcher(load(tmp_path, '[[tactic.rule]]\niteration = "@current"\n'), S14[0])
    assert matcher.dated
    assert matcher.on(S14[0]) is matcher
    assert matcher.match(item()) == HIT
    assert matcher.on(S14[1]).match(item()) == []
    assert not Matcher(load(tmp_path, '[[tactic.rule]]\niteration = "Sprint 14"\n')).dated


def test_stored_items_match_like_work_items(tmp_path: Path) -> None:
    """A stored item (what remap reads) with the board fields matches as the work item."""
    it = item()
    stored = StoredItem(
        it.connector, it.external_id, it.key, str(it.kind), None, it.title, it.container,
        None, (), None, None, None, it.custom, (), boards=it.boards,
        board_names=it.board_names, iteration=it.iteration, iteration_start=it.iteration_start,
        iteration_end=it.iteration_end,
    )  # fmt: skip
    rules = '[[tactic.rule]]\ncontainer = "Payments roadmap"\niteration = "@current"\n'
    assert Matcher(load(tmp_path, rules), S14[0]).match(stored) == HIT


def test_explain_shows_the_iteration_condition(tmp_path: Path) -> None:
    """`explain` evaluates an iteration keyword on the matcher's day and shows the item's
    iteration and keyword as the evidence; it agrees with `match`."""
    matcher = Matcher(load(tmp_path, '[[tactic.rule]]\niteration = "@current"\n'), S14[1])
    (check,) = matcher.explain(item())
    assert not check.matches
    (cond,) = check.conditions
    assert describe(cond) == 'iteration = "@current": not met (item iteration Sprint 14, @previous)'
    (held,) = matcher.on(S14[0]).explain(item())[0].conditions
    assert describe(held) == 'iteration = "@current" (item iteration @current)'


# -- validation -----------------------------------------------------------------------------


def test_unknown_iteration_keyword_is_refused_with_file_line(tmp_path: Path) -> None:
    """A misspelt keyword names file:line and the keyword it probably meant."""
    (msg,) = problems(tmp_path, '[[tactic.rule]]\ncontainer = "A"\niteration = "@curent"\n')
    assert msg == (
        f"DIR/okrs.toml:{RULE_LINE + 2}: rule 'checkout#1' of tactic 'checkout': iteration "
        "'@curent' is not a keyword (did you mean '@current'?): use '@current', '@previous', "
        "'@next' or an iteration's title as the board shows it"
    )


def test_bad_iteration_values_are_refused_with_file_line(tmp_path: Path) -> None:
    """A number, or a bad keyword in a list, under `iteration` is refused at its line."""
    (num,) = problems(tmp_path, "[[tactic.rule]]\niteration = 14\n")
    assert num.startswith(f"DIR/okrs.toml:{RULE_LINE + 1}: ")
    assert "'iteration' must be a string or a list of strings in quotes, e.g. iteration = " in num
    (listed,) = problems(tmp_path, '[[tactic.rule]]\niteration = ["@current", "@someday"]\n')
    assert listed.startswith(f"DIR/okrs.toml:{RULE_LINE + 1}: ")
    assert "iteration '@someday' is not a keyword" in listed


def test_preview_does_not_flag_keywords_as_unknown_values(tmp_path: Path) -> None:
    """`mappings check` warns of an iteration title no item has, never of a keyword."""
    rules = load(tmp_path, '[[tactic.rule]]\niteration = ["@current", "Sprint 41"]\n')
    values = {"iteration": [("Sprint 14", 3, ())]}
    (warning,) = unknown_values(rules, values)
    assert "'iteration' value 'Sprint 41' is on no stored item" in warning
