"""Optional extras that okrsync never uses, kept out of the process.

* structlog without rich: `import structlog` imports `structlog.dev`, and that imports rich
  (≈ 8 MB, 40 ms) whenever it is installed, only to offer rich tracebacks to the console
  renderer. okrsync never uses them: `okrsync.logging` formats exceptions to text
  (`format_exc_info`) before any renderer, so the console renderer only writes that text.
  Its deprecated `structlog.threadlocal` also imports greenlet (≈ 1 MB) when installed
  (SQLAlchemy brings it along); okrsync keeps its log context in contextvars.
* httpx without its command-line client: `import httpx` imports `httpx._main` (the `httpx`
  console script) and with it click, rich and pygments (≈ 7 MB) whenever they are installed,
  and falls back to a stub when they are not. okrsync never runs that script.

`HideExtras`, put first on `sys.meta_path` by `okrsync/__init__.py` (before any structlog or
httpx import), answers "not installed" for those extras while the library that would pull
them in is itself being imported, and stays out of the way of every other import: rich's own
users (the CLI's tables) import it as usual, and a module already loaded is handed over as
before (the meta path is asked only for modules not yet in `sys.modules`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

# importer → the top-level packages it is refused while it initialises
HIDDEN: dict[str, frozenset[str]] = {
    "structlog": frozenset({"rich", "greenlet"}),
    "httpx": frozenset({"rich", "click", "pygments"}),
}


def initialising(module: str) -> bool:
    """Whether `import <module>` is running now (its module exists, not yet initialised)."""
    spec = getattr(sys.modules.get(module), "__spec__", None)
    return getattr(spec, "_initializing", False) is True


class HideExtras:
    """A meta-path finder: an extra is not found while its importer initialises; else no
    opinion."""

    @staticmethod
    def find_spec(
        fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        top = fullname.partition(".")[0]
        for importer, hidden in HIDDEN.items():
            if top in hidden and initialising(importer):
                raise ModuleNotFoundError(f"{fullname} is hidden from {importer}", name=fullname)
        return None


def install() -> None:
    """Put the finder first on `sys.meta_path` (once)."""
    if not any(isinstance(f, HideExtras) for f in sys.meta_path):
        sys.meta_path.insert(0, HideExtras())
