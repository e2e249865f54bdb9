from connectors.asana import *  # noqa: F403
