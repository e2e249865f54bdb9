from connectors.jira.normalise import *  # noqa: F403
