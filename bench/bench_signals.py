"""Signals at scale: 1M linked items across 10k tactics on SQLite.

    python -m bench.bench_signals [--items N] [--tactics N] [--tactics-per-kr N]
                                  [--krs-per-objective N] [--db PATH] [--json PATH]

Prints the time of a full recompute (SQL aggregates + roll-ups + snapshots), a second full
recompute with nothing changed (no snapshot written), and the incremental path after a few
items change (`Store.linked_tactics` + `pipeline.recompute(tactics=...)`; a changed tactic brings
its whole objective into scope, so the tree's shape sets that cost). Data is written with bulk
Core inserts, not page by page, then checkpointed out of the WAL (a daemon's WAL never holds
the whole store; left there, the first recompute's commit would copy it back and be charged).
`--json PATH` also writes every printed figure as a `python -m bench` table row; at 1M items
/ 10k tactics the full recomputes are held to < 5 s and the incremental median to < 100 ms.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from okrsync import signals
from okrsync.config import SignalsConfig
from okrsync.pipeline import recompute, signals_of
from okrsync.store import Store
from okrsync.store.tables import ITEM_LINK, KEY_RESULT, OBJECTIVE, TACTIC, WORK_ITEM

T = TypeVar("T")
Row = dict[str, object]
AS_OF = date(2026, 11, 15)
START = date(2026, 10, 1)
STATUSES = ("todo", "in_progress", "done", "done", "dropped")
BATCH = 20_000
TARGET_SIZE = (1_000_000, 10_000)  # items, tactics: the size the targets are stated for
FULL_TARGET_S = 5.0
INCREMENTAL_TARGET_MS = 100.0
CPU = [0.0]  # CPU seconds of the last timed call: the machine may be shared


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """The value and the wall time; CPU time of the last call is kept in CPU[0]."""
    t0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    CPU[0] = time.process_time() - c0
    return value, time.perf_counter() - t0


def populate_tree(conn: sa.Connection, tactics: int, per_kr: int, per_obj: int) -> None:
    """Objectives → key results → tactics: `per_kr` tactics per KR, `per_obj` KRs each."""
    now = datetime.now(UTC)
    krs = max(1, tactics // per_kr)
    objs = max(1, krs // per_obj)
    conn.execute(sa.insert(OBJECTIVE), [
        {"id": f"o{i}", "title": f"Objective {i}", "period": "2026-Q4", "period_start": START,
         "period_end": date(2026, 12, 31), "weight": 1.0, "source": "", "updated_at": now}
        for i in range(objs)
    ])  # fmt: skip
    conn.execute(sa.insert(KEY_RESULT), [
        {"id": f"k{i}", "objective_id": f"o{i % objs}", "title": f"KR {i}", "start_value": 0.0,
         "target_value": 100.0, "direction": "increase", "weight": 1.0, "source": "",
         "updated_at": now}
        for i in range(krs)
    ])  # fmt: skip
    conn.execute(sa.insert(TACTIC), [
        {"id": f"t{i}", "key_result_id": f"k{min(i // per_kr, krs - 1)}", "title": f"Tactic {i}",
         "weight": 1.0, "source": "", "updated_at": now}
        for i in range(tactics)
    ])  # fmt: skip


def item_row(n: int, rnd: random.Random) -> dict[str, Any]:
    base = datetime(2026, 8, 1, tzinfo=UTC)
    created = base + timedelta(hours=rnd.randrange(0, 2400))
    updated = created + timedelta(hours=rnd.randrange(0, 1200))
    status = rnd.choice(STATUSES)
    return {
        "connector": "bench", "external_id": str(n), "key": f"B-{n}", "kind": "issue",
        "title": f"item {n}", "labels": [], "custom": {}, "previous_keys": [],
        "estimate": rnd.choice((None, 1.0, 2.0, 3.0, 5.0)),
        "due": START + timedelta(days=rnd.randrange(0, 120)), "created": created,
        "updated": updated, "completed_at": updated if status == "done" else None,
        "status_raw": status, "status": status, "first_seen": updated, "last_seen": updated,
    }  # fmt: skip


def batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def link_rows(items: int, tactics: int) -> Iterator[dict[str, Any]]:
    """Each item to one tactic; every 20th also by a second rule (counted once)."""
    linked_at = datetime(2026, 10, 1, tzinfo=UTC)
    for n in range(items):
        row = {"connector": "bench", "external_id": str(n), "tactic_id": f"t{n % tactics}"}
        yield {**row, "rule_id": "r0", "linked_at": linked_at}
        if n % 20 == 0:
            yield {**row, "rule_id": "r1", "linked_at": linked_at}


def populate(store: Store, args: argparse.Namespace) -> None:
    rnd = random.Random(7)
    items, tactics = args.items, args.tactics
    with store.tx() as conn:
        populate_tree(conn, tactics, args.tactics_per_kr, args.krs_per_objective)
        for batch in batches(item_row(n, rnd) for n in range(items)):
            conn.execute(sa.insert(WORK_ITEM), batch)
        for batch in batches(link_rows(items, tactics)):
            conn.execute(sa.insert(ITEM_LINK), batch)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def touch(store: Store, ids: list[str]) -> None:
    """Complete a few items, as a sync page would."""
    ts = datetime(2026, 11, 15, 9, tzinfo=UTC)
    with store.tx() as conn:
        conn.execute(
            sa.update(WORK_ITEM)
            .where(WORK_ITEM.c.connector == "bench", WORK_ITEM.c.external_id.in_(ids))
            .values(status="done", updated=ts, completed_at=ts)
        )


def incremental(store: Store, cfg: SignalsConfig, ids: list[str]) -> signals.RecomputeReport:
    changed = store.linked_tactics("bench", ids)
    return recompute(store, cfg, AS_OF, tactics=changed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--tactics", type=int, default=10_000)
    ap.add_argument("--tactics-per-kr", type=int, default=4)
    ap.add_argument("--krs-per-objective", type=int, default=3)
    ap.add_argument("--db", type=Path, default=None, help="keep the store here (default: temp)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as rows here")
    args = ap.parse_args()
    table = Table(args.items, args.tactics)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.db"
        store = Store.open(f"sqlite:///{db}")
        _, t_pop = timed(lambda: populate(store, args))
        print(f"populated {args.items:,} items / {args.tactics:,} tactics "
              f"({args.tactics_per_kr} per KR, {args.krs_per_objective} KRs per objective) "
              f"in {t_pop:.1f} s")  # fmt: skip
        table.add("populate", t_pop, "s")
        run(store, SignalsConfig(), args.items, table)
        store.close()
    if args.json:
        args.json.write_text(json.dumps({"rows": table.rows}, indent=1))


class Table:
    """The printed figures as `python -m bench` table rows (targets only at the target size)."""

    def __init__(self, items: int, tactics: int) -> None:
        self.case = f"{_count(items)} items / {_count(tactics)} tactics"
        self.at_target = (items, tactics) == TARGET_SIZE
        self.rows: list[Row] = []

    def add(self, metric: str, value: float, unit: str, limit: float | None = None) -> None:
        limit = limit if self.at_target else None
        self.rows.append({
            "bench": "signals", "case": self.case, "metric": metric, "value": float(value),
            "unit": unit, "target": None if limit is None else f"< {limit:g} {unit}",
            "ok": None if limit is None else value < limit,
        })  # fmt: skip


def _count(n: int) -> str:
    for size, suffix in ((1_000_000, "M"), (1000, "k")):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return f"{n:,}"


def run(store: Store, cfg: SignalsConfig, items: int, table: Table) -> None:
    rep, t = timed(lambda: recompute(store, cfg, AS_OF))
    print(f"full recompute (first, writes snapshots): {t:.2f} s (cpu {CPU[0]:.2f} s)  "
          f"[{rep.tactics:,} tactics, {rep.key_results:,} KRs, {rep.objectives:,} objectives, "
          f"{rep.snapshots_written:,} snapshots]")  # fmt: skip
    table.add("full recompute", t, "s", FULL_TARGET_S)
    table.add("full recompute cpu", CPU[0], "s")
    table.add("snapshots written", rep.snapshots_written, "snapshots")
    rep, t = timed(lambda: recompute(store, cfg, AS_OF))
    print(f"full recompute (unchanged):                {t:.2f} s (cpu {CPU[0]:.2f} s)  "
          f"[{rep.snapshots_written} snapshots]")  # fmt: skip
    table.add("full recompute, unchanged", t, "s", FULL_TARGET_S)
    table.add("full recompute, unchanged cpu", CPU[0], "s")
    table.add("snapshots written, unchanged", rep.snapshots_written, "snapshots")
    _, t = timed(lambda: signals_of(store, cfg, AS_OF))
    print(f"compute only (SQL + roll-ups, no writes):  {t:.2f} s (cpu {CPU[0]:.2f} s)")
    table.add("compute only", t, "s")
    table.add("compute only cpu", CPU[0], "s")
    rnd = random.Random(11)
    times = []
    for _ in range(10):
        ids = [str(rnd.randrange(items)) for _ in range(5)]
        touch(store, ids)
        rep, t = timed(functools.partial(incremental, store, cfg, ids))
        times.append(t)
    median_ms, max_ms = statistics.median(times) * 1000, max(times) * 1000
    print(f"incremental (5 changed items, {rep.tactics} tactics in scope, "
          f"{rep.snapshots_written} snapshots): median {median_ms:.1f} ms, "
          f"max {max_ms:.1f} ms")  # fmt: skip
    table.add("incremental (median)", median_ms, "ms", INCREMENTAL_TARGET_MS)
    table.add("incremental (max)", max_ms, "ms")
    table.add("incremental tactics in scope", rep.tactics, "tactics")


if __name__ == "__main__":
    main()
