"""okrsync's bundled tracker plug-ins (installed as the import package `okrsync_connectors`).

Each package (`github/`, `asana/`, `jira/`) registers one connector type in the
`okrsync.connectors` entry-point group and brings its own settings (`config.py`); `_guard`
holds the paging guard they share.
"""
