"""The dashboard: server-rendered HTML pages (Jinja2, autoescaped; no script anywhere).

    /                       the OKR tree: outcome (with the expected pace) beside execution,
                            divergence flags; a period and as-of picker (a GET form)
    /kr/{id}                a key result: its chart over the period, check-ins, the check-in
                            form (POST /kr/{id}/checkin: signed-in users, CSRF token)
    /tactic/{id}            a tactic: completion, scope, throughput over time, its forecast
    /tactic/{id}/items      the items behind each count (?count=done, stale, ...), linked to
                            the tracker, each with the rule that links it
    /admin                  connectors with their last runs; recent runs
    /admin/runs/{id}        one run and, when `[logging] file` is set, its log lines

Data comes from `okrsync.web.readmodel` (what the read API returns); charts from
`okrsync.web.charts`; access from `okrsync.web.access`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from okrsync.report import FLAG_TEXT, empty_period_note, periods_held
from okrsync.signals import today
from okrsync.web import charts, readmodel
from okrsync.web.csrf import FIELD, TOKENS

TEMPLATES = Path(__file__).parent / "templates"
ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
NOTE_MAX = 500
LOG_LINES_MAX = 500
# the tactic page's counts: (label, signal, the items filter that lists them)
COUNTS = (
    ("items in scope", "items_total", ""),
    ("done", "items_done", "done"),
    ("in progress", "items_in_progress", "in_progress"),
    ("to do", "items_todo", "todo"),
    ("dropped", "items_dropped", "dropped"),
    ("added during the period", "scope_added", "scope_added"),
    ("overdue", "overdue", "overdue"),
    ("stale", "stale", "stale"),
    ("unestimated", "items_unestimated", "unestimated"),
)
FILTER_LABELS = {"": "all items", **{f: label for label, _, f in COUNTS if f}}
FILTER_LABELS["done_in_window"] = "done in the throughput window"
FILTER_ARGS: dict[str, dict[str, Any]] = {
    "": {},
    "done": {"status": "done"},
    "in_progress": {"status": "in_progress"},
    "todo": {"status": "todo"},
    "dropped": {"status": "dropped"},
    "scope_added": {"scope_added": True},
    "overdue": {"overdue": True},
    "stale": {"stale": True},
    "unestimated": {"unestimated": True},
    "done_in_window": {"in_window": True},
}


def number(value: float | None) -> str:
    """A value for a page: — for none, no trailing zeros."""
    return "—" if value is None else f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


ENV.globals.update(
    num=number,
    flag_text=FLAG_TEXT,
    bar=lambda *a, **kw: Markup(charts.bar(*a, **kw)),  # noqa: S704 - escaped by charts.bar
)


# -- rendering ---------------------------------------------------------------------------------


def ctx_of(request: Request) -> Any:
    """The app's WebContext: settings, store and the daemon (or None)."""
    return request.app.state.ctx


def user_of(request: Request) -> str | None:
    return getattr(request.state, "user", None)


def view_of(request: Request) -> dict[str, str]:
    """The as-of date and period the tree was shown with (`?as_of=`, `?period=`), which its
    pages keep in their links; a bad value is a BadParam."""
    q = request.query_params
    as_of = readmodel.parse_date("as_of", q.get("as_of"))
    period = readmodel.parse_period(q.get("period"))
    return {
        **({"as_of": as_of.isoformat()} if as_of else {}),
        **({"period": period} if period else {}),
    }


def view_day(view: Mapping[str, str]) -> date | None:
    """The view's as-of date (None: now)."""
    return date.fromisoformat(view["as_of"]) if "as_of" in view else None


def href_of(root: str, view: Mapping[str, str]) -> Any:
    """`href(path, **params)` for templates: a link inside the dashboard that keeps the
    view's as-of date and period (empty params are left out)."""

    def href(path: str, **params: str) -> str:
        query = {**view, **{k: v for k, v in params.items() if v}}
        return f"{root}{path}" + (f"?{urlencode(query)}" if query else "")

    return href


def page(
    request: Request,
    template: str,
    status_code: int = 200,
    view: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """Render a template with what every page shows (root path, user, the day shown, the
    `href` helper keeping `view` in links)."""
    view = view or {}
    root = request.scope.get("root_path", "").rstrip("/")
    base = {
        "root": root,
        "user": user_of(request),
        "nav": "",
        "as_of": view.get("as_of") or today().isoformat(),
        "view_as_of": view.get("as_of", ""),
        "href": href_of(root, view),
    }
    html = ENV.get_template(template).render(**{**base, **values})
    return HTMLResponse(html, status_code=status_code)


def error_page(
    request: Request, status_code: int, heading: str, message: str, **more: Any
) -> HTMLResponse:
    return page(
        request, "error.html", status_code, heading=heading, message=message,
        hint=more.get("hint"), back=more.get("back"),
    )  # fmt: skip


def _failure(request: Request, exc: Exception) -> HTMLResponse:
    """A read model error as a readable page: 404 for an unknown id, 400 for a bad value."""
    if isinstance(exc, readmodel.NotFound):
        return error_page(request, 404, "Not found", str(exc), hint="It may have been archived.")
    return error_page(request, 400, "Bad request", str(exc))


# -- the tree ----------------------------------------------------------------------------------


def tree_page(request: Request) -> HTMLResponse:
    """GET /: the tree, optionally for a period and as of a date."""
    ctx = ctx_of(request)
    try:
        view = view_of(request)
        period = view.get("period")
        data = readmodel.tree(
            ctx.store, as_of=view_day(view), period=period, cfg=ctx.settings.signals,
            sources=ctx.sources(),
        )  # fmt: skip
    except (readmodel.NotFound, readmodel.BadParam) as exc:
        return _failure(request, exc)
    spans = _spans(ctx.store)
    note = empty_period_note(spans, period) if period and not data["objectives"] else None
    return page(
        request, "tree.html", nav="tree", view=view, objectives=nest(data["objectives"]),
        as_of=data["as_of"], as_of_param=view.get("as_of", ""), period=period or "",
        periods=periods_held(spans), note=note,
    )  # fmt: skip


def nest(objectives: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objectives as a forest, in the document's order: each shown under its parent
    (in its "children") when the parent is shown too, else at the top (a parent cycle is
    cut where it closes)."""
    ids = {o["id"] for o in objectives}
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in objectives:
        if o.get("parent") in ids and o["parent"] != o["id"]:
            children[o["parent"]].append(o)
    placed: set[str] = set()

    def place(o: dict[str, Any]) -> dict[str, Any]:
        placed.add(o["id"])
        kids = [place(c) for c in children[o["id"]] if c["id"] not in placed]
        return {**o, "children": kids}

    roots = [place(o) for o in objectives if o.get("parent") not in ids]
    return roots + [place(o) for o in objectives if o["id"] not in placed]


def _spans(store: Any) -> list[tuple[date, date]]:
    objectives, _, _ = store.active_tree_rows()
    return [(o.period_start, o.period_end) for o in objectives]


# -- a key result ------------------------------------------------------------------------------


@dataclass
class CheckinForm:
    """What the check-in form holds, and its errors by field ("form" for the whole form)."""

    value: str = ""
    confidence: str = ""
    note: str = ""
    at: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def kr_page(request: Request) -> HTMLResponse:
    """GET /kr/{id}: the key result, its chart, its check-ins and the check-in form."""
    return key_result_view(request, request.path_params["kr_id"], CheckinForm())


def key_result_view(
    request: Request, kr_id: str, form: CheckinForm, status_code: int = 200
) -> HTMLResponse:
    ctx = ctx_of(request)
    try:
        view = view_of(request) if request.method == "GET" else {}
        as_of = view_day(view)
        doc = readmodel.key_result(
            ctx.store, kr_id, as_of=as_of, cfg=ctx.settings.signals, sources=ctx.sources()
        )
        hist = readmodel.history(ctx.store, "key_result", kr_id)
    except (readmodel.NotFound, readmodel.BadParam) as exc:
        return _failure(request, exc)
    kr, obj = doc["key_result"], doc["objective"]
    user = user_of(request)
    data = kr_chart_data(kr, obj, hist, as_of)
    return page(
        request, "key_result.html", status_code, view=view, kr=kr, objective=obj,
        chart=Markup(charts.key_result_chart(data)),  # noqa: S704
        checkins=[_checkin_row(c) for c in hist.get("checkins", [])], form=form,
        errors=defaultdict(str, form.errors), csrf_token=TOKENS.issue(user) if user else "",
        recorded=request.query_params.get("recorded", "") if status_code == 200 else "",
    )  # fmt: skip


def _checkin_row(c: dict[str, Any]) -> dict[str, Any]:
    return {**c, "at": c["recorded_at"][:16].replace("T", " ") + " UTC"}


def _day(text: str) -> date:
    return date.fromisoformat(text[:10])


def kr_chart_data(
    kr: dict[str, Any], obj: dict[str, Any], hist: dict[str, Any], as_of: date | None = None
) -> charts.KeyResultData:
    """The chart's values up to the day shown (today, or the view's as-of date): check-ins
    by day, execution completion by snapshot day (the newest of each day) ending with the
    day shown's, the period and that day's marker."""
    day = as_of or today()
    execution: dict[date, float] = {}
    for snap in hist["snapshots"]:
        done = (snap["values"].get("execution") or {}).get("completion")
        if done is not None and _day(snap["as_of"]) <= day:
            execution[_day(snap["as_of"])] = float(done)
    if kr["execution"]["completion"] is not None:
        execution[day] = float(kr["execution"]["completion"])
    out = kr["outcome"]
    return charts.KeyResultData(
        title=f"{kr['title']}: check-ins against the expected pace",
        start=_day(obj["start"]),
        end=_day(obj["end"]),
        start_value=float(out["start"]),
        target_value=float(out["target"]),
        checkins=tuple(
            (_day(c["recorded_at"]), float(c["value"]))
            for c in hist.get("checkins", [])
            if _day(c["recorded_at"]) <= day
        ),
        execution=tuple(sorted(execution.items())),
        today=day,
        unit=kr.get("unit") or "",
        today_label="today" if as_of is None else f"as of {day}",
    )


# -- a check-in from the browser -----------------------------------------------------------------


async def checkin_post(request: Request) -> Response:
    """POST /kr/{id}/checkin: a signed-in user with a valid CSRF token records a reading;
    bad values re-render the form with the error beside the field; success is a 303 back to
    the key result."""
    from okrsync.web.access import require_user

    kr_id = request.path_params["kr_id"]
    try:
        user = require_user(request)
    except HTTPException as exc:
        return error_page(
            request, exc.status_code, "Sign-in needed", exc.detail or "check-ins need a user",
            hint='Serve the dashboard with [web] auth = "token" or "proxy" (docs/dashboard.md).',
            back=f"/kr/{kr_id}",
        )  # fmt: skip
    fields = await request.form()
    value, confidence, note, at = (
        str(fields.get(k) or "").strip() for k in ("value", "confidence", "note", "at")
    )
    form = CheckinForm(value, confidence, note, at)
    problem = TOKENS.problem(str(fields.get(FIELD) or ""), user)
    if problem:
        return error_page(
            request, 403, "Form expired or forged", f"Check-in refused: {problem}.",
            hint="Reload the key result's page and submit the form again.", back=f"/kr/{kr_id}",
        )  # fmt: skip
    return await run_in_threadpool(_record, request, kr_id, form, user)


def _record(request: Request, kr_id: str, form: CheckinForm, user: str) -> Response:
    value, confidence, at = parse_checkin(form, datetime.now(UTC))
    if form.errors:
        return key_result_view(request, kr_id, form, 400)
    ctx = ctx_of(request)
    try:
        readmodel.key_result(ctx.store, kr_id, cfg=ctx.settings.signals)  # active? else 404
    except (readmodel.NotFound, readmodel.BadParam) as exc:
        return _failure(request, exc)
    assert value is not None  # noqa: S101 - parse_checkin set an error otherwise
    c = ctx.store.add_checkin(
        kr_id, value, confidence=confidence, note=form.note or None, author=user, at=at
    )
    _snapshot(ctx, kr_id)
    root = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{root}/kr/{kr_id}?recorded={c.id}#checkins", status_code=303)


def parse_checkin(
    form: CheckinForm, now: datetime
) -> tuple[float | None, float | None, datetime | None]:
    """The form's value, confidence and time; each problem goes to `form.errors[field]`."""
    value = _number(form, "value", form.value, "the measured value, a number such as 9.4")
    confidence = None
    if form.confidence:
        confidence = _number(form, "confidence", form.confidence, "a number from 0 to 1")
        if confidence is not None and not 0 <= confidence <= 1:
            form.errors["confidence"] = f"confidence is from 0 to 1, got {form.confidence}"
    if len(form.note) > NOTE_MAX:
        form.errors["note"] = f"a note holds at most {NOTE_MAX} characters"
    return value, confidence, _when(form, now)


def _number(form: CheckinForm, name: str, text: str, what: str) -> float | None:
    if not text:
        form.errors[name] = f"give {what}"
        return None
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        form.errors[name] = f"{text!r} is not {what}"
        return None
    return number


def _when(form: CheckinForm, now: datetime) -> datetime | None:
    """The reading's time: a date is its midnight UTC, today's date is now; never the future."""
    if not form.at:
        return None
    try:
        day = date.fromisoformat(form.at)
    except ValueError:
        form.errors["at"] = f"a date like 2026-11-02, got {form.at!r}"
        return None
    if day > now.date():
        form.errors["at"] = f"{day} is in the future: a check-in records a reading already taken"
        return None
    return None if day == now.date() else datetime(day.year, day.month, day.day, tzinfo=UTC)


def _snapshot(ctx: Any, kr_id: str) -> None:
    """Recompute the objective the reading rolls into, as `okrsync checkin` does, so the
    key result's history shows it at once."""
    from okrsync.pipeline import recompute
    from okrsync.tree import load_tree_view

    for o in load_tree_view(ctx.store):
        if any(k.id == kr_id for k in o.key_results):
            tactics = {t.id for k in o.key_results for t in k.tactics}
            recompute(ctx.store, ctx.settings.signals, tactics=tactics or None)
            return


# -- a tactic and its items ----------------------------------------------------------------------


def tactic_page(request: Request) -> HTMLResponse:
    """GET /tactic/{id}: completion, counts (each linked to its items), charts, forecast."""
    ctx = ctx_of(request)
    tid = request.path_params["tactic_id"]
    try:
        view = view_of(request)
        as_of = view_day(view)
        doc = readmodel.tactic(ctx.store, tid, as_of=as_of, cfg=ctx.settings.signals)
        hist = readmodel.history(ctx.store, "tactic", tid)
    except (readmodel.NotFound, readmodel.BadParam) as exc:
        return _failure(request, exc)
    t, obj = doc["tactic"], doc["objective"]
    s = t["signals"]
    completion, scope = charts.tactic_charts(tactic_chart_data(t, obj, hist, as_of))
    text, cls = forecast_sentence(s, _day(obj["end"]))
    return page(
        request, "tactic.html", view=view, tactic=t, kr=doc["key_result"], s=s,
        period_start=obj["start"], period_end=obj["end"],
        counts=[{"label": label, "value": s[key], "filter": f} for label, key, f in COUNTS],
        completion_chart=Markup(completion), scope_chart=Markup(scope),  # noqa: S704
        forecast_text=text, forecast_class=cls,
    )  # fmt: skip


def forecast_sentence(s: dict[str, Any], end: date) -> tuple[str, str]:
    """The forecast finish against the period end, and a CSS class (late / on-time)."""
    finish = s.get("forecast_finish")
    if finish is None:
        why = (
            "nothing left to do"
            if s["items_total"] and not s["items_todo"] + s["items_in_progress"]
            else "no item done in the throughput window"
        )
        return f"No forecast: {why}; the period ends {end}.", "none"
    day = _day(finish)
    if day > end:
        return (
            f"Forecast finish {day}: {(day - end).days} days after the period ends ({end}).",
            "late",
        )
    return (
        f"Forecast finish {day}: {(end - day).days} days before the period ends ({end}).",
        "on-time",
    )


def tactic_chart_data(
    t: dict[str, Any], obj: dict[str, Any], hist: dict[str, Any], as_of: date | None = None
) -> charts.TacticData:
    """Completion, scope and throughput by snapshot day (the newest of each) up to the day
    shown (today, or the view's as-of date), then that day's."""
    day = as_of or today()
    by_day: dict[date, dict[str, Any]] = {
        _day(s["as_of"]): s["values"] for s in hist["snapshots"] if _day(s["as_of"]) <= day
    }
    by_day[day] = t["signals"]
    days = sorted(by_day)
    finish = t["signals"].get("forecast_finish")
    return charts.TacticData(
        title=t["title"],
        start=_day(obj["start"]),
        end=_day(obj["end"]),
        completion=tuple((d, by_day[d].get("completion")) for d in days),
        scope=tuple((d, float(by_day[d].get("items_total", 0))) for d in days),
        throughput=tuple((d, float(by_day[d].get("throughput_per_week", 0.0))) for d in days),
        forecast=_day(finish) if finish else None,
        today=day,
        today_label="today" if as_of is None else f"as of {day}",
    )


def items_page(request: Request) -> HTMLResponse:
    """GET /tactic/{id}/items?count=NAME: the items behind one count (all without one)."""
    ctx = ctx_of(request)
    tid = request.path_params["tactic_id"]
    count = request.query_params.get("count", "")
    if count not in FILTER_ARGS:
        known = ", ".join(f for f in FILTER_ARGS if f)
        return error_page(
            request, 400, "Bad request", f"count must be one of {known}, got {count!r}"
        )
    try:
        view = view_of(request)
        as_of = view_day(view)
        doc = readmodel.tactic(ctx.store, tid, as_of=as_of, cfg=ctx.settings.signals)
        found = readmodel.tactic_items(
            ctx.store, tid, as_of=as_of, cfg=ctx.settings.signals, **FILTER_ARGS[count]
        )
    except (readmodel.NotFound, readmodel.BadParam) as exc:
        return _failure(request, exc)
    return page(
        request, "items.html", view=view, tactic=doc["tactic"], kr=doc["key_result"], count=count,
        what=FILTER_LABELS[count] if count else "items", items=[_item(i) for i in found["items"]],
        filters=[{"filter": f, "label": label} for f, label in FILTER_LABELS.items()],
    )  # fmt: skip


def _item(i: dict[str, Any]) -> dict[str, Any]:
    """An item row; a URL is linked only when it is http(s) (never javascript: or data:)."""
    url = i.get("url") or ""
    return {**i, "url": url if url.startswith(("https://", "http://")) else None}


# -- admin -------------------------------------------------------------------------------------


def admin_page(request: Request) -> HTMLResponse:
    """GET /admin: every configured connector with its last run; the recent runs."""
    ctx = ctx_of(request)
    runs = readmodel.runs(ctx.store, limit=50)
    connectors = []
    for cc in ctx.settings.connectors:
        last = readmodel.runs(ctx.store, connector=cc.name, limit=1)
        row = _run_row(last[0]) if last else None
        connectors.append(
            {"name": cc.name, "type": cc.type, "schedule": cc.schedule, "enabled": cc.enabled,
             "last": row}
        )  # fmt: skip
    mode = (
        "Served by the daemon: connectors sync on their schedules."
        if ctx.service is not None
        else "Served without the daemon: the runs recorded in this store."
    )
    return page(
        request, "admin.html", nav="admin", mode=mode, connectors=connectors,
        runs=[_run_row(r) for r in runs],
    )  # fmt: skip


def _run_row(r: dict[str, Any]) -> dict[str, Any]:
    took = r["duration_s"]
    return {
        **r,
        "started": r["started_at"][:19].replace("T", " "),
        "took": "—" if took is None else f"{took:.1f}s",
        "wait": f"{r['rate_limit_wait_s']:.1f}s",
        "created": r["items_created"],
        "updated": r["items_updated"],
        "deleted": r["items_deleted"],
    }


def run_page(request: Request) -> HTMLResponse:
    """GET /admin/runs/{id}: the run's row and its lines from the JSON log file, if any."""
    ctx = ctx_of(request)
    try:
        run_id = int(request.path_params["run_id"])
        r = readmodel.run(ctx.store, run_id)
    except (ValueError, readmodel.NotFound) as exc:
        return error_page(
            request, 404, "Not found", f"no sync run {request.path_params['run_id']}: {exc}"
        )
    lines, note = log_lines(ctx.settings.logging.file, run_id)
    row = _run_row(r)
    fields = [
        ("connector", r["connector"]), ("trigger", r["trigger"]), ("status", r["status"]),
        ("started", r["started_at"]),
        ("ended", r["ended_at"] or "—"), ("took", row["took"]), ("host", r["host"] or "—"),
        ("pages", r["pages"]), ("requests", r["requests"]), ("retries", r["retries"]),
        ("rate-limit wait", row["wait"]),
        ("items", f"{row['created']} created, {row['updated']} updated, {row['deleted']} deleted"),
        ("lost scopes", ", ".join(r["lost_scopes"]) or "—"), ("error", r["error"] or "—"),
    ]  # fmt: skip
    return page(request, "run.html", nav="admin", run=r, fields=fields, lines=lines, log_note=note)


def log_lines(path: str | None, run_id: int) -> tuple[list[dict[str, str]], str | None]:
    """The run's lines of the daemon's JSON log file (the last LOG_LINES_MAX), and a note
    when there are none to show."""
    if not path:
        return (
            [],
            "No log file is configured ([logging] file): the daemon's log lines are not "
            "kept where the dashboard can read them.",
        )
    try:
        lines = [_log_row(e) for e in _run_events(Path(path), run_id)]
    except OSError as exc:
        return [], f"The log file cannot be read: {exc.strerror}."
    if not lines:
        return [], f"No line of run {run_id} in the log file (it may have been rotated)."
    return lines[-LOG_LINES_MAX:], None


def _run_events(path: Path, run_id: int) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if f"{run_id}" not in line:
                continue  # cheap pre-filter before parsing JSON
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and str(event.get("run_id")) == str(run_id):
                yield event


def _log_row(event: dict[str, Any]) -> dict[str, str]:
    rest = {k: v for k, v in event.items() if k not in ("timestamp", "level", "event")}
    details = " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in rest.items())
    return {
        "time": str(event.get("timestamp", ""))[:23].replace("T", " "),
        "level": str(event.get("level", "")),
        "event": str(event.get("event", "")),
        "details": details,
    }


routes: list[BaseRoute] = [
    Route("/", tree_page, methods=["GET"]),
    Route("/kr/{kr_id:str}", kr_page, methods=["GET"]),
    Route("/kr/{kr_id:str}/checkin", checkin_post, methods=["POST"]),
    Route("/tactic/{tactic_id:str}", tactic_page, methods=["GET"]),
    Route("/tactic/{tactic_id:str}/items", items_page, methods=["GET"]),
    Route("/admin", admin_page, methods=["GET"]),
    Route("/admin/runs/{run_id:int}", run_page, methods=["GET"]),
]
