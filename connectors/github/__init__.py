"""The GitHub plug-in (`type = "github"`): issues and pull requests of `owner/repo` scopes.

`Config` (this plug-in's settings) is imported eagerly; the connector, with its HTTP stack, on
first use, so commands that only read the config file stay quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import GitHubConfig
from .config import GitHubConfig as Config
from .hooks import webhooks as webhooks  # `okrsync hooks` (okrsync.connector.Webhooks)

if TYPE_CHECKING:
    from .connector import GitHubConnector

__all__ = ["Config", "GitHubConfig", "GitHubConnector"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import connector

        return getattr(connector, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
