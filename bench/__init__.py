"""Reproducible benchmarks that print figures (`python -m bench.<name>`).

`import okrsync` comes first, before any bench module imports httpx or structlog: okrsync's
import hook (okrsync/_lean_imports.py) keeps their unused extras out of the process, and a
measured child must carry what okrsync itself would, no more.
"""

import okrsync  # noqa: F401


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `samples`, nearest rank."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
