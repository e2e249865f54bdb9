from connectors.github.project_pull import *  # noqa: F403
