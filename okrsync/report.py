"""The OKR report: the tree with outcome beside execution, as a terminal view, JSON or CSV.

`export_tree` builds one plain dict (the JSON export, described by
`okrsync/schema/export.schema.json`); the terminal report and the CSV are both drawn from it,
so the three never disagree.

CSV: one row per subject (objective, key result, tactic), parents before children, columns
in `CSV_COLUMNS` order:

    subject_type        objective | key_result | tactic
    id, parent_id       the mapping-file id; the parent objective / objective / key result
    title, weight
    period_start/end    the objective's period (YYYY-MM-DD), repeated on its descendants
    outcome_*           start, target, current, direction (key results), progress, expected,
                        status (objectives and key results)
    execution_completion  objectives and key results (tactics: see `completion`)
    flags               divergence flags joined with ';'
    <tactic signals>    the 16 tactic signals of docs/signals.md, same names as the JSON;
                        `execution_status` also holds an objective's / key result's
                        execution status
    source_*            kind, last_reading_at, last_failure_at, last_failure: a key
                        result's source (docs/sources.md), empty without one

Empty cells are nulls. Numbers are written as Python prints them (full precision).

Cells are safe to open in a spreadsheet and to print (`csv_cell`): a text cell loses its
terminal control characters, and one that would start with `=`, `+`, `-`, `@`, a tab or a
carriage return gets a leading `'` (OWASP's recipe against formula injection: `=HYPERLINK(…)`
in a title stays text). Only text cells are touched: a number is written as a number, so a
negative value such as `-0.5` stays `-0.5`; a title that reads `-5` is text and becomes `'-5`.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.tree import Tree

from okrsync.config import SignalsConfig
from okrsync.errors import ConfigError, OkrsyncError
from okrsync.okrfile import (
    MetricSource,
    OkrTree,
    enclosing_periods,
    parse_period,
    period_dates,
)
from okrsync.render import report_footer
from okrsync.signal_types import Structure
from okrsync.signals import TACTIC_SIGNALS, SignalSet, compute, newer_failure, stale_source
from okrsync.store import ListedItem, Store
from okrsync.textsafe import markup_safe as safe
from okrsync.textsafe import printable

FORMAT = "okrsync.export/1"
SCHEMA_ID = "https://okrsync.dev/schema/export.schema.json"
BAR = 20
STATUS_STYLE = {
    "done": "bold blue",
    "on_track": "green",
    "at_risk": "yellow",
    "off_track": "bold red",
    "no_data": "dim",
}
FLAG_TEXT = {
    "output_without_outcome": "output without outcome: work is done, the metric is not moving",
    "outcome_without_output": "outcome without output: the metric moves, the planned work not",
    "stale_source": "stale source: no good reading for 3 schedule intervals",
}
SOURCE_KEYS = ("kind", "last_reading_at", "last_failure_at", "last_failure")
OUTCOME_KEYS = ("start", "target", "current", "direction", "progress", "expected", "status")
CSV_COLUMNS = (
    "subject_type",
    "id",
    "parent_id",
    "title",
    "weight",
    "period_start",
    "period_end",
    *(f"outcome_{k}" for k in OUTCOME_KEYS),
    "execution_completion",
    "flags",
    *TACTIC_SIGNALS,
    *(f"source_{k}" for k in SOURCE_KEYS),
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# -- the export dict ---------------------------------------------------------------------------


def export_tree(
    store: Store,
    as_of: date,
    cfg: SignalsConfig,
    *,
    period: str | None = None,
    objective: str | None = None,
    items: bool = False,
    sources: Mapping[str, MetricSource] | None = None,
) -> dict[str, Any]:
    """The whole tree with signals as of a date (optionally one period or objective); with
    `items`, each tactic lists the items it counts; with `sources` (key result id → its
    source in the mapping files), each such key result shows its source (`add_sources`)."""
    structure, counts, checkins = store.signal_inputs(as_of, cfg)
    signals = compute(structure, counts, checkins, as_of, cfg)
    data = export_document(signals, cfg, period=period, objective=objective)
    if items:
        add_items(data, store, structure, as_of, cfg)
    if sources:
        add_sources(data, store, sources)
    return data


def tree_sources(load: Callable[[], OkrTree]) -> dict[str, MetricSource]:
    """Each key result's source from the mapping files; none when they cannot be loaded
    (the report is of the store: `okrsync mappings check` names what is wrong)."""
    try:
        tree = load()
    except OkrsyncError:
        return {}
    return {k: kr.metric_source for k, kr in tree.key_results.items() if kr.metric_source}


def add_sources(
    data: dict[str, Any],
    store: Store,
    sources: Mapping[str, MetricSource],
    now: datetime | None = None,
) -> None:
    """Give each exported key result with a source a `source` object (kind, schedule, last
    good reading, newer failure) and the `stale_source` flag when it is stale (docs/signals.md);
    the current state of its runs, whatever the document's as-of date."""
    krs = [k for o in data["objectives"] for k in o["key_results"] if k["id"] in sources]
    runs = store.source_runs([k["id"] for k in krs]) if krs else {}
    at = now or datetime.now(UTC)
    for kr in krs:
        src, got = sources[kr["id"]], runs.get(kr["id"])
        failed = newer_failure(got)
        kr["source"] = {
            "kind": src.kind,
            "every_s": src.every_s,
            "last_reading_at": _iso(got.last_ok_at if got else None),
            "last_failure_at": _iso(failed[0] if failed else None),
            "last_failure": failed[1] if failed else None,
        }
        if stale_source(src.every_s, got, at):
            kr["flags"] = [*kr["flags"], "stale_source"]


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def export_document(
    signals: SignalSet, cfg: SignalsConfig, *, period: str | None, objective: str | None
) -> dict[str, Any]:
    """The export dict of computed signals (the web read model builds it from snapshots)."""
    keep = select_objectives(signals, period, objective)
    children = _Children.of(signals.structure)
    return {
        "$schema": SCHEMA_ID,
        "format": FORMAT,
        "as_of": signals.as_of.isoformat(),
        "thresholds": cfg.model_dump(),
        "objectives": [
            _objective(signals, children, oid)
            for oid in signals.structure.objectives
            if oid in keep
        ],
    }


@dataclass
class _Children:
    """Each objective's key results and each key result's tactics, in tree order (one pass:
    a tree of 10k tactics is laid out in linear time)."""

    key_results: dict[str, list[str]]
    tactics: dict[str, list[str]]

    @classmethod
    def of(cls, structure: Structure) -> _Children:
        krs: dict[str, list[str]] = defaultdict(list)
        tactics: dict[str, list[str]] = defaultdict(list)
        for kid, kr in structure.key_results.items():
            krs[kr.objective_id].append(kid)
        for tid, tac in structure.tactics.items():
            tactics[tac.key_result_id].append(tid)
        return cls(krs, tactics)


def add_items(
    data: dict[str, Any], store: Store, structure: Structure, as_of: date, cfg: SignalsConfig
) -> None:
    """Give each exported tactic an `items` list: the items its counts are made of (key,
    url, status and the rule linking it), as `okrsync items --tactic` lists them."""
    tactics = [t for o in data["objectives"] for k in o["key_results"] for t in k["tactics"]]
    found = store.tactic_items(structure, as_of, cfg, [t["id"] for t in tactics])
    for t in tactics:
        t["items"] = [
            {"connector": i.connector, "key": i.key, "url": i.url, "status": i.status,
             "rule": i.rule_id, **_board_fields(i)}
            for i in found.get(t["id"], [])
        ]  # fmt: skip


def _board_fields(item: ListedItem) -> dict[str, Any]:
    """An item's boards (titles, else ids) and iteration, only when it is on a board."""
    if not item.boards:
        return {}
    names = list(item.board_names)
    shown = [names[n] if n < len(names) and names[n] else b for n, b in enumerate(item.boards)]
    return {"boards": shown, "iteration": item.iteration}


def select_objectives(signals: SignalSet, period: str | None, objective: str | None) -> set[str]:
    """Objective ids within a period (see `within_period`) and/or under one objective."""
    objs = signals.structure.objectives
    keep = set(objs)
    if period is not None:
        spans = {o: (info.start, info.end) for o, info in objs.items()}
        keep = within_period(spans, period)
    if objective is not None:
        if objective not in objs:
            known = ", ".join(objs) or "none in the store"
            raise ConfigError(f"--objective: no active objective {objective!r}; known: {known}")
        keep &= _descendants(signals, objective)
    return keep


def within_period(spans: Mapping[str, tuple[date, date]], period: str) -> set[str]:
    """The ids whose first and last day lie within `period` (`--period`): a year holds its
    halves, quarters and months and any dated objective inside it; `2026-h2` = `2026-H2`."""
    _, start, end = cli_period(period)
    return {o for o, (first, last) in spans.items() if start <= first and last <= end}


def cli_period(period: str) -> tuple[str, date, date]:
    """`--period`'s canonical name and dates; a bad one is a ConfigError (exit 2)."""
    try:
        return parse_period(period.strip())  # typed on a command line: spaces are noise
    except ValueError as exc:
        raise ConfigError(f"--period: {exc}") from None


def period_note(store: Store, period: str | None, data: Mapping[str, Any]) -> str | None:
    """Why `--period` selected nothing, with the periods that hold objectives (None when the
    selection is not empty or not by period)."""
    if period is None or data["objectives"]:
        return None
    objs, _, _ = store.active_tree_rows()
    return empty_period_note([(o.period_start, o.period_end) for o in objs], period)


def empty_period_note(spans: list[tuple[date, date]], period: str) -> str | None:
    """The note for a period none of `spans` lies within; None if one does."""
    name, start, end = cli_period(period)
    if any(start <= first and last <= end for first, last in spans):
        return None  # the period holds objectives, just not under --objective
    if not spans:
        return "no objectives in the store; run `okrsync okrs sync` first"
    held = periods_held(spans)
    hint = f"periods with objectives: {', '.join(held)}" if held else "leave out --period"
    return f"no objective lies within {name} ({start} … {end}); {hint}"


def periods_held(spans: list[tuple[date, date]]) -> list[str]:
    """Periods to suggest: each span's smallest named period and its year, in date order."""
    names: set[str] = set()
    for first, last in spans:
        around = enclosing_periods(first, last)
        names.update({around[0], around[-1]} if around else set())
    return sorted(names, key=lambda n: (period_dates(n)[0], -period_dates(n)[1].toordinal()))


def _descendants(signals: SignalSet, root: str) -> set[str]:
    found = {root}
    objs = signals.structure.objectives
    while grown := {o for o, info in objs.items() if info.parent in found} - found:
        found |= grown
    return found


def _objective(signals: SignalSet, children: _Children, oid: str) -> dict[str, Any]:
    info = signals.structure.objectives[oid]
    return {
        "id": oid,
        "title": info.title,
        "owner": info.owner,
        "period": info.period,
        "start": info.start.isoformat(),
        "end": info.end.isoformat(),
        "parent": info.parent,
        "weight": info.weight,
        **signals.objectives[oid].as_json(),
        "key_results": [
            _key_result(signals, children, kid) for kid in children.key_results.get(oid, [])
        ],
    }


def _key_result(signals: SignalSet, children: _Children, kid: str) -> dict[str, Any]:
    info = signals.structure.key_results[kid]
    return {
        "id": kid,
        "title": info.title,
        "unit": info.unit,
        "weight": info.weight,
        **signals.key_results[kid].as_json(),
        "tactics": [_tactic(signals, tid) for tid in children.tactics.get(kid, [])],
    }


def _tactic(signals: SignalSet, tid: str) -> dict[str, Any]:
    info = signals.structure.tactics[tid]
    return {
        "id": tid,
        "title": info.title,
        "weight": info.weight,
        "signals": signals.tactics[tid].as_json(),
    }


# -- CSV ---------------------------------------------------------------------------------------


def csv_rows(data: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One flat row per subject, parents first (see the module docstring for columns)."""
    for obj in data["objectives"]:
        period = {"period_start": obj["start"], "period_end": obj["end"]}
        yield {"subject_type": "objective", "parent_id": obj["parent"], **period, **_common(obj)}
        for kr in obj["key_results"]:
            outcome = {f"outcome_{k}": kr["outcome"][k] for k in OUTCOME_KEYS}
            source = {f"source_{k}": kr.get("source", {}).get(k) for k in SOURCE_KEYS}
            yield {
                "subject_type": "key_result",
                "parent_id": obj["id"],
                **period,
                **_common(kr),
                **outcome,
                **source,
            }
            for t in kr["tactics"]:
                base = {"id": t["id"], "title": t["title"], "weight": t["weight"]}
                yield {
                    "subject_type": "tactic",
                    "parent_id": kr["id"],
                    **period,
                    **base,
                    **t["signals"],
                }


def _common(node: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": node["id"],
        "title": node["title"],
        "weight": node["weight"],
        "outcome_progress": node["outcome"]["progress"],
        "outcome_expected": node["outcome"]["expected"],
        "outcome_status": node["outcome"]["status"],
        "execution_completion": node["execution"]["completion"],
        "execution_status": node["execution"]["status"],
        "flags": ";".join(node["flags"]),
    }


def write_csv(data: Mapping[str, Any], fh: TextIO) -> None:
    """The CSV export of `export_tree`'s dict, header first."""
    writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(data):
        writer.writerow({k: csv_cell(v) for k, v in row.items()})


def csv_cell(value: Any) -> Any:
    """A CSV cell: None empty, numbers as they are, text printable and formula-neutralised."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    text = printable(value)
    return "'" + text if text.startswith(FORMULA_START) else text


# -- the terminal report -----------------------------------------------------------------------


def bar(value: float | None, style: str, width: int = BAR) -> str:
    """`████████░░░░  40%` in a style; `no data` without a value."""
    if value is None:
        return "[dim]" + "·" * width + " no data[/]"
    filled = round(value * width)
    return f"[{style}]{'█' * filled}[/][dim]{'░' * (width - filled)}[/] {value:4.0%}"


def status(text: str) -> str:
    return f"[{STATUS_STYLE.get(text, 'default')}]{safe(text.replace('_', ' '))}[/]"


def flags(names: list[str]) -> str:
    """Each flag on a line of its own below the label (a narrow page never splits one from
    its text, a wide one never trails it after the execution bar)."""
    return "".join(f"\n[bold white on red] ⚠ {safe(FLAG_TEXT.get(n, n))} [/]" for n in names)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def objective_label(obj: Mapping[str, Any]) -> str:
    period = obj["period"] or f"{obj['start']} … {obj['end']}"
    owner = f" · {safe(obj['owner'])}" if obj["owner"] else ""
    out, ex = obj["outcome"], obj["execution"]
    return (
        f"[bold magenta]{safe(obj['id'])}[/] [bold]{safe(obj['title'])}[/] "
        f"[dim]({safe(period)}{owner})[/]\n"
        f"outcome   {bar(out['progress'], 'magenta')}  expected {_pct(out['expected'])} · "
        f"{status(out['status'])}\n"
        f"execution {bar(ex['completion'], 'cyan')}  {status(ex['status'])}{flags(obj['flags'])}"
    )


def key_result_label(kr: Mapping[str, Any]) -> str:
    out, ex = kr["outcome"], kr["execution"]
    unit = f" {kr['unit']}" if kr["unit"] else ""
    arrow = "↑" if out["direction"] == "increase" else "↓"
    now = "—" if out["current"] is None else f"{out['current']:g}"
    return (
        f"[bold]{safe(kr['id'])}[/] {safe(kr['title'])}  "
        f"[dim]{out['start']:g} → {out['target']:g}{safe(unit)} {arrow}, now {now}[/]\n"
        f"outcome   {bar(out['progress'], 'magenta')}  expected {_pct(out['expected'])} · "
        f"{status(out['status'])}\n"
        f"execution {bar(ex['completion'], 'cyan')}  {status(ex['status'])} "
        f"[dim]({ex['tactics_with_data']} tactic(s) with data)[/]{source_line(kr)}"
        f"{flags(kr['flags'])}"
    )


def source_line(kr: Mapping[str, Any]) -> str:
    """`source    sql · read 2026-12-07 09:00 UTC` (and its newer failure), or nothing."""
    src = kr.get("source")
    if not src:
        return ""
    read = _when(src["last_reading_at"])
    text = f"\nsource    {safe(src['kind'])} · " + (f"read {read}" if read else "never read")
    if src["last_failure_at"]:
        reason = safe(printable(src["last_failure"] or "?"))
        text += f" · [yellow]failed {_when(src['last_failure_at'])}: {reason}[/]"
    return text


def _when(iso: str | None) -> str | None:
    if iso is None:
        return None
    return f"{datetime.fromisoformat(iso).astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def tactic_label(t: Mapping[str, Any]) -> str:
    s = t["signals"]
    parts = [
        f"{s['items_done']}/{s['items_total']} done ({_pct(s['completion'])})",
        f"{s['throughput_per_week']:g}/wk",
        f"forecast {safe(s['forecast_finish'] or '—')}",
    ]
    for key in ("stale", "overdue", "scope_added"):
        if s[key]:
            style = "yellow" if key != "scope_added" else "dim"
            parts.append(f"[{style}]{s[key]} {key.replace('_', ' ')}[/]")
    return (  # two lines, like a key result's: its signals fit 80 columns below the title
        f"[green]{safe(t['id'])}[/] {safe(t['title'])}  [dim]·[/] "
        f"{status(s['execution_status'])}\n" + " [dim]·[/] ".join(parts)
    )


def render_report(console: Console, data: Mapping[str, Any]) -> None:
    """objective → key result (outcome bar, pace, execution bar, flags) → tactics."""
    if not data["objectives"]:
        console.print(
            "no objectives to report; run `okrsync okrs sync` first (or widen the filter)"
        )
        return
    root = Tree(f"[bold]OKR report[/] [dim]as of {data['as_of']}[/]")
    for obj in data["objectives"]:
        node = root.add(objective_label(obj))
        for kr in obj["key_results"]:
            kr_node = node.add(key_result_label(kr))
            for t in kr["tactics"]:
                kr_node.add(tactic_label(t))
    console.print(root)
    console.print(report_footer())
