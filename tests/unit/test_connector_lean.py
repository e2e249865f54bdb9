"""Asking a plug-in what it declares (its webhooks, its settings) loads its package only:
the connector module, with its HTTP and GraphQL stack, stays unloaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from okrsync.connector import config_model, webhooks
kind = sys.argv[1]
support = webhooks(kind)
config_model(kind)
print(json.dumps({"support": support is not None, "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("kind", ["github", "jira", "asana"])
def test_webhooks_of_a_plugin_whose_package_exports_them_loads_no_connector(kind: str) -> None:
    """`okrsync hooks show` reads each plug-in's webhooks: its package's, found first."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, kind], capture_output=True, text=True, check=True
    ).stdout
    found = json.loads(out)
    assert found["support"] is True
    loaded = set(found["modules"])
    assert f"okrsync_connectors.{kind}" in loaded  # the probe did read the package
    assert f"okrsync_connectors.{kind}.connector" not in loaded
