"""Charts as server-side SVG: pure functions from plain values to an SVG string.

No JavaScript and no vendored library: the dashboard inlines these SVGs, which scale with
their `viewBox` (1280 px screens and 375 px phones alike). Colours live in the package's
stylesheet (classes such as `pace`, `checkins`, `execution`, `today`); every text that
reaches the SVG is escaped.

    time_chart(TimeChart)   dates across, one or two value axes, series (lines + dots) and
                            vertical markers (today, period end, forecast)
    key_result_chart(...)   check-ins, the expected pace and execution completion over a period
    tactic_charts(...)      completion with its forecast; scope and throughput
    bar(...)                a horizontal bar with an optional expected-pace tick
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

WIDTH, HEIGHT = 600, 280
LEFT, RIGHT, TOP, BOTTOM = 66, 66, 36, 34
AXIS_TITLE_Y = 14  # the axes' names, above the plot at its left and right edges
CHAR_W, ROW_H = 10, 18  # a marker label's width per character, a row of labels (phone font)
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM


def number(value: float) -> str:
    """A short number for a label: 12, 9.4, 0.25, 1.2k."""
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def percent(value: float) -> str:
    """A fraction as a whole percentage: 0.25 → 25%."""
    return f"{value * 100:.0f}%"


@dataclass(frozen=True)
class Axis:
    """A value axis: `low` at the bottom, `high` at the top (high < low: an inverted axis),
    a name and how its ticks print."""

    low: float
    high: float
    label: str = ""
    fmt: Callable[[float], str] = number


@dataclass(frozen=True)
class Series:
    """Dated values drawn as a line and dots; `name` is its CSS class."""

    name: str
    title: str
    points: tuple[tuple[date, float], ...]
    axis: str = "left"
    dots: bool = True


@dataclass(frozen=True)
class Marker:
    """A vertical line at a date; `name` is its CSS class."""

    at: date
    name: str
    label: str


@dataclass(frozen=True)
class TimeChart:
    title: str
    start: date
    end: date
    left: Axis
    series: tuple[Series, ...] = ()
    markers: tuple[Marker, ...] = ()
    right: Axis | None = None


# -- scales ------------------------------------------------------------------------------------


def x_of(chart: TimeChart, day: date) -> float:
    """The x coordinate of a date: the chart's start at the left edge, its end at the right."""
    span = max((chart.end - chart.start).days, 1)
    return round(LEFT + (day - chart.start).days / span * PLOT_W, 2)


def y_of(axis: Axis, value: float) -> float:
    """The y coordinate of a value on an axis: low at the bottom, high at the top (an axis
    with high < low runs downwards)."""
    span = (axis.high - axis.low) or 1.0
    return round(TOP + (axis.high - value) / span * PLOT_H, 2)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [low, high] (steps of 1, 2 or 5 × 10^n)."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def padded_axis(values: Sequence[float], label: str = "") -> Axis:
    """An axis whose range is the round ticks around `values`."""
    ticks = nice_ticks(min(values), max(values))
    return Axis(ticks[0], ticks[-1], label)


def date_ticks(start: date, end: date, most: int = 6) -> list[date]:
    """Month starts within [start, end] (weeks for a short span), at most `most` of them."""
    if (end - start).days <= 45:
        days = [start + timedelta(days=d) for d in range(0, (end - start).days + 1, 7)]
    else:
        days = [d for d in _month_starts(start, end) if start <= d <= end]
    stride = max(1, math.ceil(len(days) / most))
    return days[::stride]


def _month_starts(start: date, end: date) -> list[date]:
    months = []
    day = date(start.year, start.month, 1)
    while day <= end:
        months.append(day)
        day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return months


# -- drawing -----------------------------------------------------------------------------------


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def time_chart(chart: TimeChart) -> str:
    """The whole chart as one `<svg>` element."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{_attr(chart.title)}">',
        f"<title>{escape(chart.title)}</title>",
        *_grid(chart),
        *_markers(chart),
        *(line for s in chart.series for line in _series(chart, s)),
        "</svg>",
    ]
    return "".join(parts)


def _grid(chart: TimeChart) -> list[str]:
    out = ['<g class="grid">']
    for v in nice_ticks(chart.left.low, chart.left.high):
        if chart.left.low <= v <= chart.left.high:
            y = y_of(chart.left, v)
            out.append(f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}"/>')
            out.append(_text(LEFT - 6, y + 4, chart.left.fmt(v), "tick left"))
    out += _right_ticks(chart)
    for d in date_ticks(chart.start, chart.end):
        x = x_of(chart, d)
        cls = "tick x first" if x - LEFT < 20 else "tick x"  # clear of the lowest value tick
        out.append(f'<line class="x" x1="{x}" y1="{TOP}" x2="{x}" y2="{HEIGHT - BOTTOM}"/>')
        out.append(_text(x, HEIGHT - BOTTOM + 16, f"{d:%b} {d.day}", cls))
    if chart.left.label:
        out.append(_text(2, AXIS_TITLE_Y, chart.left.label, "axis-title left"))
    if chart.right is not None and chart.right.label:
        out.append(_text(WIDTH - 2, AXIS_TITLE_Y, chart.right.label, "axis-title right"))
    out.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}"/></g>')
    return out


def _right_ticks(chart: TimeChart) -> list[str]:
    axis = chart.right
    if axis is None:
        return []
    low, high = sorted((axis.low, axis.high))  # an inverted axis runs high to low
    ticks = [v for v in nice_ticks(low, high) if low <= v <= high]
    return [_text(WIDTH - RIGHT + 6, y_of(axis, v) + 4, axis.fmt(v), "tick right") for v in ticks]


def _text(x: float, y: float, text: str, cls: str) -> str:
    return f'<text class="{cls}" x="{x}" y="{round(y, 2)}">{escape(text)}</text>'


def _series(chart: TimeChart, s: Series) -> list[str]:
    axis = chart.right if s.axis == "right" and chart.right else chart.left
    xy = [(x_of(chart, d), y_of(axis, v), d, v) for d, v in s.points]
    out = [f'<g class="series {_attr(s.name)}">']
    if len(xy) > 1:
        coords = " ".join(f"{x},{y}" for x, y, _, _ in xy)
        out.append(f'<polyline class="line" points="{coords}"><title>{escape(s.title)}</title>')
        out.append("</polyline>")
    if s.dots:
        out += [_dot(x, y, d, v, s.title, axis) for x, y, d, v in xy]
    out.append("</g>")
    return out


def _dot(x: float, y: float, day: date, value: float, title: str, axis: Axis) -> str:
    tip = f"{title}, {day.isoformat()}: {axis.fmt(value)}"
    return (
        f'<circle class="dot" cx="{x}" cy="{y}" r="4" data-date="{day.isoformat()}" '
        f'data-value="{_attr(repr(value))}"><title>{escape(tip)}</title></circle>'
    )


def label_spans(markers: Sequence[tuple[float, str]]) -> list[tuple[float, float, int]]:
    """Where each marker's label goes, in the given order: (left, right, row). A label sits
    right of its line, or left of it near the plot's right edge, on the first row (from the
    top) where it overlaps no other label, so close markers never print over each other."""
    placed: list[tuple[float, float, int]] = []
    for x, text in markers:
        width = len(text) * CHAR_W
        left = x - 3 - width if x + 3 + width > WIDTH - RIGHT else x + 3
        row = 0
        while any(r == row and left < b and a < left + width for a, b, r in placed):
            row += 1
        placed.append((left, left + width, row))
    return placed


def _markers(chart: TimeChart) -> list[str]:
    shown = [(m, x_of(chart, m.at)) for m in chart.markers if chart.start <= m.at <= chart.end]
    spans = label_spans([(x, m.label) for m, x in shown])
    out = []
    for (m, x), (left, _, row) in zip(shown, spans, strict=True):
        y = TOP + 14 + row * ROW_H
        label = (
            _text(x - 3, y, m.label, "label end") if left < x else _text(x + 3, y, m.label, "label")
        )
        out.append(
            f'<g class="marker {_attr(m.name)}" data-date="{m.at.isoformat()}">'
            f'<line x1="{x}" y1="{TOP}" x2="{x}" y2="{HEIGHT - BOTTOM}"/>{label}</g>'
        )
    return out


# -- the dashboard's charts ----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyResultData:
    """What a key result's chart draws: its period, start and target values, its readings and
    the execution completion (0..1) of its tactics by day."""

    title: str
    start: date
    end: date
    start_value: float
    target_value: float
    checkins: tuple[tuple[date, float], ...]
    execution: tuple[tuple[date, float], ...]
    today: date
    unit: str = ""
    today_label: str = "today"


def key_result_chart(kr: KeyResultData) -> str:
    """Check-ins (dots and a line), the expected pace from start to target over the period,
    execution completion on the right axis (0% at the start value, 100% at the target, so
    outcome and execution share one scale) and today's marker."""
    days = [d for d, _ in (*kr.checkins, *kr.execution)] + [kr.start, kr.end]
    values = [kr.start_value, kr.target_value, *(v for _, v in kr.checkins)]
    left = padded_axis(values, f"outcome ({kr.unit})" if kr.unit else "outcome")
    right = _completion_axis(kr, left)
    pace = ((kr.start, kr.start_value), (kr.end, kr.target_value))
    series = (
        Series("pace", "expected pace", pace, dots=False),
        Series("execution", "execution completion", kr.execution, axis="right"),
        Series("checkins", "check-in", kr.checkins),
    )
    marks = (Marker(kr.today, "today", kr.today_label),)
    return time_chart(TimeChart(kr.title, min(days), max(days), left, series, marks, right))


def _completion_axis(kr: KeyResultData, left: Axis) -> Axis:
    """The 0..1 axis aligned with the value axis: 0 at the start value, 1 at the target."""
    span = (kr.target_value - kr.start_value) or 1.0

    def fraction(value: float) -> float:
        return (value - kr.start_value) / span

    # not sorted: for a decreasing key result 0% (the start value) is at the top
    return Axis(fraction(left.low), fraction(left.high), "execution", percent)


@dataclass(frozen=True)
class TacticData:
    """A tactic's snapshots by day: completion (0..1 or None), total items and throughput per
    week; its period end and forecast finish date."""

    title: str
    start: date
    end: date
    completion: tuple[tuple[date, float | None], ...]
    scope: tuple[tuple[date, float], ...]
    throughput: tuple[tuple[date, float], ...]
    forecast: date | None
    today: date
    today_label: str = "today"


def tactic_charts(t: TacticData) -> tuple[str, str]:
    """Two charts over the period (stretched to the forecast when it is later): completion
    with the period end and forecast markers; scope (left axis) and throughput (right)."""
    done = tuple((d, v) for d, v in t.completion if v is not None)
    days = [t.start, t.end, *(d for d, _ in (*t.completion, *t.scope))]
    last = max([*days, t.forecast or t.end])
    marks = _tactic_markers(t)
    completion = TimeChart(
        f"{t.title}: completion",
        min(days),
        last,
        Axis(0.0, 1.0, "completion", percent),
        (Series("completion", "completion", done),),
        marks,
    )
    scope = TimeChart(
        f"{t.title}: scope and throughput",
        min(days),
        last,
        padded_axis([0.0, 1.0, *(v for _, v in t.scope)], "items in scope"),
        (
            Series("scope", "items in scope", t.scope),
            Series("throughput", "done per week", t.throughput, axis="right"),
        ),
        marks,
        padded_axis([0.0, 1.0, *(v for _, v in t.throughput)], "done per week"),
    )
    return time_chart(completion), time_chart(scope)


def _tactic_markers(t: TacticData) -> tuple[Marker, ...]:
    marks = [Marker(t.today, "today", t.today_label), Marker(t.end, "period-end", "period end")]
    if t.forecast is not None:
        late = t.forecast > t.end
        marks.append(Marker(t.forecast, "forecast late" if late else "forecast", "forecast"))
    return tuple(marks)


# -- bars --------------------------------------------------------------------------------------


def bar(
    fraction: float | None, *, kind: str, status: str, label: str, expected: float | None = None
) -> str:
    """A 100×10 bar filled to `fraction` (clamped to 0..1; none drawn for None), classed by
    kind ("outcome"/"execution") and status, with a tick at the `expected` fraction."""
    fill = 0.0 if fraction is None else min(max(fraction, 0.0), 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bar {_attr(kind)} '
        f'status-{_attr(status)}" viewBox="0 0 100 10" preserveAspectRatio="none" '
        f'role="img" aria-label="{_attr(label)}"><title>{escape(label)}</title>',
        '<rect class="track" x="0" y="0" width="100" height="10"/>',
        f'<rect class="fill" x="0" y="0" width="{round(fill * 100, 2)}" height="10"/>',
    ]
    if expected is not None:
        x = round(min(max(expected, 0.0), 1.0) * 100, 2)
        parts.append(
            f'<line class="pace" x1="{x}" y1="0" x2="{x}" y2="10" '
            'vector-effect="non-scaling-stroke"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
