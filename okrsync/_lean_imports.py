"""structlog without rich: `import structlog` imports `structlog.dev`, and that imports rich
(≈ 8 MB, 40 ms) whenever it is installed, only to offer rich tracebacks to the console
renderer. okrsync never uses them: `okrsync.logging` formats exceptions to text
(`format_exc_info`) before any renderer, so the console renderer only writes that text.

`HideRichFromStructlog`, put first on `sys.meta_path` by `okrsync/__init__.py` (before any
structlog import), answers "not installed" for rich while structlog itself is being
imported, and stays out of the way of every other import: rich's own users (the CLI's
tables) import it as usual, and if rich is already loaded structlog gets it as before.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType


def structlog_initialising() -> bool:
    """Whether `import structlog` is running now (its module exists, not yet initialised)."""
    spec = getattr(sys.modules.get("structlog"), "__spec__", None)
    return getattr(spec, "_initializing", False) is True


class HideRichFromStructlog:
    """A meta-path finder: rich is not found while structlog initialises; else no opinion."""

    @staticmethod
    def find_spec(
        fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] == "rich" and structlog_initialising():
            raise ModuleNotFoundError(f"{fullname} is hidden from structlog", name=fullname)
        return None


def install() -> None:
    """Put the finder first on `sys.meta_path` (once)."""
    if not any(isinstance(f, HideRichFromStructlog) for f in sys.meta_path):
        sys.meta_path.insert(0, HideRichFromStructlog())
