"""The okrsync exception tree, named by what the caller should do.

    OkrsyncError
    ├── ConfigError          bad config or mapping: message names file, line, key and the fix
    ├── ConnectorError       carries connector name and a redacted URL
    │   ├── TransientError   429, 5xx, network: the only class that is retried; carries retry_after
    │   ├── AuthError        401/403: this connector's run fails, the daemon lives on
    │   ├── AccessLost       a whole scope (project/repo) became invisible: reported, never deletion
    │   ├── CursorRejected   expired page/sync token: restart from the stored cursor
    │   ├── PayloadError     unexpected vendor shape (also: response or page over its cap)
    │   │   ├── PagingLoop   a listing repeats its cursor or brings nothing new
    │   │   └── OffOriginError  a URL off base_url's origin: refused before anything is sent
    │   └── RunLimitExceeded past the run's deadline, page or request cap: fails, no retry
    └── StoreError

httpx exceptions are translated in one place: `okrsync.http`.
"""

from __future__ import annotations


class OkrsyncError(Exception):
    """Base of every error okrsync raises on purpose."""


class ConfigError(OkrsyncError):
    """Bad configuration or mapping input; the message says where and how to fix it."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = file or ""
        if file and line:
            where = f"{file}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class ConnectorError(OkrsyncError):
    """A tracker call failed; `url` is always redacted."""

    def __init__(
        self, message: str, *, connector: str = "", url: str = "", status: int | None = None
    ) -> None:
        self.connector = connector
        self.url = url
        self.status = status
        super().__init__(message)


class TransientError(ConnectorError):
    """Worth retrying: 429, 5xx, timeouts, resets, truncated bodies."""

    def __init__(
        self,
        message: str,
        *,
        connector: str = "",
        url: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(message, connector=connector, url=url, status=status)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class AuthError(ConnectorError):
    """401/403: credentials missing, wrong, expired or revoked."""


class AccessLost(ConnectorError):
    """A configured scope is no longer visible (404/403 on the scope itself)."""


class NotFound(ConnectorError):
    """404/410 on a single resource."""


class CursorRejected(ConnectorError):
    """The tracker refused a page token, offset or sync token; restart from the stored cursor."""


class PayloadError(ConnectorError):
    """The tracker answered with a shape we do not understand."""


class PagingLoop(PayloadError):
    """A listing repeated a page cursor or stopped bringing new items: the run fails, no retry."""


class OffOriginError(PayloadError):
    """The tracker pointed at a URL off the configured base_url's scheme, host and port.

    Raised before anything is sent (no credentials leave), never retried."""


class RunLimitExceeded(ConnectorError):
    """A run went past its deadline, page cap or request cap: it fails, never retried; the
    pages committed before stay, and the cursor with them, so the next run resumes there."""


# The start of the error a run over its deadline records (`/readyz` looks for it).
DEADLINE_EXCEEDED = "run exceeded run_deadline_s"


class StoreError(OkrsyncError):
    """The store cannot be reached or is in an unexpected state."""
