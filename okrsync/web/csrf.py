"""CSRF tokens for the dashboard's forms: HMAC-signed, bound to the user and a time.

A token is `<issued unix time>.<hex HMAC-SHA256(secret, user \\n issued)>`. The secret is
random per process (a restart invalidates open forms: the page is simply reloaded), so
nothing needs storing. A form carries the token in a hidden field; the POST handler checks
that it is well formed, signed for the same user, not from the future and not older than
`max_age_s` (compared in constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

FIELD = "csrf_token"
MAX_AGE_S = 2 * 3600


class Csrf:
    """Issues and checks tokens with one secret."""

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        max_age_s: int = MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.max_age_s = max_age_s
        self._clock = clock

    def _sign(self, user: str, issued: int) -> str:
        message = f"{user}\n{issued}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def issue(self, user: str) -> str:
        """A fresh token for `user`."""
        issued = int(self._clock())
        return f"{issued}.{self._sign(user, issued)}"

    def problem(self, token: str | None, user: str) -> str | None:
        """None when `token` is valid for `user` now; else why not (for the 403 page)."""
        if not token:
            return "the form carried no CSRF token"
        issued_text, _, signature = token.partition(".")
        if not issued_text.isdigit() or not signature:
            return "the form's CSRF token is malformed"
        issued = int(issued_text)
        if not hmac.compare_digest(signature, self._sign(user, issued)):
            return "the form's CSRF token is not valid for you (or the server restarted)"
        age = self._clock() - issued
        if age > self.max_age_s or age < -60:
            return "the form's CSRF token has expired"
        return None


TOKENS = Csrf()  # this process's secret
