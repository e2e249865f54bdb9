"""What happens around a sync run: the current mapping, linking pages, and derived signals.

The daemon and `sync --once` share this, so a one-off run and a scheduled run behave alike.
`MappingState` is the last good mapping: a broken file never replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from okrsync.config import Settings
from okrsync.okrfile import OkrTree, load_tree
from okrsync.store import Store
from okrsync.sync import Linker, RunResult


@dataclass(frozen=True)
class MappingState:
    """A validated mapping (OKR tree + rules) and when it was loaded."""

    tree: OkrTree
    loaded_at: datetime

    @classmethod
    def load(cls, settings: Settings) -> MappingState:
        """Read and validate the mapping files; raises ConfigError with every problem."""
        return cls(load_tree(settings.mapping_paths()), datetime.now(UTC))

    def apply(self, store: Store) -> None:
        """Load the OKR tree into the store (idempotent)."""
        store.apply_okr_tree(self.tree)

    def linker(self, store: Store) -> Linker | None:
        """The per-page linker for sync runs under this mapping."""
        return None


def after_sync(store: Store, settings: Settings, mapping: MappingState,
               results: Sequence[RunResult]) -> None:
    """Derive what depends on the items once runs have stored them."""
