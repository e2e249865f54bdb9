from connectors.github.config import *  # noqa: F403
