"""Periods: names in either case, `--period` containment, the note for an empty period, and
where the report's footer sends readers for the definitions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import pytest

from okrsync.errors import ConfigError
from okrsync.okrfile import OkrFileError, enclosing_periods, load_tree, parse_period, period_dates
from okrsync.render import SIGNALS_DOC, report_footer, signals_doc
from okrsync.report import empty_period_note, select_objectives
from okrsync.signal_types import ObjectiveInfo, Structure
from okrsync.signals import SignalSet
from tests.helpers import TREE, write

REPO = Path(__file__).resolve().parents[2]
OBJECTIVES: dict[str, str | tuple[date, date]] = {  # id → period name, or (start, end)
    "y26": "2026",
    "h1": "2026-H1",
    "h2": "2026-H2",
    "q3": "2026-Q3",
    "q4": "2026-Q4",
    "nov": "2026-11",
    "dated": (date(2026, 10, 15), date(2026, 11, 30)),
    "straddle": (date(2026, 6, 1), date(2026, 8, 31)),
    "q4-25": "2025-Q4",
    "jan27": "2027-01",
}


def signal_set(
    objectives: Mapping[str, str | tuple[date, date]], parents: Mapping[str, str] | None = None
) -> SignalSet:
    """A signal set whose tree holds only these objectives (selection reads nothing else)."""
    infos: dict[str, ObjectiveInfo] = {}
    for oid, spec in objectives.items():
        name, (start, end) = (spec, period_dates(spec)) if isinstance(spec, str) else (None, spec)
        parent = (parents or {}).get(oid)
        infos[oid] = ObjectiveInfo(oid, oid, None, name, start, end, parent, 1.0)
    return SignalSet(date(2026, 11, 15), Structure(objectives=infos))


def selected(period: str) -> set[str]:
    return select_objectives(signal_set(OBJECTIVES), period, None)


@pytest.mark.parametrize(
    ("text", "name", "start", "end"),
    [
        ("2026-q4", "2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
        ("2026-h1", "2026-H1", date(2026, 1, 1), date(2026, 6, 30)),
        ("2026-Q2", "2026-Q2", date(2026, 4, 1), date(2026, 6, 30)),
        ("2024-02", "2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2026", "2026", date(2026, 1, 1), date(2026, 12, 31)),
    ],
)
def test_period_names_in_either_case(text: str, name: str, start: date, end: date) -> None:
    """Quarter and half letters in either case name the same period."""
    assert parse_period(text) == (name, start, end)
    assert period_dates(text) == (start, end)


@pytest.mark.parametrize(
    "text", [" 2026-Q4", "2026-Q4\n", "Q4", "2026-Q5", "2026-Q0", "2026-H3", "2026-13",
             "2026-00", "0000", "26-Q4", "2026-Q4x", "２０２６", "2026-11-01", ""],
)  # fmt: skip
def test_malformed_periods_are_refused_with_the_accepted_forms(text: str) -> None:
    """Anything but a year, half, quarter or month is a ValueError that shows the forms."""
    with pytest.raises(ValueError, match="is not one of 2026-Q4, 2026-H1, 2026-11 or 2026"):
        parse_period(text)


def test_the_last_representable_year_ends_in_range() -> None:
    """`9999` and `9999-Q4` end on 9999-12-31 instead of overflowing the date type."""
    assert period_dates("9999") == (date(9999, 1, 1), date(9999, 12, 31))
    assert period_dates("9999-Q4")[1] == date(9999, 12, 31)


def test_mapping_file_period_in_lower_case_loads_and_is_stored_canonical(
    mapping_dir: Path,
) -> None:
    """`period = "2026-q4"` in a mapping file is 2026-Q4 (stored and shown as `2026-Q4`)."""
    write(mapping_dir / "okrs.toml", TREE.replace('period = "2026-Q4"', 'period = "2026-q4"'))
    grow = load_tree([mapping_dir]).objectives["grow"]
    assert (grow.period, grow.start, grow.end) == ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))


def test_bad_period_in_mapping_file_keeps_file_and_line(mapping_dir: Path) -> None:
    """A quarter that does not exist is refused at the line of its `period` key."""
    write(mapping_dir / "okrs.toml", TREE.replace('period = "2026-Q4"', 'period = "2026-q5"'))
    with pytest.raises(OkrFileError) as exc:
        load_tree([mapping_dir])
    (msg,) = exc.value.problems
    assert re.search(r"okrs\.toml:5: period '2026-q5' is not one of", msg), msg


def test_a_year_holds_its_halves_quarters_months_and_dated_objectives() -> None:
    """`--period 2026` keeps every objective whose dates lie within 2026, and no other."""
    assert selected("2026") == {"y26", "h1", "h2", "q3", "q4", "nov", "dated", "straddle"}


def test_a_half_holds_its_quarters_and_months() -> None:
    """`--period 2026-H2` keeps H2, Q3, Q4, November and dates inside H2, not the year."""
    assert selected("2026-H2") == {"h2", "q3", "q4", "nov", "dated"}


def test_quarter_on_the_command_line_in_lower_case() -> None:
    """`--period 2026-q4` works and keeps the quarter's months and dates inside it."""
    assert selected("2026-q4") == {"q4", "nov", "dated"}
    assert selected("2026-11") == {"nov"}


def test_an_objective_straddling_the_period_edge_is_left_out() -> None:
    """June–August lies in 2026 but neither in H1 nor in H2 nor in Q3."""
    assert "straddle" not in selected("2026-H1") | selected("2026-H2") | selected("2026-Q3")


def test_period_and_objective_filters_combine() -> None:
    """`--period` and `--objective` intersect: a child outside the period is left out."""
    signals = signal_set({"root": "2026", "kid": "2026-Q4", "other": "2026-Q4"}, {"kid": "root"})
    assert select_objectives(signals, "2026-q4", "root") == {"kid"}
    assert select_objectives(signals, "2026-H1", "root") == set()


def test_malformed_command_line_period_is_a_config_error() -> None:
    """`--period Q9` is bad input (exit 2): the message names the option and the forms."""
    with pytest.raises(ConfigError, match=r"--period: period 'Q9' is not one of"):
        selected("Q9")


def test_empty_period_names_the_periods_that_hold_objectives() -> None:
    """A period holding no objective says so, with each objective's smallest period and year."""
    spans = [
        period_dates("2026-Q4"),
        period_dates("2026-h1"),
        (date(2026, 10, 15), date(2026, 11, 30)),
    ]
    note = empty_period_note(spans, "2027-q1")
    assert note == (
        "no objective lies within 2027-Q1 (2027-01-01 … 2027-03-31); "
        "periods with objectives: 2026, 2026-H1, 2026-Q4"
    )


def test_no_note_when_the_period_holds_an_objective() -> None:
    """The note is only for a period that holds nothing."""
    assert empty_period_note([period_dates("2026-Q4")], "2026") is None


def test_empty_store_and_objectives_across_years() -> None:
    """No objectives: sync first; only objectives spanning years: leave out --period."""
    assert empty_period_note([], "2026") == (
        "no objectives in the store; run `okrsync okrs sync` first"
    )
    note = empty_period_note([(date(2025, 11, 1), date(2026, 2, 28))], "2026")
    assert note is not None
    assert note.endswith("leave out --period")


def test_enclosing_periods_smallest_first() -> None:
    """The named periods around a span, month first, year last; none across a year's end."""
    assert enclosing_periods(date(2026, 11, 2), date(2026, 11, 20)) == [
        "2026-11", "2026-Q4", "2026-H2", "2026"
    ]  # fmt: skip
    assert enclosing_periods(date(2026, 6, 1), date(2026, 8, 31)) == ["2026"]
    assert enclosing_periods(date(2025, 12, 1), date(2026, 1, 31)) == []


def test_footer_points_at_the_signals_document_that_exists(tmp_path: Path) -> None:
    """The report's footer names docs/signals.md by a path that exists from where it runs."""
    assert (REPO / SIGNALS_DOC).is_file()
    assert signals_doc(REPO) == SIGNALS_DOC
    assert Path(signals_doc(tmp_path)) == REPO / SIGNALS_DOC
    assert SIGNALS_DOC in report_footer(REPO)


DOC_REF = re.compile(r'(docs/[\w.-]+\.md)\)?(?:, "([^"]+)")?')
DOC_SOURCES = (
    "README.md",
    "config.example.toml",
    "DEVELOPERS.md",
    "okrsync/schema/export.schema.json",
)


def test_every_reference_to_a_document_exists() -> None:
    """README, config comments, schema and code name only documents (and sections) that exist."""
    sources = [REPO / s for s in DOC_SOURCES] + sorted((REPO / "okrsync").rglob("*.py"))
    broken = [
        f"{source.relative_to(REPO)}: {ref.group(0)}"
        for source in sources
        for ref in DOC_REF.finditer(source.read_text(encoding="utf-8"))
        if _broken(ref)
    ]
    assert broken == []
    assert "docs/signals.md" in (REPO / "config.example.toml").read_text(encoding="utf-8")


def _broken(ref: re.Match[str]) -> bool:
    """A reference to a missing document, or to a section its document does not have."""
    doc = REPO / ref.group(1)
    if not doc.is_file():
        return True
    heading = re.compile(rf"^#+ {re.escape(ref.group(2) or '')}", re.MULTILINE)
    return not heading.search(doc.read_text(encoding="utf-8"))
