"""Jira webhooks for `okrsync hooks` (docs/webhooks.md): one webhook per connector, for the
issue events, filtered by JQL to the projects in scope, signed with the webhook secret.

Jira's REST webhooks API (Cloud administration and Server/Data Center alike):
`GET /rest/webhooks/1.0/webhook` lists every webhook (`url`, `self`), `POST` creates one
(`name`, `url`, `events`, `filters["issue-related-events-section"]` a JQL, `excludeBody`
false, `secret`). Both need the Jira administrators global permission; without it Jira
answers 401 or 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from okrsync.connector import HookTarget

if TYPE_CHECKING:
    from okrsync.config import ConnectorConfig
    from okrsync.http import Http

EVENTS = ["jira:issue_created", "jira:issue_updated", "jira:issue_deleted"]
PATH = "/rest/webhooks/1.0/webhook"


class JiraWebhooks:
    """The `webhooks` of the Jira plug-in (`okrsync.connector.Webhooks`)."""

    route: ClassVar[str] = "jira"
    content_type: ClassVar[str] = "application/json"
    needs: ClassVar[str] = "a user with the Jira administrators global permission"
    handshake: ClassVar[bool] = False

    def events(self, config: ConnectorConfig) -> list[str]:
        return list(EVENTS)

    async def existing(self, config: ConnectorConfig, http: Http, url: str) -> list[HookTarget]:
        hook = await _hook_for(config, http, url)
        return [] if hook is None else [HookTarget(jql(config), _id_of(hook))]

    async def register(
        self, config: ConnectorConfig, http: Http, url: str, secret: str | None
    ) -> list[HookTarget]:
        return await self.existing(config, http, url) or [await _create(config, http, url, secret)]


async def _create(config: ConnectorConfig, http: Http, url: str, secret: str | None) -> HookTarget:
    body: dict[str, Any] = {
        "name": f"okrsync {config.name}",
        "url": url,
        "events": EVENTS,
        "filters": {"issue-related-events-section": jql(config)},
        "excludeBody": False,
    }
    if secret:
        body["secret"] = secret
    _, created = await http.request("POST", _api(config), json_body=body)
    made = created if isinstance(created, dict) else {}
    return HookTarget(jql(config), _id_of(made), created=True)


def jql(config: ConnectorConfig) -> str:
    """The filter for the connector's projects: `project in ("ALPHA", "BETA")`."""
    return "project in (" + ", ".join(f'"{key}"' for key in config.scope) + ")"


def _api(config: ConnectorConfig) -> str:
    return config.base_url.rstrip("/") + PATH


def _id_of(hook: dict[str, Any]) -> str:
    return str(hook.get("self", "?")).rstrip("/").rsplit("/", 1)[-1]


async def _hook_for(config: ConnectorConfig, http: Http, url: str) -> dict[str, Any] | None:
    _, hooks = await http.get_json(_api(config))
    listed = hooks if isinstance(hooks, list) else []
    return next((h for h in listed if isinstance(h, dict) and h.get("url") == url), None)


webhooks = JiraWebhooks()
