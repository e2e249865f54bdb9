"""CLI command: `okrsync measure [KR ...] [--since DATE] [--probe]`: read key results'
sources now (docs/sources.md); reading and recording is okrsync.measuring's (shared
with the daemon), this module chooses and prints.

Each reading becomes a check-in (author `source:<kind>`, at the time the source measured
it); each run, good or failed, a row in `okrsync runs` (`source:<key result>`). A failed
source adds nothing and leaves earlier check-ins alone. `--since` backfills the history the
source keeps; `--probe` reads without recording. Exit 1 when any source failed, 2 on bad
input (an unknown key result, one without a source, a bad date).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from okrsync.cli_state import out, state_of
from okrsync.errors import ConfigError
from okrsync.textsafe import printable

if TYPE_CHECKING:  # imported where used, so `okrsync --version` stays light (cli_state)
    from okrsync.cli_state import State
    from okrsync.measuring import Outcome
    from okrsync.okrfile import KeyResult, OkrTree

KeyResults = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="KR",
        help="Key result ids (default: every key result with a source).",
        show_default=False,
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="YYYY-MM-DD",
        help="Backfill: record every reading the source keeps since this date (UTC).",
    ),
]
Probe = Annotated[
    bool, typer.Option("--probe", help="Read each source once and print it; record nothing.")
]
_PROBED = " (probe: not recorded)"


def measure(
    ctx: typer.Context,
    key_results: KeyResults = None,
    since: Since = None,
    probe: Probe = False,
) -> None:
    """Read the sources of key results now and record each reading as a check-in; with
    --since, also the history the source keeps; with --probe, record nothing."""
    state = state_of(ctx)
    chosen = pick(state.tree(), key_results or [])
    now = datetime.now(UTC)
    start = parse_since(since, now) if since is not None else None
    if not chosen:
        say("no key result has a source; add `source = { kind = ... }` (docs/sources.md)")
        return
    from okrsync.measuring import read_all

    outcomes = read_all(chosen, since=start, now=now, own_store_url=state.settings.store_url())
    failed = [o for o in outcomes if o.failure]
    if probe:
        for o in outcomes:
            say(_line(o, "" if o.failure else _PROBED))
    else:
        failed += record(state, outcomes)
    if failed:
        raise typer.Exit(1)


def probe_sources(state: State, tree: OkrTree) -> bool:
    """`mappings check --probe`: read every source once, print a line each, record nothing;
    whether all of them gave a reading."""
    from okrsync.measuring import read_all

    outcomes = read_all(pick(tree, []), since=None, now=datetime.now(UTC),
                        own_store_url=state.settings.store_url())  # fmt: skip
    for o in outcomes:
        say(_line(o, "" if o.failure else _PROBED))
    return not any(o.failure for o in outcomes)


def pick(tree: OkrTree, ids: Sequence[str]) -> list[KeyResult]:
    """The named key results (each must have a source), or every one with a source."""
    if not ids:
        return [k for k in tree.key_results.values() if k.metric_source is not None]
    chosen = []
    for ident in ids:
        kr = tree.key_results.get(ident)
        if kr is None:
            close = difflib.get_close_matches(ident, list(tree.key_results), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see `okrsync okrs show`"
            raise ConfigError(f"no key result {ident!r} in the mapping files{hint}")
        if kr.metric_source is None:
            raise ConfigError(
                f"key result {ident!r} ({kr.source}) has no source; add "
                '`source = { kind = "sql", ... }` to it (docs/sources.md)'
            )
        chosen.append(kr)
    return chosen


def parse_since(text: str, now: datetime) -> datetime:
    """`--since` as an aware UTC time: a date is its midnight; the future is refused."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since must be a date such as 2026-10-01, got {text!r}") from None
    parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    if parsed > now:
        raise ConfigError(f"--since {text} is in the future: backfill reads the past")
    return parsed


def record(state: State, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Record each outcome (okrsync.measuring), print its line; write the snapshots the new
    check-ins change. Returns the outcomes that could not be recorded."""
    from okrsync.measuring import Outcome, record

    unrecorded, added = [], 0
    for o in outcomes:
        done = record(state.store, o)
        added += done.added
        if o.failure:
            say(_line(o))
        elif done.failure:
            say(_line(Outcome(o.key_result, [], done.failure)))
            unrecorded.append(o)
        else:
            say(_line(o, _recorded(done.added, done.skipped)))
    if added:
        _snapshots(state)
    return unrecorded


def _snapshots(state: State) -> None:
    from okrsync.measuring import recompute_signals

    written = recompute_signals(state.store, state.settings.signals)
    say(f"{written} signal snapshot(s) written; see `okrsync history KR`")


def _recorded(added: int, skipped: int) -> str:
    if not skipped:
        return " (recorded)" if added == 1 else f" ({added} recorded)"
    return f" ({added} recorded, {skipped} already recorded)"


def _line(o: Outcome, tail: str = "") -> str:
    src = o.key_result.metric_source
    head = f"{o.key_result.id}  {src.kind if src else '?'}  "
    if o.failure:
        return f"{head}failed: {o.failure}"
    if not o.readings:
        return f"{head}no readings in that span{tail}"
    last = o.readings[-1]
    text = f"{last.value:g} at {_when(last.measured_at)}"
    if len(o.readings) > 1:
        text = f"{len(o.readings)} readings, {_when(o.readings[0].measured_at)} … {text}"
    return head + text + tail


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def say(text: str) -> None:
    """Plain text without markup or control characters (reasons quote other systems)."""
    out().print(printable(text), markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("measure")(measure)
