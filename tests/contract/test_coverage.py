"""The contract suite covers every installed connector type, or says loudly which it cannot."""

from __future__ import annotations

import pytest

from okrsync.connector import installed_types
from tests.contract.conftest import FLAVOURS, Flavour, flavour_params, harness


def test_every_installed_type_has_a_sandbox_flavour() -> None:
    """Each installed plug-in is known to the suite (Jira twice: Cloud and Data Center)."""
    ids = [p.id for p in flavour_params(installed_types())]
    assert not [i for i in ids if i.endswith("-no-sandbox-flavour")]
    assert {"jira-cloud", "jira-dc"} <= set(ids)
    assert set(installed_types()) <= set(FLAVOURS)


def test_unknown_plugin_type_fails_its_case_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plug-in without a sandbox flavour becomes a case that fails and names FLAVOURS."""
    (param,) = flavour_params(["linear"])
    assert param.id == "linear-no-sandbox-flavour"
    with pytest.raises(pytest.fail.Exception, match=r"'linear'.*FLAVOURS in tests/contract"):
        harness(param.values[0], monkeypatch)


def test_known_flavour_builds_a_harness_on_the_in_process_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flavour's harness points its section at the sandbox's in-process origin."""
    h = harness(Flavour("github", "github", "github", "github"), monkeypatch)
    assert h.config.base_url == h.sb.base_url("github")
    assert h.config.page_size == 25
