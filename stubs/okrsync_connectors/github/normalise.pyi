from connectors.github.normalise import *  # noqa: F403
