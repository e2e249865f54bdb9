from connectors.github.cursor import *  # noqa: F403
