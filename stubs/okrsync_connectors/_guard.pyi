from connectors._guard import *  # noqa: F403
