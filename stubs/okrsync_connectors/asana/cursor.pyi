from connectors.asana.cursor import *  # noqa: F403
