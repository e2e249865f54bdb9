from connectors.asana.normalise import *  # noqa: F403
