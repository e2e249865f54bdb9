"""Reproducible benchmarks that print figures (`python -m bench.<name>`).

`import okrsync` comes first, before any bench module imports httpx or structlog: okrsync's
import hook (okrsync/_lean_imports.py) keeps their unused extras out of the process, and a
measured child must carry what okrsync itself would, no more.
"""

import okrsync  # noqa: F401
