"""The OKR tree files: parsing, periods and the messages a manager sees."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from okrsync.okrfile import OkrFileError, load_tree, period_dates
from tests.helpers import TREE, write


def test_loads_objectives_key_results_and_tactics(mapping_dir: Path) -> None:
    """A valid file yields the whole tree with periods resolved to dates."""
    write(mapping_dir / "okrs.toml", TREE)
    tree = load_tree([mapping_dir])
    assert set(tree.objectives) == {"grow"}
    assert tree.objectives["grow"].start == date(2026, 10, 1)
    assert tree.objectives["grow"].end == date(2026, 12, 31)
    assert tree.key_results["latency"].direction == "decrease"
    assert tree.key_results["conv"].direction == "increase"
    assert tree.tactics["checkout"].key_result == "conv"
    assert tree.tactics["checkout"].source.line == 23


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("2026-H2", date(2026, 7, 1), date(2026, 12, 31)),
        ("2028-02", date(2028, 2, 1), date(2028, 2, 29)),
        ("2027", date(2027, 1, 1), date(2027, 12, 31)),
    ],
)
def test_period_forms(text: str, start: date, end: date) -> None:
    """Quarters, halves, months and years resolve to inclusive date ranges."""
    assert period_dates(text) == (start, end)


def problems(mapping_dir: Path, text: str, name: str = "okrs.toml") -> list[str]:
    write(mapping_dir / name, text)
    with pytest.raises(OkrFileError) as info:
        load_tree([mapping_dir])
    return info.value.problems


def test_syntax_error_names_file_line_and_column(mapping_dir: Path) -> None:
    """Malformed TOML gives file:line:col and a hint."""
    (msg,) = problems(mapping_dir, '[[objective]]\nid = "a"\ntitle = "unclosed\n')
    assert msg.startswith(f"{mapping_dir / 'okrs.toml'}:3:")
    assert "TOML syntax error" in msg


def test_unknown_key_suggests_the_right_one(mapping_dir: Path) -> None:
    """A misspelt key names its line and the key it probably meant."""
    (msg,) = problems(mapping_dir, TREE.replace('unit = "%"', 'unti = "%"'))
    assert msg == (
        f"{mapping_dir / 'okrs.toml'}:11: unknown key 'unti' in [[key_result]]; "
        "did you mean 'unit'?"
    )


def test_duplicate_id_across_files_names_both_places(mapping_dir: Path) -> None:
    """The same id in two files is reported with both locations."""
    write(mapping_dir / "a.toml", TREE)
    (msg,) = problems(mapping_dir, TREE.split("[[key_result]]")[0], name="b.toml")
    assert "duplicate objective id 'grow'" in msg
    assert f"{mapping_dir / 'a.toml'}:1" in msg
    assert msg.startswith(str(mapping_dir / "b.toml"))


def test_key_result_pointing_at_missing_objective(mapping_dir: Path) -> None:
    """A dangling reference names the id and suggests a close one."""
    (msg,) = problems(
        mapping_dir,
        TREE.replace('objective = "grow"\ntitle = "Trial', 'objective = "grwo"\ntitle = "Trial'),
    )
    assert "key result 'conv' points at objective 'grwo', which does not exist" in msg
    assert "did you mean 'grow'?" in msg
    assert msg.startswith(f"{mapping_dir / 'okrs.toml'}:7:")


def test_non_numeric_target(mapping_dir: Path) -> None:
    """A quoted or textual target is refused with the line of the key."""
    (msg,) = problems(mapping_dir, TREE.replace("target = 12", 'target = "12%"'))
    assert msg == (
        f"{mapping_dir / 'okrs.toml'}:13: 'target' must be a number such as 12 or 0.5 "
        "(without quotes), got '12%'"
    )


def test_direction_contradicting_start_and_target(mapping_dir: Path) -> None:
    """direction = increase with a target below start says how to fix it."""
    (msg,) = problems(mapping_dir, TREE.replace('direction = "decrease"', 'direction = "increase"'))
    assert "direction is 'increase' but target 10 is below start 40" in msg


def test_bad_period_and_id(mapping_dir: Path) -> None:
    """Several problems are reported together, each with its own line."""
    msgs = problems(
        mapping_dir,
        TREE.replace('period = "2026-Q4"', 'period = "Q4"').replace(
            'id = "checkout"', 'id = "Checkout Revamp"'
        ),
    )
    assert len(msgs) == 2
    assert any(":5: period 'Q4' is not one of" in m for m in msgs)
    assert any("is not a slug" in m and ":24:" in m for m in msgs)


def test_parent_cycle(mapping_dir: Path) -> None:
    """Objectives that are their own ancestors are refused."""
    text = """
    [[objective]]
    id = "a"
    title = "A"
    period = "2026"
    parent = "b"

    [[objective]]
    id = "b"
    title = "B"
    period = "2026"
    parent = "a"
    """
    msgs = problems(mapping_dir, text)
    assert any("its own ancestor" in m for m in msgs)


def test_an_objective_owner_that_is_not_one_line_of_text_is_refused(mapping_dir: Path) -> None:
    """`owner = 5` on an objective is a problem at its file:line, as on a key result; it never
    reaches the store as a number."""
    text = TREE.replace('owner = "Dana"', "owner = 5", 1)
    assert text != TREE
    path = write(mapping_dir / "okrs.toml", text)
    line = path.read_text().splitlines().index("owner = 5") + 1
    with pytest.raises(OkrFileError) as info:
        load_tree([mapping_dir])
    (msg,) = info.value.problems
    assert msg.startswith(f"{path}:{line}: 'owner' must be one line of text")
