from connectors.github.connector import *  # noqa: F403
from connectors.github.connector import _ids as _ids
