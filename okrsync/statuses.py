"""Status vocabularies: which raw status, section or label names mean which category.

Every tracker states some facts itself (Jira's status category and resolution, Asana's
`completed`, GitHub's `state`, `state_reason` and merge): a connector turns those into the
item's `status_basis`. The names a team chose (a Jira status, an Asana section, GitHub labels)
are the item's `status_names`. The category stored is

    categorise(basis, names.of(status_names))

- a name mapped to `dropped` wins over everything (Jira "Won't Do", an "Icebox" section);
- otherwise a tracker's closed state wins (done or dropped stays so);
- otherwise an open item takes the category its names map to (done before in progress
  before to do when several names map), else its basis.

The map a connector uses is its plug-in's declared `status_vocabulary` (the names teams
commonly use), then the section's `dropped_statuses` (each → dropped), then its `status_map`
(which wins). Names compare loosely: trimmed, case-folded, typographic apostrophes straight.
Because the basis and the names are stored with each item, `okrsync remap` applies a changed
map to stored items without pulling anything again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from okrsync.models import StatusCategory

# Board columns and labels that mean work has started, across teams (docs/signals.md).
COMMON_IN_PROGRESS = (
    "in progress",
    "in-progress",
    "doing",
    "wip",
    "in review",
    "review",
    "code review",
    "qa",
    "testing",
    "in test",
    "blocked",
)
MEMO_LIMIT = 4096  # distinct (basis, names) remembered per connector; labels vary more
_RANK = {
    StatusCategory.DROPPED: 3,
    StatusCategory.DONE: 2,
    StatusCategory.IN_PROGRESS: 1,
    StatusCategory.TODO: 0,
}


@functools.lru_cache(maxsize=8192)
def fold(name: str) -> str:
    """A status name compared loosely: trimmed, apostrophes straightened, case-folded."""
    return name.strip().replace("\u2019", "'").casefold()


def in_progress(names: Iterable[str]) -> dict[str, StatusCategory]:
    """`names` → in progress, as a plug-in's `status_vocabulary`."""
    return {fold(n): StatusCategory.IN_PROGRESS for n in names}


@dataclass(frozen=True)
class StatusNames:
    """Folded raw name → category for one connector."""

    names: Mapping[str, StatusCategory]
    # (basis, names) → category: a tracker has few distinct combinations, seen on every item.
    _memo: dict[tuple[StatusCategory, tuple[str | None, ...]], StatusCategory] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(
        cls,
        vocabulary: Mapping[str, StatusCategory] = {},
        dropped: Iterable[str] = (),
        status_map: Mapping[str, StatusCategory] = {},
    ) -> StatusNames:
        """The plug-in's vocabulary, then `dropped_statuses`, then `status_map` (which wins)."""
        names = {fold(k): StatusCategory(v) for k, v in vocabulary.items()}
        names.update({fold(n): StatusCategory.DROPPED for n in dropped if fold(n)})
        names.update({fold(k): StatusCategory(v) for k, v in status_map.items()})
        return cls(names)

    def of(self, raw: Iterable[str | None]) -> StatusCategory | None:
        """The category the names say (the strongest when several are mapped), or None."""
        best: StatusCategory | None = None
        for name in raw:
            found = self.names.get(fold(name)) if name else None
            if found is not None and (best is None or _RANK[found] > _RANK[best]):
                best = found
        return best

    def categorise(self, basis: StatusCategory, raw: Iterable[str | None]) -> StatusCategory:
        """The stored category of an item with this basis and these names (module docs)."""
        key = (basis, tuple(raw))
        found = self._memo.get(key)
        if found is None:
            found = categorise(basis, self.of(key[1]))
            if len(self._memo) < MEMO_LIMIT:
                self._memo[key] = found
        return found


def categorise(basis: StatusCategory, named: StatusCategory | None) -> StatusCategory:
    """Dropped by name wins; then a closed basis; then the names; then the basis."""
    if named is StatusCategory.DROPPED:
        return named
    if basis in (StatusCategory.DONE, StatusCategory.DROPPED):
        return basis
    return named or basis
