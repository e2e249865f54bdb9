from connectors.jira import *  # noqa: F403
