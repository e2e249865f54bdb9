from connectors.github.hooks import *  # noqa: F403
