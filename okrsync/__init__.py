"""okrsync: bridge task trackers to OKRs without treating tasks as goals."""

from okrsync import _lean_imports

__version__ = "0.1.0"

# before any `import structlog` or `import httpx`: see okrsync/_lean_imports.py
_lean_imports.install()
