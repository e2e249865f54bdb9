from connectors._scope import *  # noqa: F403
