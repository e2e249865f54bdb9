"""Backdated, corrected and deleted check-ins through the real CLI: the reading's own time,
the audit trail (who, when, the old value) and the snapshots each one writes at once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from okrsync.store import Checkin, Store
from tests.helpers import TREE, CliResult, run_cli, write

CONFIG = """
[store]
url = "sqlite:///data/okrsync.db"

[mappings]
paths = ["okrs"]
"""
NOV_2_9AM = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def setup(tmp_path: Path) -> Path:
    """A config and the helpers' tree (conv 8 → 12, latency 40 → 10; 2026-Q4) loaded."""
    write(tmp_path / "okrsync.toml", CONFIG)
    write(tmp_path / "okrs" / "main.toml", TREE)
    assert run_cli("okrs", "sync", cwd=tmp_path).code == 0
    return tmp_path


def ok(cwd: Path, *args: str) -> CliResult:
    """`okrsync ARGS`, which must succeed."""
    r = run_cli(*args, cwd=cwd)
    assert r.code == 0, r.stderr
    return r


def words(text: str) -> str:
    """Text with rich's table borders and line wrapping undone."""
    return " ".join(re.sub("[\u2500-\u257f]", " ", text).split())


def stored(cwd: Path, key_result: str = "conv") -> list[Checkin]:
    store = Store.open(f"sqlite:///{cwd / 'data' / 'okrsync.db'}")
    try:
        return store.checkins(key_result)
    finally:
        store.close()


def test_backdated_checkin_keeps_its_time_and_shows_in_history_at_once(tmp_path: Path) -> None:
    """`--at` records the reading at its own time with its author, and `history` shows the
    new outcome right away: no recompute or sync ran before it."""
    cwd = setup(tmp_path)
    assert run_cli("history", "conv", cwd=cwd).code == 2  # no snapshot yet
    r = ok(cwd, "checkin", "conv", "--value", "9", "--at", "2026-11-02T09:00", "--author", "dana")
    assert "checked in conv = 9 at 2026-11-02 09:00 UTC (#1, by dana)" in r.stdout
    assert "snapshot(s) written" in r.stdout
    (c,) = stored(cwd)
    assert (c.value, c.recorded_at, c.author) == (9.0, NOV_2_9AM, "dana")
    history = words(ok(cwd, "history", "conv").stdout)
    assert "outcome.progress 0.25" in history
    assert "outcome.progress" in words(ok(cwd, "history", "grow").stdout)  # its objective too


def test_at_takes_a_date_a_utc_time_or_a_zoned_time(tmp_path: Path) -> None:
    """A date alone is 00:00 UTC; a time without a zone is UTC; a zoned time is converted."""
    cwd = setup(tmp_path)
    for at in ("2026-11-03", "2026-11-04T10:00+01:00", "2026-11-05 17:30"):
        ok(cwd, "checkin", "conv", "--value", "9", "--at", at)
    assert [c.recorded_at for c in stored(cwd)] == [
        datetime(2026, 11, 3, tzinfo=UTC),
        datetime(2026, 11, 4, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 5, 17, 30, tzinfo=UTC),
    ]


def test_a_backdated_reading_older_than_the_newest_does_not_replace_it(tmp_path: Path) -> None:
    """The newest reading is the latest by time, not the last entered: `okrs show` keeps 10,
    the history gets no snapshot, and `checkins` lists the readings in time order."""
    cwd = setup(tmp_path)
    ok(cwd, "checkin", "conv", "--value", "10", "--at", "2026-11-20")
    r = ok(cwd, "checkin", "conv", "--value", "9", "--at", "2026-11-02")
    assert "no snapshot written: today's signals are unchanged" in words(r.stdout)
    assert "now 10" in ok(cwd, "okrs", "show").stdout
    listing = ok(cwd, "checkins", "conv").stdout
    assert listing.index("2026-11-02 00:00") < listing.index("2026-11-20 00:00")
    assert [c.value for c in stored(cwd)] == [9.0, 10.0]


def test_a_reading_before_the_period_start_is_kept_with_a_note(tmp_path: Path) -> None:
    """A check-in before the key result's period (2026-Q4) is recorded, with a note on stderr
    that it is the baseline until a newer reading."""
    cwd = setup(tmp_path)
    r = ok(cwd, "checkin", "conv", "--value", "8.1", "--at", "2026-09-15")
    assert "before the period of conv (2026-10-01 … 2026-12-31)" in words(r.stderr)
    assert [c.value for c in stored(cwd)] == [8.1]


def test_correction_keeps_the_time_and_the_old_value_in_the_audit(tmp_path: Path) -> None:
    """`--correct ID --value V` changes the value, keeps the reading's time and author, and
    the audit names who corrected it, when, the reading before and after, and why."""
    cwd = setup(tmp_path)
    ok(cwd, "checkin", "conv", "--value", "9", "--at", "2026-11-02T09:00", "--author", "dana")
    args = ("--correct", "1", "--value", "9.5", "--author", "lee", "--reason", "typo")
    r = ok(cwd, "checkin", *args)
    assert (
        "corrected check-in #1 of conv: 9 at 2026-11-02 09:00 UTC → 9.5 at 2026-11-02 09:00 UTC, "
        "by lee" in words(r.stdout)
    )
    (c,) = stored(cwd)
    assert (c.id, c.value, c.recorded_at, c.author) == (1, 9.5, NOV_2_9AM, "dana")
    assert "1 correction(s), 0 deletion(s)" in ok(cwd, "checkins", "conv").stdout
    audit = words(ok(cwd, "checkins", "conv", "--audit").stdout)
    assert "dana added #1 — 9 at 2026-11-02 09:00" in audit
    assert "lee corrected #1 9 at 2026-11-02 09:00 9.5 at 2026-11-02 09:00 typo" in audit
    assert "outcome.progress: 0.25 → 0.375" in words(ok(cwd, "history", "conv").stdout)
    ok(cwd, "checkin", "conv", "--correct", "1", "--value", "9.5", "--at", "2026-11-03T08:00")
    assert [c.recorded_at for c in stored(cwd)] == [datetime(2026, 11, 3, 8, 0, tzinfo=UTC)]


def test_deletion_hides_the_reading_from_progress_and_keeps_it_in_the_audit(
    tmp_path: Path,
) -> None:
    """`--delete ID` takes the newest reading out of progress (the one before is current
    again, snapshotted at once); the audit keeps its values; its id is never reused and
    cannot be corrected."""
    cwd = setup(tmp_path)
    ok(cwd, "checkin", "conv", "--value", "9", "--at", "2026-11-02")
    ok(cwd, "checkin", "conv", "--value", "10", "--at", "2026-11-09")
    r = ok(cwd, "checkin", "--delete", "2", "--author", "lee", "--reason", "wrong export")
    assert "deleted check-in #2 of conv (10 at 2026-11-09 00:00 UTC), by lee" in words(r.stdout)
    assert "snapshot(s) written" in r.stdout
    assert "now 9" in ok(cwd, "okrs", "show").stdout
    assert "outcome.progress: 0.5 → 0.25" in words(ok(cwd, "history", "conv").stdout)
    assert [c.id for c in stored(cwd)] == [1]
    audit = words(ok(cwd, "checkins", "conv", "--audit").stdout)
    assert "lee deleted #2 10 at 2026-11-09 00:00 — wrong export" in audit
    again = run_cli("checkin", "--correct", "2", "--value", "11", cwd=cwd)
    assert again.code == 2
    assert "check-in #2 of 'conv' was deleted on" in words(again.stderr)
    r = ok(cwd, "checkin", "conv", "--value", "11")
    assert "(#3" in r.stdout


def test_a_check_in_id_given_with_another_key_result_is_refused(tmp_path: Path) -> None:
    """`checkin latency --correct 1` where #1 is conv's: exit 2 naming the owner; unchanged."""
    cwd = setup(tmp_path)
    ok(cwd, "checkin", "conv", "--value", "9")
    r = run_cli("checkin", "latency", "--correct", "1", "--value", "30", cwd=cwd)
    assert r.code == 2
    assert "check-in #1 belongs to key result 'conv', not 'latency'" in words(r.stderr)
    assert [c.value for c in stored(cwd)] == [9.0]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One loaded store with check-in #1 of conv, shared by the bad-input cases (which
    change nothing)."""
    cwd = setup(tmp_path_factory.mktemp("bad-input"))
    ok(cwd, "checkin", "conv", "--value", "9", "--at", "2026-11-02")
    yield cwd
    assert [(c.id, c.value) for c in stored(cwd)] == [(1, 9.0)]  # nothing was written


BAD_INPUT = [
    (("conv", "--value", "9", "--at", "2099-01-01"), "--at 2099-01-01 is in the future"),
    (("conv", "--value", "9", "--at", "2026-13-01"), "--at must be a date or time like"),
    (("conv", "--value", "9", "--at", "last monday"), "--at must be a date or time like"),
    (("conv", "--value", "abc"), "--value must be a number such as 9.4, got 'abc'"),
    (("conv", "--value", "nan"), "--value must be a finite number"),
    (("conv", "--value", "9,5"), "--value must be a number such as 9.4"),
    (("conv",), "--value is missing"),
    (("--value", "9"), "which key result?"),
    (("nope", "--value", "9"), "no key result 'nope'"),
    (("--correct", "99", "--value", "9"), "no check-in #99"),
    (("--correct", "1", "--delete", "1"), "give --correct ID or --delete ID, not both"),
    (("--delete", "1", "--value", "9"), "--delete takes no --value"),
    (("--delete", "1", "--at", "2026-11-02"), "--delete takes no --at"),
    (("conv", "--value", "9", "--reason", "x"), "--reason is for --correct and --delete"),
    (("--correct", "x", "--value", "9"), "'--correct'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_exits_2_naming_the_flag_and_the_fix(
    loaded: Path, args: tuple[str, ...], message: str
) -> None:
    """Unknown ids, bad dates, values that are no number, future times and flags that mean
    nothing together: exit 2, a message naming the flag, no traceback, nothing written."""
    r = run_cli("checkin", *args, cwd=loaded)
    assert r.code == 2, r.stdout
    assert message in words(r.stderr)
    assert "Traceback" not in r.stderr
