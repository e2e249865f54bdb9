"""`okrsync demo`: the main job end to end on the embedded default (SQLite)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from okrsync.okrfile import load_tree
from okrsync.render import render_tree
from okrsync.store import Store
from okrsync.tree import load_tree_view

MAPPINGS = Path(__file__).resolve().parent.parent / "mappings"
DEMO_CHECKINS = {
    "trial-conversion": (9.1, 0.7, "demo: weekly funnel export"),
    "activation-time": (31.0, 0.6, "demo: median from product analytics"),
    "p95-latency": (410.0, 0.8, "demo: APM dashboard"),
}


def run_demo(console: Console, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    db = (workdir / "okrsync.db").resolve()
    store = Store.open(f"sqlite:///{db}")
    tree = load_tree([MAPPINGS])
    report = store.apply_okr_tree(tree)
    console.print(
        f"[bold]store[/] {db}  ·  mappings {MAPPINGS} "
        f"({len(report.added)} added, {len(report.updated)} updated)"
    )
    latest = store.latest_checkins()
    for kr_id, (value, conf, note) in DEMO_CHECKINS.items():
        if kr_id in tree.key_results and kr_id not in latest:
            store.add_checkin(kr_id, value, confidence=conf, note=note, author="demo")
    render_tree(console, load_tree_view(store))
    store.close()
