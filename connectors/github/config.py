"""The GitHub plug-in's settings: the common keys, and scopes that are `owner/repo` names."""

from __future__ import annotations

import re

from okrsync.config import ConnectorConfig

# `owner/repo`: GitHub logins are letters, digits and hyphens (managed users add `_shortcode`);
# repository names are letters, digits, `.`, `-`, `_`, never `.` or `..` alone. Anything else
# would be pasted into a URL path: `o/r/../../admin` must never get there.
SCOPE_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}/(?!\.\.?\Z)[A-Za-z0-9._-]{1,100}")
SHAPE = (
    'a GitHub "owner/repo" such as "octocat/Hello-World" (letters, digits, - _ and, in the '
    "repository name, dots; exactly one slash)"
)


class GitHubConfig(ConnectorConfig):
    """A `type = "github"` section (GitHub.com or Enterprise Server)."""

    @classmethod
    def scope_problem(cls, scope: str) -> str | None:
        return None if SCOPE_SHAPE.fullmatch(scope) else f"scope {scope!r} is not {SHAPE}"
