from connectors.github.shapes import *  # noqa: F403
