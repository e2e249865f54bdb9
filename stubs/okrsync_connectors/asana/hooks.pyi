from connectors.asana.hooks import *  # noqa: F403
