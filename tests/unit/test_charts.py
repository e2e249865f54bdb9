"""The dashboard's server-side SVG charts: positions of points, lines and markers."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import date
from itertools import pairwise

import pytest

from okrsync.web import charts
from okrsync.web.charts import (
    BOTTOM,
    HEIGHT,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    Axis,
    KeyResultData,
    Marker,
    Series,
    TacticData,
    TimeChart,
)

NS = {"s": "http://www.w3.org/2000/svg"}
SVG = "{http://www.w3.org/2000/svg}"
Q4 = (date(2026, 10, 1), date(2026, 12, 31))


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output, parsed to check it


def group(root: ET.Element, cls: str) -> ET.Element:
    found = [g for g in root.iter(SVG + "g") if cls in g.get("class", "").split()]
    assert len(found) == 1, f"{cls}: {len(found)} groups"
    return found[0]


def dots(g: ET.Element) -> list[tuple[float, float, str, float]]:
    return [
        (float(c.attrib["cx"]), float(c.attrib["cy"]), c.attrib["data-date"],
         float(c.attrib["data-value"]))
        for c in g.iter(SVG + "circle")
    ]  # fmt: skip


def polyline(g: ET.Element) -> list[tuple[float, float]]:
    line = g.find("s:polyline", NS)
    assert line is not None
    return [(float(x), float(y)) for x, y in (p.split(",") for p in line.attrib["points"].split())]


def kr(**changes: object) -> KeyResultData:
    base: dict[str, object] = {
        "title": "Trial conversion",
        "start": Q4[0],
        "end": Q4[1],
        "start_value": 8.0,
        "target_value": 12.0,
        "checkins": ((date(2026, 10, 1), 8.0), (date(2026, 11, 15), 10.0)),
        "execution": ((date(2026, 10, 1), 0.0), (date(2026, 11, 15), 0.5)),
        "today": date(2026, 11, 15),
        "unit": "%",
    }
    return KeyResultData(**{**base, **changes})  # type: ignore[arg-type]


def test_time_chart_places_dots_by_date_and_value() -> None:
    """A point at the start date and low value sits at the plot's bottom-left corner, the
    midpoint date half-way across, the high value at the top."""
    chart = TimeChart(
        "t",
        date(2026, 1, 1),
        date(2026, 1, 11),
        Axis(0, 10),
        (Series("s", "s", ((date(2026, 1, 1), 0), (date(2026, 1, 6), 10))),),
    )
    got = dots(group(parse(charts.time_chart(chart)), "s"))
    assert got[0][:2] == (LEFT, HEIGHT - BOTTOM)
    assert got[1][:2] == (LEFT + (WIDTH - LEFT - RIGHT) / 2, TOP)
    assert [d[2] for d in got] == ["2026-01-01", "2026-01-06"]


def test_key_result_chart_draws_pace_from_start_to_target_over_the_period() -> None:
    """The expected-pace line runs from (period start, start value) to (period end, target)."""
    root = parse(charts.key_result_chart(kr()))
    (x0, y0), (x1, y1) = polyline(group(root, "pace"))
    assert (x0, x1) == (LEFT, WIDTH - RIGHT)
    assert y0 > y1  # the target (12) is above the start (8)
    checkins = dots(group(root, "checkins"))
    assert checkins[0][:2] == (x0, y0)  # the first reading equals the start value, at day 0


def test_key_result_chart_puts_checkins_on_the_value_scale_and_line_through_them() -> None:
    """Each check-in is a dot at its value; the line joins them in order; a reading half-way
    between start and target sits half-way between their heights."""
    root = parse(charts.key_result_chart(kr()))
    (_, y_start), (_, y_target) = polyline(group(root, "pace"))
    g = group(root, "checkins")
    got = dots(g)
    assert [d[3] for d in got] == [8.0, 10.0]
    assert got[1][1] == pytest.approx((y_start + y_target) / 2)
    assert polyline(g) == [(x, y) for x, y, _, _ in got]


def test_execution_completion_shares_the_outcome_scale() -> None:
    """Completion 0 is drawn at the start value's height and 0.5 at the half-way value's."""
    root = parse(charts.key_result_chart(kr()))
    checkins = dots(group(root, "checkins"))
    execution = dots(group(root, "execution"))
    assert execution[0][1] == pytest.approx(checkins[0][1])  # 0% ≡ 8
    assert execution[1][1] == pytest.approx(checkins[1][1])  # 50% ≡ 10


def test_execution_shares_the_scale_of_a_decreasing_key_result() -> None:
    """For a 'decrease' key result (40 → 10) completion 0 sits at the start value (top),
    0.5 at 25 and 1 at the target (bottom); the right axis reads 0% at the top."""
    down = kr(start_value=40.0, target_value=10.0, unit="min",
              checkins=((date(2026, 10, 1), 40.0), (date(2026, 11, 1), 25.0),
                        (date(2026, 11, 15), 10.0)),
              execution=((date(2026, 10, 1), 0.0), (date(2026, 11, 1), 0.5),
                         (date(2026, 11, 15), 1.0)))  # fmt: skip
    root = parse(charts.key_result_chart(down))
    values = [y for _, y, _, _ in dots(group(root, "checkins"))]
    done = [y for _, y, _, _ in dots(group(root, "execution"))]
    assert done == pytest.approx(values)
    right = {t.text: float(t.attrib["y"]) for t in root.iter(SVG + "text")
             if t.get("class") == "tick right"}  # fmt: skip
    assert right["0%"] < right["50%"] < right["100%"]  # 0% at the top, by the start value


def test_today_marker_at_todays_date_and_left_out_outside_the_range() -> None:
    """The today line is drawn at today's x; a today after the period draws none."""
    root = parse(charts.key_result_chart(kr()))
    line = group(root, "today").find("s:line", NS)
    assert line is not None
    days = (date(2026, 11, 15) - Q4[0]).days / (Q4[1] - Q4[0]).days
    assert float(line.attrib["x1"]) == pytest.approx(LEFT + days * (WIDTH - LEFT - RIGHT), abs=0.01)
    later = parse(charts.key_result_chart(kr(today=date(2027, 3, 1))))
    assert not [g for g in later.iter(SVG + "g") if "today" in g.get("class", "")]


def test_decreasing_key_result_draws_the_target_below_the_start() -> None:
    """For a 'decrease' key result (target below start) the pace line goes down."""
    root = parse(charts.key_result_chart(kr(start_value=500.0, target_value=300.0, checkins=())))
    (_, y0), (_, y1) = polyline(group(root, "pace"))
    assert y1 > y0


def test_a_baseline_before_the_period_widens_the_date_range() -> None:
    """A check-in dated before the period start is drawn, left of the pace line's start."""
    early = ((date(2026, 9, 1), 7.5), (date(2026, 11, 15), 10.0))
    root = parse(charts.key_result_chart(kr(checkins=early)))
    (x_first, _, _, _), _ = dots(group(root, "checkins"))
    (x_pace, _), _ = polyline(group(root, "pace"))
    assert x_first == LEFT
    assert x_pace > x_first


def test_text_is_escaped() -> None:
    """A title with markup stays text: the SVG parses and carries it verbatim."""
    svg = charts.key_result_chart(kr(title='<script>alert("x")</script> & co'))
    root = parse(svg)
    title = root.find("s:title", NS)
    assert title is not None
    assert title.text == '<script>alert("x")</script> & co'
    assert "<script>" not in svg


def test_tactic_charts_mark_a_late_forecast_beyond_the_period_end() -> None:
    """A forecast after the period end stretches the dates to it and is marked late, right
    of the period-end marker; scope and throughput are drawn as their own series."""
    t = TacticData(
        "Onboarding",
        *Q4,
        completion=((date(2026, 10, 5), 0.1), (date(2026, 11, 1), None), (date(2026, 11, 9), 0.4)),
        scope=((date(2026, 10, 5), 20.0), (date(2026, 11, 9), 30.0)),
        throughput=((date(2026, 10, 5), 1.0), (date(2026, 11, 9), 3.0)),
        forecast=date(2027, 1, 20),
        today=date(2026, 11, 9),
    )
    completion, scope = (parse(svg) for svg in charts.tactic_charts(t))
    assert [d[3] for d in dots(group(completion, "completion"))] == [0.1, 0.4]  # None left out
    end = group(completion, "period-end").find("s:line", NS)
    late = group(completion, "forecast").find("s:line", NS)
    assert end is not None
    assert late is not None
    assert "late" in group(completion, "forecast").attrib["class"]
    assert float(late.attrib["x1"]) == WIDTH - RIGHT
    assert float(end.attrib["x1"]) < float(late.attrib["x1"])
    assert [d[3] for d in dots(group(scope, "scope"))] == [20.0, 30.0]
    assert [d[3] for d in dots(group(scope, "throughput"))] == [1.0, 3.0]


def test_bar_fills_to_the_fraction_and_ticks_the_expected_pace() -> None:
    """The fill is the fraction of 100 (clamped), the pace tick at the expected fraction."""
    root = parse(charts.bar(0.42, kind="outcome", status="at_risk", label="42%", expected=0.6))
    fill = next(r for r in root.iter(SVG + "rect") if r.get("class") == "fill")
    assert float(fill.attrib["width"]) == pytest.approx(42)
    pace = root.find("s:line", NS)
    assert pace is not None
    assert float(pace.attrib["x1"]) == pytest.approx(60)
    assert "status-at_risk" in root.attrib["class"]
    over = parse(charts.bar(1.7, kind="execution", status="done", label="170%"))
    fill = next(r for r in over.iter(SVG + "rect") if r.get("class") == "fill")
    assert float(fill.attrib["width"]) == 100
    assert over.find("s:line", NS) is None


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    """Ticks start at or below the low value, end at or above the high, in 1/2/5 steps."""
    assert charts.nice_ticks(8, 12) == [8, 9, 10, 11, 12]
    ticks = charts.nice_ticks(0.3, 47)
    assert ticks[0] <= 0.3
    assert ticks[-1] >= 47
    assert len({round(b - a, 9) for a, b in pairwise(ticks)}) == 1


def test_markers_outside_the_dates_are_not_drawn() -> None:
    """A marker dated outside the chart's range draws nothing (no line off the plot)."""
    chart = TimeChart(
        "t", Q4[0], Q4[1], Axis(0, 1), markers=(Marker(date(2027, 2, 1), "forecast", "f"),)
    )
    assert "forecast" not in charts.time_chart(chart)


def marker_labels(root: ET.Element) -> dict[str, tuple[float, float, float]]:
    """Each marker's label: (left, right, baseline), its width estimated as the chart does."""
    found = {}
    for g in root.iter(SVG + "g"):
        if "marker" in g.get("class", "").split():
            text = g.find("s:text", NS)
            assert text is not None
            assert text.text
            x, width = float(text.attrib["x"]), len(text.text) * charts.CHAR_W
            left = x - width if "end" in text.attrib["class"].split() else x
            found[text.text] = (left, left + width, float(text.attrib["y"]))
    return found


def test_close_markers_put_their_labels_on_separate_rows() -> None:
    """Today, the period end and a forecast a day later: no two labels overlap (one moves
    down a row); a lone marker's label stays on the top row."""
    t = TacticData(
        "Onboarding", *Q4, completion=(), scope=(), throughput=(),
        forecast=date(2027, 1, 1), today=date(2026, 12, 29),
    )  # fmt: skip
    labels = marker_labels(parse(charts.tactic_charts(t)[0]))
    assert set(labels) == {"today", "period end", "forecast"}
    for (a, b, y), (c, d, z) in itertools.combinations(labels.values(), 2):
        assert y != z or b <= c or d <= a, labels
    assert len({y for _, _, y in labels.values()}) > 1
    alone = marker_labels(parse(charts.key_result_chart(kr())))
    assert alone["today"][2] == TOP + 14


def test_axes_are_named() -> None:
    """A key result's chart names its outcome axis (with the unit) and its execution axis;
    a tactic's scope chart names items in scope and done per week."""
    names = [t.text for t in parse(charts.key_result_chart(kr())).iter(SVG + "text")
             if "axis-title" in t.get("class", "")]  # fmt: skip
    assert names == ["outcome (%)", "execution"]
    t = TacticData("T", *Q4, (), (), (), None, date(2026, 11, 9))
    scope = parse(charts.tactic_charts(t)[1])
    assert [x.text for x in scope.iter(SVG + "text") if "axis-title" in x.get("class", "")] == [
        "items in scope",
        "done per week",
    ]


def test_the_marker_label_can_say_as_of() -> None:
    """Shown as of a past date, the chart's day marker is labelled with that date."""
    svg = charts.key_result_chart(kr(today=date(2026, 11, 5), today_label="as of 2026-11-05"))
    assert marker_labels(parse(svg)).keys() == {"as of 2026-11-05"}
