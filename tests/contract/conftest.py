"""The connector contract harness: one fixture, `contract`, parametrised over every installed
connector type (entry-point group `okrsync.connectors`), Jira over its Cloud and Data Center
flavours, each driven through the sandbox's in-process transport (no socket).

A plug-in installed without a sandbox flavour below gets one case that fails, naming what to
add, so a new connector is never silently left out of the contract.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from okrsync.config import ConnectorConfig, connector_config
from okrsync.connector import installed_types, load
from okrsync.demo import sandbox_connectors, sandbox_env
from okrsync.http import Http, RetryPolicy
from okrsync.models import Cursor, Page
from okrsync.sandbox import Sandbox


@dataclass(frozen=True)
class Flavour:
    """How to point one connector type at one sandbox tracker."""

    id: str
    type: str
    tracker: str
    demo_name: str  # the section `okrsync.demo.sandbox_connectors` builds for this tracker
    extra: dict[str, Any] = field(default_factory=dict)


FLAVOURS: dict[str, list[Flavour]] = {
    "jira": [
        Flavour("jira-cloud", "jira", "jira", "jira", {"flavor": "cloud"}),
        Flavour("jira-dc", "jira", "jira_dc", "jira-dc", {"flavor": "server"}),
    ],
    "asana": [Flavour("asana", "asana", "asana", "asana")],
    "github": [Flavour("github", "github", "github", "github")],
}
PAGE_SIZE = 25  # the sandbox puts `updated` ties around every 25th position of a scope
SIZE = 160  # items per tracker: two pages or more in every scope
SEED = 5


class Harness:
    """One connector against a fresh sandbox; `pull` runs it to the end with a fake sleep."""

    def __init__(self, flavour: Flavour, monkeypatch: pytest.MonkeyPatch) -> None:
        self.flavour = flavour
        self.tracker = flavour.tracker
        self.sb = Sandbox(seed=SEED, sizes={flavour.tracker: SIZE})
        for key, value in sandbox_env(self.sb).items():
            monkeypatch.setenv(key, value)
        self.sleeps: list[float] = []
        self.config = self._config({})

    def _config(self, overrides: dict[str, Any]) -> ConnectorConfig:
        f = self.flavour
        (demo,) = [c for c in sandbox_connectors(self.sb) if c.name == f.demo_name]
        raw = demo.model_dump(exclude_unset=True)
        return connector_config({**raw, "page_size": PAGE_SIZE, **f.extra, **overrides})

    def configure(self, **overrides: Any) -> None:
        """Rebuild the section with `overrides` on top of the harness's defaults."""
        self.config = self._config(overrides)

    def pull(self, cursor: Cursor | None) -> list[Page]:
        """Every page of one run from `cursor`, as the core would drive it (one run's `Http`)."""
        return asyncio.run(self._pull(cursor))

    async def _pull(self, cursor: Cursor | None) -> list[Page]:
        async def fake_sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        cc = self.config
        async with httpx.AsyncClient(transport=self.sb.transport()) as client:
            http = Http(
                client,
                connector=cc.name,
                policy=RetryPolicy(max_attempts=cc.max_attempts),
                origin=cc.base_url,
                sleep=fake_sleep,
            )
            connector = load(cc.type)(cc, http)
            return [page async for page in connector.pull(cursor)]


def flavour_params(types: list[str]) -> list[Any]:
    """One param per flavour of each type in `types`; a type without flavours is passed as its
    name, for `harness` to fail on."""
    params: list[Any] = []
    for kind in types:
        flavours = FLAVOURS.get(kind)
        if flavours is None:
            params.append(pytest.param(kind, id=f"{kind}-no-sandbox-flavour"))
            continue
        params += [pytest.param(f, id=f.id) for f in flavours]
    return params


def harness(param: Flavour | str, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """The harness for one param, or a test failure naming what the suite lacks."""
    if not isinstance(param, Flavour):
        pytest.fail(
            f"connector type {param!r} is installed but the contract suite cannot build a "
            "sandbox section for it: add its flavour(s) to FLAVOURS in tests/contract/conftest.py",
            pytrace=False,
        )
    return Harness(param, monkeypatch)


@pytest.fixture(params=flavour_params(installed_types()))
def contract(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """A harness for each installed connector type (each Jira flavour)."""
    return harness(request.param, monkeypatch)
