"""What the dashboard and the read API show, as JSON-ready values: plain functions over an
opened `Store`, shared by `okrsync.web.api` and `okrsync.web.pages`.

Shapes reuse the export (`okrsync.report.export_document`, okrsync/schema/export.schema.json):
`tree` IS an export document; `key_result` and `tactic` hold the export's node of that
subject (with its objective, and for a tactic its key result); `tactic_items` is the
document of `okrsync items --tactic ID --json`.

Which signals: with `as_of=None` (the dashboard's "now"), each tactic's figures are its newest
snapshot (what the last sync or recompute stored: no item aggregate, so the whole tree of
10k tactics is read in well under a second) and key results and objectives are rolled up
from them for today, with today's check-ins and pace. With an `as_of` date everything is
computed from the items as `okrsync report --as-of` does (the whole tree: seconds on a large
store). A tactic without a snapshot yet (before the first recompute) makes the "now" view
computed too.

Errors: `NotFound` (an unknown or archived id, an unknown run) and `BadParam` (a bad value
for a named parameter); callers turn them into 404 and 400.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from okrsync.config import SignalsConfig
from okrsync.errors import ConfigError
from okrsync.report import add_sources, cli_period, export_document
from okrsync.signals import SignalSet, TacticSignals, compute, roll_up, today

if TYPE_CHECKING:
    from collections.abc import Mapping

    from okrsync.okrfile import MetricSource
    from okrsync.store import Store, SyncRunRow

STATUSES = ("todo", "in_progress", "done", "dropped")
# keyword of `tactic_items` → the count it narrows to (`okrsync items` flags, same names)
ITEM_FLAGS = {
    "stale": "stale",
    "overdue": "overdue",
    "scope_added": "scope_added",
    "in_window": "done_in_window",
    "unestimated": "unestimated",
}
MAX_RUNS = 1000


class NotFound(LookupError):
    """No such subject or run (an API 404)."""


class BadParam(ValueError):
    """A bad value for the named parameter (an API 400)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


# -- parsing what a query string gives ---------------------------------------------------------


def parse_date(param: str, text: str | None) -> date | None:
    """A YYYY-MM-DD value (None stays None)."""
    if text is None or text == "":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadParam(param, f"{param} must be a date like 2026-11-15, got {text!r}") from None


def parse_period(text: str | None) -> str | None:
    """A period such as 2026, 2026-H2, 2026-Q4 or 2026-11 (None stays None)."""
    if text is None or text == "":
        return None
    try:
        return cli_period(text)[0]
    except ConfigError as exc:
        raise BadParam("period", str(exc).removeprefix("--")) from None


# -- signals -----------------------------------------------------------------------------------


def _cfg(cfg: SignalsConfig | None) -> SignalsConfig:
    return cfg if cfg is not None else SignalsConfig()


def signal_set(
    store: Store,
    cfg: SignalsConfig,
    as_of: date | None,
    objective_ids: list[str] | None = None,
) -> SignalSet:
    """Signals of the whole tree or of some objectives: "now" from the tactics' newest
    snapshots when every tactic has one, else computed from the items as of the date."""
    if as_of is None:
        day = today()
        structure, checkins, snaps = store.current_inputs(day, objective_ids)
        tactics = _snapshot_tactics(snaps, list(structure.tactics))
        if tactics is not None:
            return roll_up(structure, tactics, checkins, day, cfg)
        as_of = day
    if objective_ids is None:
        structure, counts, checkins = store.signal_inputs(as_of, cfg)
    else:
        structure, counts, checkins = store.objective_inputs(as_of, cfg, objective_ids)
    return compute(structure, counts, checkins, as_of, cfg)


def _snapshot_tactics(
    snaps: Mapping[str, tuple[date, Any]], ids: list[str]
) -> dict[str, TacticSignals] | None:
    """TacticSignals from stored snapshot values; None when one is missing or unreadable."""
    found: dict[str, TacticSignals] = {}
    for tid in ids:
        got = snaps.get(tid)
        if got is None:
            return None
        try:
            found[tid] = _tactic_signals(got[1])
        except (TypeError, ValueError, KeyError):
            return None
    return found


def _tactic_signals(values: Mapping[str, Any]) -> TacticSignals:
    last, forecast = values["last_activity"], values["forecast_finish"]
    return TacticSignals(
        **{
            **values,
            "last_activity": None if last is None else datetime.fromisoformat(last),
            "forecast_finish": None if forecast is None else date.fromisoformat(forecast),
        }
    )


# -- the read model ------------------------------------------------------------------------------


def tree(
    store: Store,
    *,
    as_of: date | None = None,
    period: str | None = None,
    objective: str | None = None,
    cfg: SignalsConfig | None = None,
    sources: Mapping[str, MetricSource] | None = None,
) -> dict[str, Any]:
    """The tree with outcome, execution and flags: an export document (export.schema.json);
    with `sources`, each key result's source and `stale_source` (`report.add_sources`)."""
    cfg = _cfg(cfg)
    signals = signal_set(store, cfg, as_of)
    if objective is not None and objective not in signals.structure.objectives:
        raise NotFound(f"no active objective {objective!r}")
    try:
        doc = export_document(signals, cfg, period=period, objective=objective)
    except ConfigError as exc:
        raise BadParam("period", str(exc).removeprefix("--")) from None
    if sources:
        add_sources(doc, store, sources)
    return doc


def _subject_doc(
    store: Store,
    kind: Literal["key_result", "tactic"],
    subject_id: str,
    as_of: date | None,
    cfg: SignalsConfig | None,
    sources: Mapping[str, MetricSource] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(document head, objective node, key result node) around one subject."""
    oid = store.objective_of(kind, subject_id)
    if oid is None:
        raise NotFound(f"no active {kind.replace('_', ' ')} {subject_id!r}")
    cfg = _cfg(cfg)
    doc = export_document(signal_set(store, cfg, as_of, [oid]), cfg, period=None, objective=oid)
    if sources:
        add_sources(doc, store, sources)
    obj = next(o for o in doc.pop("objectives") if o["id"] == oid)
    krs = obj.pop("key_results")
    if kind == "key_result":
        kr = next(k for k in krs if k["id"] == subject_id)
    else:
        kr = next(k for k in krs if any(t["id"] == subject_id for t in k["tactics"]))
    return doc, obj, kr


def key_result(
    store: Store,
    kr_id: str,
    *,
    as_of: date | None = None,
    cfg: SignalsConfig | None = None,
    sources: Mapping[str, MetricSource] | None = None,
) -> dict[str, Any]:
    """One key result (the export's node, with its tactics and, given `sources`, its source)
    and its objective (without its other key results)."""
    doc, obj, kr = _subject_doc(store, "key_result", kr_id, as_of, cfg, sources)
    return {**doc, "objective": obj, "key_result": kr}


def tactic(
    store: Store, tactic_id: str, *, as_of: date | None = None, cfg: SignalsConfig | None = None
) -> dict[str, Any]:
    """One tactic (the export's node), its key result (without tactics) and objective."""
    doc, obj, kr = _subject_doc(store, "tactic", tactic_id, as_of, cfg)
    node = next(t for t in kr.pop("tactics") if t["id"] == tactic_id)
    return {**doc, "objective": obj, "key_result": kr, "tactic": node}


def history(store: Store, kind: Literal["key_result", "tactic"], subject_id: str) -> dict[str, Any]:
    """A subject's signal snapshots over time, oldest first (each: the as-of date, when it
    was computed, the values as the export shows them); a key result's check-ins too."""
    if kind not in ("key_result", "tactic"):
        raise BadParam("kind", f"history is kept for key_result and tactic, not {kind!r}")
    if store.objective_of(kind, subject_id) is None:
        raise NotFound(f"no active {kind.replace('_', ' ')} {subject_id!r}")
    snaps = [
        {"as_of": s.as_of.isoformat(), "computed_at": s.computed_at.isoformat(),
         "values": s.values}
        for s in store.subject_history(kind, subject_id)
    ]  # fmt: skip
    doc: dict[str, Any] = {"subject_type": kind, "id": subject_id, "snapshots": snaps}
    if kind == "key_result":
        doc["checkins"] = [
            {"id": c.id, "value": c.value, "confidence": c.confidence, "note": c.note,
             "recorded_at": c.recorded_at.isoformat(), "author": c.author}
            for c in store.checkins(subject_id)
        ]  # fmt: skip
    return doc


def tactic_items(
    store: Store,
    tactic_id: str,
    *,
    as_of: date | None = None,
    status: str | None = None,
    stale: bool = False,
    overdue: bool = False,
    scope_added: bool = False,
    in_window: bool = False,
    unestimated: bool = False,
    cfg: SignalsConfig | None = None,
) -> dict[str, Any]:
    """The items behind a tactic's counts, narrowed as `okrsync items --tactic` narrows them
    (all filters must hold), each with its tracker URL and the rule linking it: the
    document of `okrsync items --tactic ID --json`."""
    if status is not None and status not in STATUSES:
        raise BadParam("status", f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    picked = {"stale": stale, "overdue": overdue, "scope_added": scope_added,
              "in_window": in_window, "unestimated": unestimated}  # fmt: skip
    filters = ([status] if status else []) + [ITEM_FLAGS[k] for k, on in picked.items() if on]
    oid = store.objective_of("tactic", tactic_id)
    if oid is None:
        raise NotFound(f"no active tactic {tactic_id!r}")
    day = as_of or today()
    structure, _, _ = store.current_inputs(day, [oid])
    found = store.tactic_items(structure, day, _cfg(cfg), [tactic_id], filters)[tactic_id]
    return {
        "as_of": day.isoformat(),
        "tactic": {"id": tactic_id, "title": structure.tactics[tactic_id].title},
        "connector": None,
        "filters": filters,
        "count": len(found),
        "items": [i.as_json() for i in found],
    }


def runs(
    store: Store, *, connector: str | None = None, failed: bool = False, limit: int = 50
) -> list[dict[str, Any]]:
    """Recorded sync runs, newest first (`failed`: those not ended ok), at most `limit`."""
    if not 1 <= limit <= MAX_RUNS:
        raise BadParam("limit", f"limit must be 1 to {MAX_RUNS}, got {limit}")
    return [run_json(r) for r in store.runs(connector, failed=failed, limit=limit)]


def run(store: Store, run_id: int) -> dict[str, Any]:
    """One recorded sync run."""
    row = store.run(run_id)
    if row is None:
        raise NotFound(f"no sync run {run_id}")
    return run_json(row)


def run_json(r: SyncRunRow) -> dict[str, Any]:
    """A run as JSON: counts, costs, error (one line, as stored) and who ran it."""
    ended = r.ended_at
    return {
        "id": r.id,
        "connector": r.connector,
        "status": r.status,
        "trigger": r.trigger,
        "started_at": r.started_at.isoformat(),
        "ended_at": None if ended is None else ended.isoformat(),
        "duration_s": None if ended is None else (ended - r.started_at).total_seconds(),
        "pages": r.pages,
        "requests": r.requests,
        "retries": r.retries,
        "rate_limit_wait_s": r.rate_limit_wait_s,
        "items_created": r.items_created,
        "items_updated": r.items_updated,
        "items_deleted": r.items_deleted,
        "lost_scopes": list(r.lost_scopes),
        "error": r.error,
        "host": r.host,
    }
