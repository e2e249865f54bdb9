"""Asana webhooks for `okrsync hooks` (docs/webhooks.md): one webhook per project in scope,
for task events; Asana chooses each webhook's secret at a handshake with the daemon, so each
targets `<url>?resource=<project gid>` and the daemon keeps the secret under that project
(its handshake window is opened per project: `Store.expect_webhook_handshake(resource=...)`).

Asana API: `GET /webhooks?workspace=<gid>&resource=<project gid>` lists the webhooks on a
project (`target` each); `POST /webhooks` `{"data": {"resource", "target", "filters"}}`
creates one, and answers only after Asana's handshake with `target` succeeded (the daemon
must be running and expecting it: `Store.expect_webhook_handshake`). Any token that can see
the project may create its webhooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from okrsync.connector import HookTarget, resource_url

if TYPE_CHECKING:
    from okrsync.config import ConnectorConfig
    from okrsync.http import Http

FILTERS = [
    {"resource_type": "task", "action": action}
    for action in ("added", "changed", "removed", "deleted", "undeleted")
]


class AsanaWebhooks:
    """The `webhooks` of the Asana plug-in (`okrsync.connector.Webhooks`)."""

    route: ClassVar[str] = "asana"
    content_type: ClassVar[str] = "application/json"
    needs: ClassVar[str] = "a token that can see each project; the daemon running (handshake)"
    handshake: ClassVar[bool] = True

    def events(self, config: ConnectorConfig) -> list[str]:
        return [f"task {f['action']}" for f in FILTERS]

    async def existing(self, config: ConnectorConfig, http: Http, url: str) -> list[HookTarget]:
        found = []
        workspace = await _workspace(config, http)
        for project in config.scope:
            hook = await _hook_for(config, http, workspace, project, resource_url(url, project))
            if hook is not None:
                found.append(HookTarget(project, str(hook.get("gid", "?"))))
        return found

    async def register(
        self, config: ConnectorConfig, http: Http, url: str, secret: str | None
    ) -> list[HookTarget]:
        found = {hook.where: hook for hook in await self.existing(config, http, url)}
        return [found.get(p) or await _create(config, http, p, url) for p in config.scope]


def _api(config: ConnectorConfig, path: str) -> str:
    return config.base_url.rstrip("/") + path


async def _create(config: ConnectorConfig, http: Http, project: str, url: str) -> HookTarget:
    """A webhook on `project` (Asana answers once its handshake with the target succeeded)."""
    where = resource_url(url, project)
    body = {"data": {"resource": project, "target": where, "filters": FILTERS}}
    _, created = await http.request("POST", _api(config, "/webhooks"), json_body=body)
    data = created.get("data", {}) if isinstance(created, dict) else {}
    return HookTarget(project, str(data.get("gid", "?")), created=True)


async def _workspace(config: ConnectorConfig, http: Http) -> str:
    """The workspace of the first project in scope (listing webhooks needs it)."""
    _, body = await http.get_json(
        _api(config, f"/projects/{config.scope[0]}"), params={"opt_fields": "workspace.gid"}
    )
    data = body.get("data", {}) if isinstance(body, dict) else {}
    return str((data.get("workspace") or {}).get("gid", ""))


async def _hook_for(
    config: ConnectorConfig, http: Http, workspace: str, project: str, url: str
) -> dict[str, Any] | None:
    _, body = await http.get_json(
        _api(config, "/webhooks"), params={"workspace": workspace, "resource": project}
    )
    listed = body.get("data", []) if isinstance(body, dict) else []
    return next((h for h in listed if isinstance(h, dict) and h.get("target") == url), None)


webhooks = AsanaWebhooks()
