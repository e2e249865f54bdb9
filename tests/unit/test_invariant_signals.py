"""Tasks are not goals: a sync that completes many items moves execution, never outcome."""

from __future__ import annotations

from pathlib import Path

from okrsync.config import SignalsConfig
from okrsync.models import Page
from okrsync.pipeline import recompute, signals_of
from okrsync.store import Store
from tests.signal_fixtures import AS_OF, days_ago, item, link, load_tree_into
from tests.unit.test_invariant import writes


def test_completing_many_items_moves_execution_never_outcome(
    store: Store, mapping_dir: Path
) -> None:
    """A page of 200 items moving to done leaves every key result's value and progress as is."""
    load_tree_into(store, mapping_dir)
    store.add_checkin("conv", 9, at=days_ago(2))
    store.add_checkin("latency", 31, at=days_ago(2))
    tactics = ["checkout", "pricing", "cache"]
    items = [item(n, "todo") for n in range(200)]
    link(store, items, tactics)
    before = signals_of(store, SignalsConfig(), AS_OF)
    done = [item(n, "done", updated=days_ago(1)) for n in range(200)]
    run = store.start_run("gh")
    links = {i.external_id: [(t, "r1") for t in tactics] for i in done}
    with writes(store) as seen:
        store.commit_page("gh", Page(done, {"since": "x"}), links, run)
        changed = store.linked_tactics("gh", [i.external_id for i in done])
        recompute(store, SignalsConfig(), AS_OF, tactics=changed)
    after = signals_of(store, SignalsConfig(), AS_OF)
    for kid, kr in before.key_results.items():
        assert after.key_results[kid].outcome == kr.outcome
        assert after.key_results[kid].execution.completion == 1.0
        assert kr.execution.completion == 0.0
    assert after.objectives["grow"].outcome == before.objectives["grow"].outcome
    touched = {s.split()[2 if s.upper().startswith(("INSERT", "DELETE")) else 1].strip('"')
               for s in seen}  # fmt: skip
    assert touched <= {"work_item", "item_link", "sync_cursor", "sync_run", "signal_snapshot"}
    assert [c.value for c in store.checkins("conv")] == [9.0]
