"""The GitHub plug-in (`type = "github"`): issues and pull requests of `owner/repo` scopes."""

from .connector import GitHubConnector

__all__ = ["GitHubConnector"]
