"""The stored facts a page's links depend on: the page items' stored keys and their stored
ancestors, read level by level on one connection (one read snapshot)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from okrsync.models import KeyNode, Lineage, WorkItem
from okrsync.store._items import ItemReader

MAX_DEPTH = 20  # parent levels followed; deeper chains end there (as in okrsync.linking)


def lineage(reader: ItemReader, items: Sequence[WorkItem]) -> Lineage:
    """Stored keys of `items` and every stored ancestor up their parent chains."""
    out = Lineage()
    known: set[tuple[str, str]] = set()
    for connector, ids in _by_connector((i.connector, i.external_id) for i in items).items():
        for ext, key, prev in reader.keys_of(connector, ids):
            out.stored[(connector, ext)] = KeyNode(key, None, prev)
    for it in items:
        stored = out.stored.get((it.connector, it.external_id))
        earlier = (*stored.previous_keys, stored.key) if stored else ()
        known.update((it.connector, k) for k in (it.key, *it.previous_keys, *earlier))
    wanted = [(it.connector, it.parent_key) for it in items if it.parent_key]
    for _ in range(MAX_DEPTH):
        missing = _by_connector((c, k) for c, k in wanted if (c, k) not in known)
        if not missing:
            break
        wanted = _fetch_level(reader, missing, known, out)
    return out


def _fetch_level(
    reader: ItemReader,
    missing: dict[str, list[str]],
    known: set[tuple[str, str]],
    out: Lineage,
) -> list[tuple[str, str]]:
    """Add the stored items with these keys (unknown keys as roots); return their parents."""
    nxt: list[tuple[str, str]] = []
    for connector, keys in missing.items():
        for chunk, rows in reader.by_keys(connector, keys):
            for key, parent, prev in rows:
                out.ancestors.append((connector, KeyNode(key, parent, prev)))
                known.update((connector, k) for k in (key, *prev))
                if parent:
                    nxt.append((connector, parent))
            for key in chunk:
                if (connector, key) not in known:
                    out.ancestors.append((connector, KeyNode(key, None)))
                    known.add((connector, key))
    return nxt


def _by_connector(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for connector, value in pairs:
        out[connector].append(value)
    return {c: sorted(set(v)) for c, v in out.items()}
