"""Drive okrsync against the sandbox and compare the store with the sandbox's ground truth."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from okrsync.config import Settings
from okrsync.demo import sandbox_connectors, sandbox_env
from okrsync.sandbox import Sandbox
from okrsync.store import Store
from okrsync.sync import RunResult, sync_once

TRACKER = {"jira": "jira", "jira-dc": "jira_dc", "asana": "asana", "github": "github"}
SIZES = {"jira": 150, "jira_dc": 120, "asana": 150, "github": 150}


@contextmanager
def sandbox_world(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sizes: dict[str, int] | None = None,
    seed: int = 11,
    **overrides: Any,
) -> Iterator[tuple[Sandbox, Settings, Store]]:
    """A running sandbox, settings pointing at it, and an empty SQLite store."""
    with Sandbox(seed=seed, sizes=sizes or SIZES) as sb:
        for k, v in sandbox_env(sb).items():
            monkeypatch.setenv(k, v)
        settings = Settings(
            store={"url": f"sqlite:///{tmp_path / 'okrsync.db'}"},
            connectors=sandbox_connectors(sb, **overrides),
        )
        store = Store.open(settings.store_url())
        try:
            yield sb, settings, store
        finally:
            store.close()


def sync(settings: Settings, store: Store, only: str | None = None) -> list[RunResult]:
    return asyncio.run(sync_once(settings, store, only))


def differences(sb: Sandbox, store: Store, name: str) -> list[str]:
    """Every way the stored items of connector `name` differ from the sandbox's truth."""
    truth = sb.truth(TRACKER[name])
    got = {i.external_id: i for i in store.items(name)}
    # A tracker shows nothing of a deleted item: if no completed run saw it (created or edited,
    # then deleted, between two runs that were both killed), its last state cannot be known.
    # What must hold: an item that was stored is flagged deleted.
    unseen = {k for k, t in truth.items() if t.deleted and k not in got}
    out = [f"missing {k}" for k in sorted(set(truth) - set(got) - unseen)]
    out += [f"unexpected {k}" for k in sorted(set(got) - set(truth))]
    for k in sorted(set(truth) & set(got)):
        t, g = truth[k], got[k]
        if t.deleted:
            if g.deleted_at is None:
                out.append(f"{k} deleted: truth True stored False")
            continue
        pairs = {
            "key": (t.key, g.key),
            "kind": (t.kind, g.kind),
            "title": (t.title, g.title),
            "status": (t.status, g.status),
            "parent": (t.parent_key, g.parent_key),
            "labels": (tuple(sorted(t.labels)), tuple(sorted(g.labels))),
            "estimate": (t.estimate, g.estimate),
            "scope": (t.scope, g.container),
            "deleted": (t.deleted, g.deleted_at is not None),
            "updated": (t.updated, g.updated),
        }
        out += [f"{k} {f}: truth {a!r} stored {b!r}" for f, (a, b) in pairs.items() if a != b]
    return out
