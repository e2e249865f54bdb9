"""Properties of periods: a period contains every period whose dates lie within it.

The oracle is independent of okrsync's date arithmetic: a named period is the set of
(year, month) pairs it covers, and a span lies within a period when the months of its first
and last day are both covered (a named period's months are consecutive).
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from okrsync.okrfile import enclosing_periods, parse_period, period_dates
from okrsync.report import empty_period_note, within_period

YEARS = st.integers(1, 9999)
NEAR_YEARS = st.integers(2024, 2027)  # few years, so periods often nest


def months_of(name: str) -> set[tuple[int, int]]:
    """The (year, month) pairs a canonical period name covers, by counting, not by dates."""
    year, _, part = name.partition("-")
    y = int(year)
    if not part:
        months = range(1, 13)
    elif part[0] in "QH":
        size = 3 if part[0] == "Q" else 6
        months = range(size * (int(part[1]) - 1) + 1, size * int(part[1]) + 1)
    else:
        months = range(int(part), int(part) + 1)
    return {(y, m) for m in months}


@st.composite
def period_names(draw: st.DrawFn, years: st.SearchStrategy[int] = NEAR_YEARS) -> str:
    """A canonical period name: a year, half, quarter or month."""
    y = draw(years)
    kind = draw(st.sampled_from(["year", "half", "quarter", "month"]))
    if kind == "year":
        return f"{y:04d}"
    if kind == "half":
        return f"{y:04d}-H{draw(st.integers(1, 2))}"
    if kind == "quarter":
        return f"{y:04d}-Q{draw(st.integers(1, 4))}"
    return f"{y:04d}-{draw(st.integers(1, 12)):02d}"


@st.composite
def spellings(draw: st.DrawFn, name: str) -> str:
    """The same period as a manager might write it: either case (spaces around are refused
    in mapping files, and stripped only from a command line's `--period`)."""
    return name.lower() if draw(st.booleans()) else name


@st.composite
def spans(draw: st.DrawFn) -> tuple[date, date]:
    """An objective's explicit first and last day: a day to a year and a half."""
    first = draw(st.dates(date(2024, 1, 1), date(2027, 12, 31)))
    return first, first + timedelta(days=draw(st.integers(0, 500)))


SPANS = spans()


def names_of_year(y: int) -> list[str]:
    """Every named period of a year: the year, 2 halves, 4 quarters, 12 months."""
    return [
        f"{y:04d}",
        *(f"{y:04d}-H{h}" for h in (1, 2)),
        *(f"{y:04d}-Q{q}" for q in range(1, 5)),
        *(f"{y:04d}-{m:02d}" for m in range(1, 13)),
    ]


def within(span: tuple[date, date], name: str) -> bool:
    covered = months_of(name)
    return all((d.year, d.month) in covered for d in span)


@given(name=period_names(YEARS))
def test_named_period_dates_are_its_first_and_last_day(name: str) -> None:
    """A period starts on the 1st of its first month and ends on its last month's last day."""
    months = sorted(months_of(name))
    (y0, m0), (y1, m1) = months[0], months[-1]
    assert period_dates(name) == (date(y0, m0, 1), date(y1, m1, calendar.monthrange(y1, m1)[1]))


@given(data=st.data(), name=period_names(YEARS))
def test_any_spelling_names_the_same_period(data: st.DataObject, name: str) -> None:
    """Case never changes a period; its canonical name is a fixed point."""
    typed = data.draw(spellings(name))
    assert parse_period(typed) == parse_period(name)
    assert parse_period(typed)[0] == name


@given(outer=period_names(), inner=period_names())
def test_a_period_contains_exactly_the_periods_within_its_dates(outer: str, inner: str) -> None:
    """An objective of period Q is selected by `--period P` iff Q's months all lie in P."""
    picked = within_period({"o": period_dates(inner)}, outer)
    assert (picked == {"o"}) == (months_of(inner) <= months_of(outer))


@given(data=st.data(), outer=period_names(), span=SPANS)
def test_a_dated_objective_is_selected_iff_its_days_lie_within(
    data: st.DataObject, outer: str, span: tuple[date, date]
) -> None:
    """Explicit start/end dates are selected by the same rule, in any spelling of P."""
    typed = data.draw(spellings(outer))
    assert (within_period({"o": span}, typed) == {"o"}) == within(span, outer)


@given(data=st.data(), outer=period_names(), objectives=st.lists(SPANS, max_size=8))
def test_a_larger_period_never_selects_less(
    data: st.DataObject, outer: str, objectives: list[tuple[date, date]]
) -> None:
    """If P lies within P', every objective `--period P` selects, `--period P'` selects too."""
    inside = [n for n in names_of_year(int(outer[:4])) if months_of(n) <= months_of(outer)]
    inner = data.draw(st.sampled_from(inside))
    ids = {str(i): s for i, s in enumerate(objectives)}
    assert within_period(ids, inner) <= within_period(ids, outer)


@given(span=SPANS)
def test_enclosing_periods_are_exactly_those_holding_the_span(span: tuple[date, date]) -> None:
    """The suggested names around a span hold it, and no named period holding it is missed."""
    names = [n for y in {span[0].year, span[1].year} for n in names_of_year(y)]
    assert set(enclosing_periods(*span)) == {n for n in names if within(span, n)}
    sizes = [len(months_of(n)) for n in enclosing_periods(*span)]
    assert sizes == sorted(sizes)


@given(period=period_names(), objectives=st.lists(SPANS, min_size=1, max_size=8))
def test_every_suggested_period_holds_an_objective(
    period: str, objectives: list[tuple[date, date]]
) -> None:
    """The note for an empty period suggests only periods that `--period` would fill."""
    note = empty_period_note(objectives, period)
    ids = {str(i): s for i, s in enumerate(objectives)}
    if within_period(ids, period):
        assert note is None
        return
    assert note is not None
    _, _, listed = note.partition("periods with objectives: ")
    for name in filter(None, listed.split(", ")):
        assert within_period(ids, name), name
