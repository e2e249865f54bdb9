from connectors.jira.hooks import *  # noqa: F403
