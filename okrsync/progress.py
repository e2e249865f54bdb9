"""A progress line per connector while `okrsync sync --once` runs on a terminal.

The pipeline hands each run's live `RunResult` and `HttpStats` to `SyncProgress.watch` as the
run starts; the display reads them a few times a second (the run updates them as pages are
committed) and writes to stderr, so stdout keeps only the final table. Off a terminal nothing
is shown: logs and the final table say the same.

    jira  run 12  running  pages 40  items 4,000 (3,900 new)  requests 41  rate-limit waits 3.0 s
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from okrsync.textsafe import printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from okrsync.http import HttpStats
    from okrsync.models import RunResult


def line(result: RunResult, stats: HttpStats) -> str:
    """One connector's progress, as shown (pure: tests call it)."""
    items = result.created + result.updated
    state = result.status if result.duration_s else "running"
    text = (
        f"{printable(result.connector)}  run {result.run_id}  {state}"
        f"  pages {result.pages:,}  items {items:,} ({result.created:,} new)"
        f"  requests {stats.requests:,}"
    )
    if stats.rate_limit_wait_s:
        text += f"  rate-limit waits {stats.rate_limit_wait_s:.1f} s"
    return text


class SyncProgress:
    """A live block of progress lines on stderr, one per running connector (a context manager;
    does nothing when stderr is not a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.runs: list[tuple[RunResult, HttpStats]] = []
        self._live: Live | None = None

    @property
    def enabled(self) -> bool:
        return self.console.is_terminal

    def watch(self, result: RunResult, stats: HttpStats) -> None:
        self.runs.append((result, stats))

    def render(self) -> str:
        return "\n".join(line(r, s) for r, s in self.runs) or "starting…"

    def __enter__(self) -> SyncProgress:
        if self.enabled:
            from rich.live import Live
            from rich.text import Text

            class _View:
                def __rich__(_self) -> Text:  # the outer `self` is the progress
                    return Text(self.render(), no_wrap=True, overflow="ellipsis")

            self._live = Live(_View(), console=self.console, refresh_per_second=4, transient=True)
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
