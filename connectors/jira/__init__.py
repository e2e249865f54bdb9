"""The Jira plug-in (`type = "jira"`): Jira Cloud and Server/Data Center issues of projects."""

from .connector import JiraConnector

__all__ = ["JiraConnector"]
