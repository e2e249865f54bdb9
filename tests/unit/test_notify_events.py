"""Events from what changed (okrsync.notify.events): pure functions of consecutive snapshots,
sync runs and check-in dates, with keys derived from the rows they were read from."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from okrsync.config_notify import EmailChannel
from okrsync.notify.channels import owner_addresses, recipients
from okrsync.notify.events import (
    RunFact,
    Silence,
    reminder_events,
    run_events,
    snapshot_events,
)
from okrsync.okrfile import OkrFileError, load_tree
from okrsync.signal_types import KeyResultInfo, ObjectiveInfo, Snapshot, Structure, TacticInfo
from tests.helpers import TREE, write

START, END = date(2026, 10, 1), date(2026, 12, 31)
AT = datetime(2026, 11, 15, 12, tzinfo=UTC)


def structure() -> Structure:
    s = Structure()
    s.objectives["grow"] = ObjectiveInfo("grow", "Grow", "Dana", "2026-Q4", START, END, None, 1)
    s.key_results["conv"] = KeyResultInfo("conv", "grow", "Conversion", "%", 0, 100, "increase", 1)
    s.tactics["checkout"] = TacticInfo("checkout", "conv", "Checkout revamp", 1)
    return s


def kr(status: str, flags: tuple[str, ...] = (), progress: float = 0.4) -> dict[str, Any]:
    return {
        "outcome": {"status": status, "progress": progress, "expected": 0.5, "current": 40,
                    "start": 0, "target": 100, "checked_in_at": None},
        "execution": {"completion": 0.9, "status": "on_track", "tactics_with_data": 1},
        "flags": list(flags),
    }  # fmt: skip


def tactic(status: str, forecast: str | None) -> dict[str, Any]:
    return {"execution_status": status, "forecast_finish": forecast, "completion": 0.5,
            "items_done": 5, "items_total": 10, "throughput_per_week": 2.0}  # fmt: skip


def snap(kind: str, sid: str, values: dict[str, Any]) -> Snapshot:
    return Snapshot(kind, sid, AT.date(), AT, values)


def test_a_key_result_turning_at_risk_is_one_status_event_keyed_by_its_snapshot() -> None:
    """on_track → at_risk: one `status` event with the figures; its key names the snapshot id."""
    pairs = [
        (
            (7, snap("key_result", "conv", kr("on_track"))),
            (9, snap("key_result", "conv", kr("at_risk"))),
        )
    ]
    [event] = snapshot_events(pairs, structure())
    assert (event.kind, event.before, event.after) == ("status", "on_track", "at_risk")
    assert event.key == "status:key_result:conv:9"
    assert event.objective_id == "grow"
    assert event.figures["progress"] == 0.4
    assert event.figures["expected"] == 0.5


def test_unchanged_status_a_first_snapshot_and_an_archived_subject_say_nothing() -> None:
    """Same status (only figures moved), a subject's first snapshot, a subject not in the tree."""
    same = ((1, snap("key_result", "conv", kr("on_track", progress=0.6))),
            (2, snap("key_result", "conv", kr("on_track", progress=0.7))))  # fmt: skip
    first = (None, (3, snap("key_result", "conv", kr("at_risk"))))
    gone = (
        (4, snap("key_result", "old", kr("on_track"))),
        (5, snap("key_result", "old", kr("off_track"))),
    )
    assert snapshot_events([same, first, gone], structure()) == []


def test_a_divergence_flag_appearing_and_clearing_are_two_events() -> None:
    """A flag set on one snapshot and gone on the next: `flag` events with the flag named."""
    a = snap("key_result", "conv", kr("on_track"))
    b = snap("key_result", "conv", kr("on_track", ("output_without_outcome",)))
    events = snapshot_events([((1, a), (2, b)), ((2, b), (3, a))], structure())
    assert [(e.kind, e.before, e.after, e.key) for e in events] == [
        ("flag", None, "output_without_outcome", "flag:key_result:conv:2:output_without_outcome"),
        ("flag", "output_without_outcome", None, "flag:key_result:conv:3:output_without_outcome"),
    ]


def test_a_tactic_forecast_moving_past_the_period_end_and_back() -> None:
    """Forecast 2026-12-20 → 2027-01-10 (past the end 2026-12-31) and back: `forecast`
    events; a status change of the same snapshot is its own event."""
    a = snap("tactic", "checkout", tactic("on_track", "2026-12-20"))
    b = snap("tactic", "checkout", tactic("at_risk", "2027-01-10"))
    events = snapshot_events([((1, a), (2, b)), ((2, b), (3, a))], structure())
    assert [(e.kind, e.before, e.after) for e in events] == [
        ("status", "on_track", "at_risk"),
        ("forecast", "by_end", "past_end"),
        ("status", "at_risk", "on_track"),
        ("forecast", "past_end", "by_end"),
    ]
    assert events[1].figures["period_end"] == "2026-12-31"


def run(rid: int, status: str, previous: tuple[str, ...]) -> RunFact:
    return RunFact(rid, "jira", status, "HTTP 401" if status == "failed" else None, AT, previous)


def test_a_connector_is_failing_at_exactly_the_nth_failure_and_recovers_once() -> None:
    """With 3: the 3rd failure in a row is an event, the 2nd and 4th are not; the ok run
    after 4 failures is `connector_recovered` with the streak; an ok after 2 is nothing."""
    runs = [
        run(2, "failed", ("failed",)),
        run(3, "failed", ("failed", "failed", "ok")),
        run(4, "failed", ("failed", "failed", "failed")),
        run(5, "ok", ("failed", "failed", "failed", "failed", "ok")),
        run(6, "ok", ("failed", "failed", "ok")),
    ]
    events = run_events(runs, 3)
    assert [(e.kind, e.key, e.figures["failures"]) for e in events] == [
        ("connector_failing", "connector_failing:jira:3", 3),
        ("connector_recovered", "connector_recovered:jira:5", 4),
    ]


def test_a_reminder_is_sent_once_per_n_days_of_silence() -> None:
    """Every 7 days: 6 days silent → none; 7 and 13 days → the same key (one reminder);
    14 days → a second; a new check-in starts over; no check-in counts from the period
    start; a period not running → none."""

    def keys(today: date, checkin: tuple[int, datetime] | None) -> list[str]:
        cid, at = checkin if checkin else (None, None)
        s = Silence("conv", cid, at, START, END)
        return [e.key for e in reminder_events([s], structure(), today, 7)]

    last = (12, datetime(2026, 11, 1, 9, tzinfo=UTC))
    assert keys(date(2026, 11, 7), last) == []
    assert keys(date(2026, 11, 8), last) == keys(date(2026, 11, 14), last)
    assert keys(date(2026, 11, 8), last) == ["checkin_reminder:conv:12:1"]
    assert keys(date(2026, 11, 15), last) == ["checkin_reminder:conv:12:2"]
    assert keys(date(2026, 11, 8), None) == ["checkin_reminder:conv:0:5"]
    assert keys(date(2027, 1, 5), last) == []
    assert (
        reminder_events([Silence("conv", None, None, START, END)], structure(), AT.date(), 0) == []
    )


def test_a_key_result_owner_is_read_from_the_mapping_file(mapping_dir: Path) -> None:
    """`owner` on a [[key_result]] is kept as written (trimmed); without it, None."""
    write(
        mapping_dir / "okrs.toml",
        TREE.replace('unit = "%"', 'unit = "%"\nowner = " Lee <lee@acme.com> "'),
    )
    tree = load_tree([mapping_dir])
    assert tree.key_results["conv"].owner == "Lee <lee@acme.com>"
    assert tree.key_results["latency"].owner is None


@pytest.mark.parametrize("value", ["42", '""', '"Lee\\nBcc: x@evil.com"'])
def test_a_key_result_owner_that_is_not_one_line_of_text_is_refused(
    mapping_dir: Path, value: str
) -> None:
    """A number, an empty string or a line break as `owner`: a problem at its file:line."""
    write(mapping_dir / "okrs.toml", TREE.replace('unit = "%"', f'unit = "%"\nowner = {value}'))
    with pytest.raises(OkrFileError) as info:
        load_tree([mapping_dir])
    (msg,) = info.value.problems
    assert msg.startswith(f"{mapping_dir / 'okrs.toml'}:12: 'owner' must be one line of text")


def owned(kr_owner: str | None, objective_owner: str | None = "Dana") -> Structure:
    s = structure()
    obj, k = s.objectives["grow"], s.key_results["conv"]
    s.objectives["grow"] = ObjectiveInfo(obj.id, obj.title, objective_owner, obj.period,
                                         obj.start, obj.end, obj.parent, obj.weight)  # fmt: skip
    s.key_results["conv"] = KeyResultInfo(k.id, k.objective_id, k.title, k.unit, k.start,
                                          k.target, k.direction, k.weight, kr_owner)  # fmt: skip
    return s


def test_a_reminder_names_the_key_result_owner_else_the_objective_owner() -> None:
    """The key result's own owner when it has one; the objective's owner otherwise."""

    def owner(s: Structure) -> Any:
        [event] = reminder_events([Silence("conv", None, None, START, END)], s, AT.date(), 7)
        return event.figures["owner"]

    assert owner(owned("Lee <lee@acme.com>")) == "Lee <lee@acme.com>"
    assert owner(owned(None)) == "Dana"
    assert owner(owned(None, None)) is None


def test_owner_addresses_are_parsed_from_the_owner_text() -> None:
    """ "Name <address>" and a bare address give the address; a bare name gives none."""
    assert owner_addresses("Dana <dana@acme.com>") == ["dana@acme.com"]
    assert owner_addresses("dana@acme.com") == ["dana@acme.com"]
    assert owner_addresses("Dana") == []
    assert owner_addresses(None) == []


def test_a_reminder_adds_the_owner_to_the_recipients_only_with_remind_owners() -> None:
    """remind_owners: the owner's address joins `to` for a reminder (once), not for other
    events; without it, or for an owner without an address, `to` alone."""
    base = {"name": "mail", "kind": "email", "smtp_host": "localhost",
            "from": "okr@acme.com", "to": ["team@acme.com", "Lead@acme.com"]}  # fmt: skip
    on, off = EmailChannel(**base, remind_owners=True), EmailChannel(**base)
    [event] = reminder_events(
        [Silence("conv", None, None, START, END)], owned("Lee <lee@acme.com>"), AT.date(), 7
    )
    assert recipients(on, event) == ["team@acme.com", "Lead@acme.com", "lee@acme.com"]
    assert recipients(off, event) == ["team@acme.com", "Lead@acme.com"]
    lead = reminder_events(
        [Silence("conv", None, None, START, END)], owned("lead@acme.com"), AT.date(), 7
    )
    assert recipients(on, lead[0]) == ["team@acme.com", "Lead@acme.com"]
    bare = reminder_events([Silence("conv", None, None, START, END)], owned("Lee"), AT.date(), 7)
    assert recipients(on, bare[0]) == ["team@acme.com", "Lead@acme.com"]
    status = dataclasses.replace(event, kind="status")  # the same owner, another event
    assert recipients(on, status) == ["team@acme.com", "Lead@acme.com"]
