"""The Jira plug-in's settings: `flavor` and `email_env` beside the common keys, and scopes
that are project keys."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Literal

from okrsync.config import ConnectorConfig
from okrsync.errors import ConfigError

SCOPE_SHAPE = re.compile(r"[A-Z][A-Z0-9_]{1,254}")
SHAPE = 'a Jira project key such as "WEB" (capital letters, digits and _, starting with a letter)'


class JiraConfig(ConnectorConfig):
    """A `type = "jira"` section (Jira Cloud or Server/Data Center)."""

    # auto: asks /serverInfo once (the answer is kept in the cursor); cloud; server (Server/DC).
    flavor: Literal["auto", "cloud", "server"] = "auto"
    # Jira Cloud's Basic auth: the environment variable holding the account e-mail.
    email_env: str | None = None

    @classmethod
    def scope_problem(cls, scope: str) -> str | None:
        if SCOPE_SHAPE.fullmatch(scope):
            return None
        hint = f"; did you mean {scope.upper()!r}?" if SCOPE_SHAPE.fullmatch(scope.upper()) else ""
        return f"scope {scope!r} is not {SHAPE}{hint}"

    def credentials(self) -> list[tuple[str | None, Callable[[], object]]]:
        return [*super().credentials(), ("email_env", self.email)]

    def email(self) -> str | None:
        """The account e-mail for Jira Cloud basic auth, from `email_env`."""
        if not self.email_env:
            return None
        value = os.environ.get(self.email_env, "").strip()
        if not value:
            raise ConfigError(
                f"connector {self.name!r}: environment variable {self.email_env} "
                "(named by email_env) is not set; export it before starting okrsync"
            )
        return value
