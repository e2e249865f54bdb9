from connectors.github import *  # noqa: F403
