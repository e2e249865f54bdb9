from connectors.github.projects import *  # noqa: F403
