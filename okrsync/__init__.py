"""okrsync: bridge task trackers to OKRs without treating tasks as goals."""

__version__ = "0.1.0"
