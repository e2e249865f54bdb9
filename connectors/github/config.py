"""The GitHub plug-in's settings: the common keys, scopes that are `owner/repo` names or
`project:<owner>/<number>` boards (GitHub Projects), and the board's status field."""

from __future__ import annotations

import re

from okrsync.config import ConnectorConfig

# `owner/repo`: GitHub logins are letters, digits and hyphens (managed users add `_shortcode`);
# repository names are letters, digits, `.`, `-`, `_`, never `.` or `..` alone. Anything else
# would be pasted into a URL path: `o/r/../../admin` must never get there.
SCOPE_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}/(?!\.\.?\Z)[A-Za-z0-9._-]{1,100}")
# `project:<owner>/<number>`: a project (v2) of an organisation or a user, by its number.
PROJECT_SHAPE = re.compile(r"project:([A-Za-z0-9][A-Za-z0-9_-]{0,99})/([1-9][0-9]{0,8})")
SHAPE = (
    'a GitHub "owner/repo" such as "octocat/Hello-World" (letters, digits, - _ and, in the '
    'repository name, dots; exactly one slash), or a project as "project:<owner>/<number>" '
    'such as "project:acme/12"'
)


def project_of(scope: str) -> tuple[str, int] | None:
    """(owner login, number) of a `project:<owner>/<number>` scope, else None."""
    m = PROJECT_SHAPE.fullmatch(scope)
    return (m.group(1), int(m.group(2))) if m else None


class GitHubConfig(ConnectorConfig):
    """A `type = "github"` section (GitHub.com or Enterprise Server)."""

    # The single-select field of a project whose option is the item's board status; its
    # option name joins the item's status names (`status_map`, the status vocabulary).
    status_field: str = "Status"

    @classmethod
    def scope_problem(cls, scope: str) -> str | None:
        if SCOPE_SHAPE.fullmatch(scope) or PROJECT_SHAPE.fullmatch(scope):
            return None
        return f"scope {scope!r} is not {SHAPE}"
