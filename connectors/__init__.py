"""okrsync's bundled tracker plug-ins (installed as the import package `okrsync_connectors`).

Each module registers one connector type in the `okrsync.connectors` entry-point group.
"""
