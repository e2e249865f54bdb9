"""What happens around a sync run: the current mapping, linking pages, and derived signals.

The daemon, `sync --once`, `remap` and the demo share this, so every path behaves alike.
`MappingState` is the last good mapping: a broken file never replaces it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from okrsync import signals
from okrsync.config import Settings
from okrsync.errors import ConfigError
from okrsync.mapping import Matcher
from okrsync.okrfile import OkrTree, discover, load_tree
from okrsync.remap import RemapReport, make_linker, remap
from okrsync.store import Store
from okrsync.sync import Linker, RunResult

log = structlog.get_logger("okrsync.pipeline")


def files_digest(settings: Settings) -> str:
    """A fingerprint of the mapping files (names, sizes, mtimes): changes trigger a reload."""
    h = hashlib.sha256()
    try:
        for path in discover(settings.mapping_paths()):
            st = Path(path).stat()
            h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    except (OSError, ConfigError):
        h.update(b"unreadable")
    return h.hexdigest()


@dataclass(frozen=True)
class MappingState:
    """A validated mapping (OKR tree + compiled rules) and the files it came from."""

    tree: OkrTree
    matcher: Matcher
    digest: str
    loaded_at: datetime

    @classmethod
    def load(cls, settings: Settings) -> MappingState:
        """Read and validate the mapping files; raises ConfigError listing every problem."""
        digest = files_digest(settings)
        tree = load_tree(settings.mapping_paths())
        names = [c.name for c in settings.connectors] or None
        return cls(tree, Matcher.from_tree(tree, names), digest, datetime.now(UTC))

    def apply(self, store: Store, settings: Settings | None = None) -> RemapReport:
        """Load the tree, re-derive every link from stored items, recompute all signals."""
        store.apply_okr_tree(self.tree)
        report = remap(store, self.matcher)
        cfg = settings.signals if settings else None
        signals.recompute(store, signals.today(), cfg)
        return report

    def linker(self, store: Store) -> Linker:
        """The per-page linker for sync runs under this mapping."""
        return make_linker(store, self.matcher)

    def stale(self, settings: Settings) -> bool:
        """True when the mapping files changed on disk since this state was loaded."""
        return files_digest(settings) != self.digest


def after_sync(
    store: Store, settings: Settings, mapping: MappingState, results: Sequence[RunResult]
) -> None:
    """Recompute signals for the tactics whose items changed (all of them after deletions)."""
    touched: set[str] = set().union(*(r.touched_tactics for r in results))
    if any(r.deleted for r in results):
        report = signals.recompute(store, signals.today(), settings.signals)
    elif touched:
        report = signals.recompute(store, signals.today(), settings.signals, touched)
    else:
        return
    log.info("signals.recomputed", tactics=len(touched) or "all", report=str(report))
