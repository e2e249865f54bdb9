"""Derived signals. Outcome progress comes from check-ins only; execution from work items.

The two are computed by separate functions over separate inputs and never combined into one
number: a key result's progress is its metric, task completion stands beside it.
"""

from __future__ import annotations


def outcome_progress(
    start: float, target: float, current: float | None, direction: str
) -> float | None:
    """(current − start) / (target − start), clamped to 0..1; None without a check-in.

    With target == start the key result is 1 once reached in its direction, else 0.
    """
    if current is None:
        return None
    if target == start:
        reached = current >= target if direction == "increase" else current <= target
        return 1.0 if reached else 0.0
    return min(1.0, max(0.0, (current - start) / (target - start)))
