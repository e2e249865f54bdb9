"""GitHub webhooks for `okrsync hooks` (docs/webhooks.md): one repository hook per repo in
scope, JSON, with the connector's webhook secret.

GitHub REST (2022-11-28): `GET /repos/{owner}/{repo}/hooks` lists a repository's hooks
(`config.url` each), `POST` the same path creates one (`name` "web", `active`, `events`,
`config.url`, `config.content_type` "json", `config.secret`, `config.insecure_ssl` "0").
Both need a classic token with `admin:repo_hook` (or `repo`) or a fine-grained one with
"Webhooks: read and write"; without it GitHub answers 404 (classic) or 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from okrsync.connector import HookTarget

if TYPE_CHECKING:
    from okrsync.config import ConnectorConfig
    from okrsync.http import Http

EVENTS = ["issues", "pull_request", "milestone"]


class GitHubWebhooks:
    """The `webhooks` of the GitHub plug-in (`okrsync.connector.Webhooks`)."""

    route: ClassVar[str] = "github"
    content_type: ClassVar[str] = "application/json"
    needs: ClassVar[str] = (
        "a classic token with admin:repo_hook, or a fine-grained one with "
        "Webhooks: read and write, on each repository"
    )
    handshake: ClassVar[bool] = False

    def events(self, config: ConnectorConfig) -> list[str]:
        return list(EVENTS)

    async def existing(self, config: ConnectorConfig, http: Http, url: str) -> list[HookTarget]:
        found = []
        for repo in _repos(config):
            hook = await _hook_for(config, http, repo, url)
            if hook is not None:
                found.append(HookTarget(repo, str(hook["id"])))
        return found

    async def register(
        self, config: ConnectorConfig, http: Http, url: str, secret: str | None
    ) -> list[HookTarget]:
        found = {hook.where: hook for hook in await self.existing(config, http, url)}
        return [found.get(r) or await _create(config, http, r, url, secret) for r in _repos(config)]


def _repos(config: ConnectorConfig) -> list[str]:
    """The repositories of the scope: a project board (`project:acme/12`) has no repository
    hooks, its issues' changes arrive through their repositories' hooks."""
    return [s for s in config.scope if not s.startswith("project:")]


def _hooks_url(config: ConnectorConfig, repo: str) -> str:
    return f"{config.base_url.rstrip('/')}/repos/{repo}/hooks"


async def _hook_for(
    config: ConnectorConfig, http: Http, repo: str, url: str
) -> dict[str, Any] | None:
    """The repository's hook delivering to `url`, if any (the first 100 hooks: GitHub allows
    at most 20 per event on a repository)."""
    _, hooks = await http.get_json(_hooks_url(config, repo), params={"per_page": 100})
    listed = hooks if isinstance(hooks, list) else []
    return next((h for h in listed if (h.get("config") or {}).get("url") == url), None)


async def _create(
    config: ConnectorConfig, http: Http, repo: str, url: str, secret: str | None
) -> HookTarget:
    hook_config = {"url": url, "content_type": "json", "insecure_ssl": "0"}
    if secret:
        hook_config["secret"] = secret
    body = {"name": "web", "active": True, "events": EVENTS, "config": hook_config}
    _, created = await http.request("POST", _hooks_url(config, repo), json_body=body)
    hook_id = created.get("id", "?") if isinstance(created, dict) else "?"
    return HookTarget(repo, str(hook_id), created=True)


webhooks = GitHubWebhooks()
