"""A loop guard for one listing: every paginated flow of every connector walks through one.

A listing is one walk over a tracker's pages (a GitHub `since` pass, an Asana offset listing, an
events drain, a Jira search). A well-behaved tracker hands out each page cursor once and brings
new items on every page but the last; a broken or hostile one can send a cursor seen before
(A, B, A, ...) or an endless stream of fresh cursors over the same or empty pages. Either way
the listing fails with `PagingLoop` (never retried) before the repeating page is yielded, so the
stored cursor stays at the last good page. A page that brings nothing new is held back (`hold`)
until a later page brings something or the listing ends: when the stall turns out to be a loop,
the held pages are dropped unstored, so their cursors never move the resume point past pages
the tracker never really served. A page with more records than the page size asked for (plus
`PAGE_SLACK`) fails the listing before any of its records is normalised.

Cost: one set lookup per page for the cursor and one `set.update` over the page's item ids
(about 20 µs for a page of 100). The id set lives as long as the listing: about 4 MB for a
100k-item listing, plus the ids it keeps alive (up to about 6 MB more for string ids).
A restarted listing (expired token or offset) takes a fresh guard.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, TypeVar

from okrsync.errors import PagingLoop, PayloadError
from okrsync.redaction import redact_url, scrub

STALL_PAGES = 3  # consecutive pages that bring no new item while the tracker says "more"
PAGE_SLACK = 10  # records a page may bring beyond the page size asked for
T = TypeVar("T")
_SHOWN = 60


class PageGuard:
    """Refuses a page cursor seen before and a run of pages that bring nothing new."""

    __slots__ = (
        "_cursors",
        "_held",
        "_ids",
        "_last",
        "_stalled",
        "connector",
        "limit",
        "listing",
        "pages",
        "scope",
    )

    def __init__(
        self,
        connector: str,
        scope: str,
        listing: str,
        first: Hashable | None = None,
        *,
        limit: int | None = None,
    ) -> None:
        self.connector, self.scope, self.listing = connector, scope, listing
        self.limit = limit
        self._cursors: set[Hashable] = set() if first is None else {first}
        self._ids: set[Hashable] = set()
        self._held: list[Any] = []
        self._stalled = 0
        self._last = False
        self.pages = 0

    def step(self, ids: Iterable[Hashable], nxt: Hashable | None) -> None:
        """Account for one page (its item ids) and the cursor of the page after it (None: end).

        Raises `PagingLoop` when `nxt` was handed out before in this listing, or when this is
        the `STALL_PAGES`-th page in a row without a new id and the tracker still says "more".
        """
        self.pages += 1
        before = len(self._ids)
        page = ids if isinstance(ids, list | tuple) else list(ids)
        if self.limit is not None and len(page) > self.limit + PAGE_SLACK:
            raise PayloadError(
                f"connector {self.connector!r}: tracker returned {len(page)} items on one page; "
                f"asked for {self.limit} ({self.scope}, {self.listing}). The run stops before "
                "storing any of them",
                connector=self.connector,
            )
        self._ids.update(page)
        self._stalled = self._stalled + 1 if len(self._ids) == before else 0
        self._last = nxt is None
        if nxt is None:
            return
        if nxt in self._cursors:
            raise self._fail(f"the tracker sent the page cursor {shown(nxt)} again")
        if self._stalled >= STALL_PAGES:
            raise self._fail(
                f"{self._stalled} pages in a row brought no new item, yet the tracker "
                f"says more follow (next cursor {shown(nxt)})"
            )
        self._cursors.add(nxt)

    def hold(self, page: T) -> list[T]:
        """The pages to hand on now, given the page just `step`ped.

        A page that brought no new item while more are promised waits (at most
        `STALL_PAGES - 1` of them): a later page that brings something, or the end of the
        listing, releases the held pages in order; a loop raises in `step` and they are never
        stored, so the resume point stays at the last page that made progress.
        """
        if self._stalled and not self._last:
            self._held.append(page)
            return []
        out: list[T] = [*self._held, page]
        self._held = []
        return out

    def _fail(self, what: str) -> PagingLoop:
        return PagingLoop(
            f"connector {self.connector!r}: paging loop in {self.scope} ({self.listing}) after "
            f"{self.pages} pages: {what}. The run stops here and is not retried; the next run "
            "resumes from the last stored page. If it recurs, the tracker's paging is broken "
            "(check the tracker or a proxy in front of it)",
            connector=self.connector,
        )


def shown(cursor: Hashable) -> str:
    """A cursor fit for an error message: redacted, printable, shortened."""
    text = str(cursor)
    text = redact_url(text) if "://" in text else scrub(text)
    text = "".join(c if c.isprintable() else "?" for c in text)
    if len(text) > _SHOWN:
        text = f"{text[: _SHOWN - 16]}…{text[-12:]}"
    return repr(text)
