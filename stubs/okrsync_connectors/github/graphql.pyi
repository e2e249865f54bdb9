from connectors.github.graphql import *  # noqa: F403
