"""Small helpers every private store module shares."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def chunks(seq: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """`seq` in slices of at most `size` (bound parameter lists stay under the backends' caps)."""
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
