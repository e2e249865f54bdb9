"""What the store would hold after committing pages, and how that differs from the truth.

`Replica.apply` follows the store's rules (`okrsync/store`): an item is upserted by external
id; `Page.deleted` flags ids; `Page.census` flags every known item of that container missing
from its list. `differences` compares like `tests/integration/sandbox_utils.differences`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from okrsync.models import Page, WorkItem
from okrsync.sandbox import TruthItem


@dataclass
class Replica:
    items: dict[str, WorkItem] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    def apply(self, pages: Iterable[Page]) -> Replica:
        for page in pages:
            for item in page.items:
                self.items[item.external_id] = item
                self.deleted.discard(item.external_id)
            self.deleted.update(i for i in page.deleted if i in self.items)
            for container, present in page.census.items():
                known = {k for k, v in self.items.items() if v.container == container}
                self.deleted |= known - set(present)
        return self


def differences(truth: dict[str, TruthItem], got: Replica) -> list[str]:
    """Every way `got` differs from the sandbox's truth (empty: it holds exactly the truth)."""
    unseen = {k for k, t in truth.items() if t.deleted and k not in got.items}
    out = [f"missing {k}" for k in sorted(set(truth) - set(got.items) - unseen)]
    out += [f"unexpected {k}" for k in sorted(set(got.items) - set(truth))]
    for k in sorted(set(truth) & set(got.items)):
        t, g = truth[k], got.items[k]
        if t.deleted != (k in got.deleted):
            out.append(f"{k} deleted: truth {t.deleted} replica {k in got.deleted}")
        if t.deleted:
            continue
        pairs = {
            "key": (t.key, g.key),
            "kind": (t.kind, str(g.kind)),
            "title": (t.title, g.title),
            "status": (t.status, str(g.status)),
            "parent": (t.parent_key, g.parent_key),
            "labels": (tuple(sorted(t.labels)), tuple(sorted(g.labels))),
            "estimate": (t.estimate, g.estimate),
            "scope": (t.scope, g.container),
            "updated": (t.updated, g.updated),
        }
        out += [f"{k} {f}: truth {a!r} got {b!r}" for f, (a, b) in pairs.items() if a != b]
    return out
