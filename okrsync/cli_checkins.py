"""CLI commands: `okrsync checkin` (record a reading, backdated or now; correct or delete one)
and `okrsync checkins` (a key result's readings, or with `--audit` every change to them).

Every check-in writes its signal snapshots at once: the key result's objective (its key
results and tactics) is recomputed as of today, so `okrsync history` shows the change
without a `recompute`. Bad input is a ConfigError naming the flag and the fix (exit 2).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from okrsync.cli_state import err, out, state_of
from okrsync.errors import ConfigError
from okrsync.textsafe import markup_safe as safe

if TYPE_CHECKING:  # imported where used, so `okrsync --version` stays light (cli_state)
    from okrsync.cli_state import State
    from okrsync.store import Checkin, CheckinChange
    from okrsync.tree import KeyResultView, ObjectiveView

AT_FORMS = (
    "2026-11-02 or 2026-11-02T09:00 (UTC unless it names a zone, e.g. 2026-11-02T09:00+01:00)"
)

KeyResultArg = Annotated[
    str | None,
    typer.Argument(
        help="Key result id, e.g. trial-conversion (not needed with --correct/--delete)."
    ),
]
Value = Annotated[
    str | None,
    typer.Option(
        "--value", "-v", metavar="NUMBER", help="The measured value, a number such as 9.4."
    ),
]
At = Annotated[
    str | None,
    typer.Option(
        "--at",
        metavar="WHEN",
        help="When the reading was taken: YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC unless a zone is "
        "given (default: now; never in the future). With --correct: the new time "
        "(default: the check-in's own).",
    ),
]
Correct = Annotated[
    int | None,
    typer.Option(
        "--correct", metavar="ID", min=1, help="Correct check-in ID (see `okrsync checkins KR`)."
    ),
]
Delete = Annotated[
    int | None,
    typer.Option("--delete", metavar="ID", min=1, help="Delete check-in ID (kept in the audit)."),
]
Confidence = Annotated[float | None, typer.Option("--confidence", min=0.0, max=1.0, help="0..1")]
Note = Annotated[str | None, typer.Option("--note", "-n", help="A note kept with the reading.")]
Author = Annotated[
    str | None, typer.Option("--author", help="Who records it (default: the OS user).")
]
Reason = Annotated[
    str | None, typer.Option("--reason", help="Why a check-in is corrected or deleted (audit).")
]


def checkin(
    ctx: typer.Context,
    key_result: KeyResultArg = None,
    value: Value = None,
    at: At = None,
    correct: Correct = None,
    delete: Delete = None,
    confidence: Confidence = None,
    note: Note = None,
    author: Author = None,
    reason: Reason = None,
) -> None:
    """Record a key result's measured value (the only way its progress changes), at its real
    time with --at; or correct (--correct ID --value V) or delete (--delete ID) a check-in,
    keeping who, when and the old value in its audit trail (`okrsync checkins KR --audit`)."""
    _check_flags(key_result, correct, delete, value=value, at=at, confidence=confidence,
                 note=note, reason=reason)  # fmt: skip
    now = datetime.now(UTC)
    when = parse_at(at, now) if at is not None else None
    number = parse_value(value) if delete is None else math.nan
    who = author or os_user()
    state = state_of(ctx)
    if delete is not None:
        kr_id = _delete(state, delete, key_result, who, reason)
    elif correct is not None:
        change = _change(who, now, reason, when, confidence, note, key_result)
        kr_id = _correct(state, correct, number, change)
    else:
        assert key_result is not None  # noqa: S101 - _check_flags
        c = state.store.add_checkin(
            key_result, number, confidence=confidence, note=note, author=who, at=when
        )
        out().print(
            f"checked in {safe(key_result)} = {c.value:g} at {_when(c)} (#{c.id}{_by(who)})"
        )
        kr_id = key_result
    _after_checkin(state, kr_id, when)


def _check_flags(
    key_result: str | None, correct: int | None, delete: int | None, **given: object
) -> None:
    """The combinations of KR, --correct, --delete and the other flags that mean something:
    the rest is refused, never ignored."""
    if correct is not None and delete is not None:
        raise ConfigError("give --correct ID or --delete ID, not both")
    if key_result is None and correct is None and delete is None:
        raise ConfigError(
            "which key result? give its id (`okrsync checkin KR --value V`), "
            "or --correct ID / --delete ID for an existing check-in"
        )
    named = {k for k, v in given.items() if v is not None}
    if delete is not None and named - {"reason"}:
        flags = ", ".join(f"--{k}" for k in sorted(named - {"reason"}))
        raise ConfigError(
            f"--delete takes no {flags}: it removes the whole reading; "
            "to change one use --correct ID --value V"
        )
    if delete is None and "value" not in named:
        raise ConfigError("--value is missing: give the measured value, e.g. --value 9.4")
    if correct is None and delete is None and "reason" in named:
        raise ConfigError(
            "--reason is for --correct and --delete; a new reading's note goes in --note"
        )


def parse_value(text: str | None) -> float:
    """`--value` as a finite number."""
    try:
        number = float(text or "")
    except ValueError:
        raise ConfigError(f"--value must be a number such as 9.4, got {text!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"--value must be a finite number such as 9.4, got {text!r}")
    return number


def parse_at(text: str, now: datetime) -> datetime:
    """`--at` as an aware UTC time: a date is its midnight; no zone means UTC; the future is
    refused (a check-in records a reading already taken)."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--at must be a date or time like {AT_FORMS}; got {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    if parsed > now:
        raise ConfigError(
            f"--at {text} is in the future (now {now:%Y-%m-%d %H:%M} UTC): a check-in records "
            "a reading already taken; leave --at out to record it as of now"
        )
    return parsed


def os_user() -> str | None:
    """The OS user's login name, when the system knows one."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (some containers)
        return None


def _change(
    who: str | None,
    now: datetime,
    reason: str | None,
    at: datetime | None = None,
    confidence: float | None = None,
    note: str | None = None,
    key_result: str | None = None,
) -> CheckinChange:
    from okrsync.store import CheckinChange

    return CheckinChange(
        by=who,
        when=now,
        reason=reason,
        at=at,
        confidence=confidence,
        note=note,
        key_result_id=key_result,
    )


def _correct(state: State, checkin_id: int, value: float, change: CheckinChange) -> str:
    before, after = state.store.correct_checkin(checkin_id, value, change)
    out().print(
        f"corrected check-in #{checkin_id} of {safe(after.key_result_id)}: "
        f"{before.value:g} at {_when(before)} → {after.value:g} at {_when(after)}{_by(change.by)}"
    )
    return after.key_result_id


def _delete(
    state: State, checkin_id: int, key_result: str | None, who: str | None, reason: str | None
) -> str:
    change = _change(who, datetime.now(UTC), reason, key_result=key_result)
    gone = state.store.delete_checkin(checkin_id, change)
    kr = safe(gone.key_result_id)
    out().print(
        f"deleted check-in #{checkin_id} of {kr} ({gone.value:g} at {_when(gone)}){_by(who)}; "
        f"its values stay in `okrsync checkins {kr} --audit`"
    )
    return gone.key_result_id


def _when(c: Checkin) -> str:
    return f"{c.recorded_at:%Y-%m-%d %H:%M} UTC"


def _by(who: str | None) -> str:
    return f", by {safe(who)}" if who else ""


def _after_checkin(state: State, key_result_id: str, at: datetime | None) -> None:
    """Warn about a reading before its period; write the snapshots the check-in changed."""
    from okrsync.tree import load_tree_view

    found = _find(load_tree_view(state.store), key_result_id)
    if found is None:  # an archived key result: nothing of it is computed
        return
    objective, _ = found
    if at is not None and at.date() < objective.start:
        err().print(
            f"note: {at:%Y-%m-%d %H:%M} UTC is before the period of {safe(key_result_id)} "
            f"({objective.start} … {objective.end}); recorded as a baseline, it is the "
            "current value until a newer reading",
            highlight=False,
        )
    written = snapshot(state, objective)
    if written:
        out().print(
            f"{written} signal snapshot(s) written; see `okrsync history {safe(key_result_id)}`"
        )
    else:
        out().print(
            "no snapshot written: today's signals are unchanged (a newer reading is current, "
            f"or the change does not show in them); see `okrsync checkins {safe(key_result_id)}`"
        )


def _find(
    objectives: list[ObjectiveView], key_result_id: str
) -> tuple[ObjectiveView, KeyResultView] | None:
    for o in objectives:
        for k in o.key_results:
            if k.id == key_result_id:
                return o, k
    return None


def snapshot(state: State, objective: ObjectiveView) -> int:
    """Recompute the objective the check-in rolls into (its key results and tactics) as of
    today and snapshot what changed; the whole tree when it has no tactic to scope by."""
    from okrsync.pipeline import recompute

    tactics = {t.id for k in objective.key_results for t in k.tactics}
    report = recompute(state.store, state.settings.signals, tactics=tactics or None)
    return report.snapshots_written


def checkins(
    ctx: typer.Context,
    key_result: Annotated[str, typer.Argument(help="Key result id.")],
    audit: Annotated[
        bool,
        typer.Option(
            "--audit", help="Every check-in added, corrected or deleted: who, when, old value."
        ),
    ] = False,
) -> None:
    """List a key result's check-ins (id, time, value, progress, author), oldest first; with
    --audit its audit trail instead."""
    from okrsync.render import render_checkin_audit, render_checkins
    from okrsync.tree import load_tree_view

    state = state_of(ctx)
    found = _find(load_tree_view(state.store), key_result)
    if found is None:
        raise ConfigError(f"no active key result {key_result!r}; see `okrsync okrs show`")
    view = found[1]
    trail = state.store.checkin_audit(key_result)
    if audit:
        render_checkin_audit(out(), view, trail)
        return
    render_checkins(out(), view, state.store.checkins(key_result))
    fixed = sum(a.action == "correct" for a in trail)
    gone = sum(a.action == "delete" for a in trail)
    if fixed or gone:
        out().print(
            f"{fixed} correction(s), {gone} deletion(s): "
            f"`okrsync checkins {safe(key_result)} --audit`"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("checkin")(checkin)
    app.command("checkins")(checkins)
