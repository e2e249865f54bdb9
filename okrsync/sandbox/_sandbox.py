"""`Sandbox`: the in-process control API over the fake trackers and their HTTP server."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from okrsync.sandbox import _asana, _github, _hooks, _jira, _transport
from okrsync.sandbox._core import CREDENTIALS, Env, Request, Response, Settings, json_response
from okrsync.sandbox._data import TRACKERS, Rec, TruthItem, dt_to_ms
from okrsync.sandbox._faults import METRIC_TRACKERS, FaultQueue
from okrsync.sandbox._server import (
    PREFIX_OF,
    App,
    RequestLog,
    SandboxServer,
    Visit,
    Witness,
    admin_json,
)
from okrsync.sandbox._transport import IN_PROCESS_ORIGIN
from okrsync.sandbox._world import TrackerState, World

DEFAULT_SIZES = {"jira": 300, "jira_dc": 200, "asana": 300, "github": 300}

# The list projections `warm` pre-renders: what okrsync's connectors send (incremental listing,
# then census), mirrored from connectors/_jira_normalise.py BASE_FIELDS + the discovered
# estimate / Epic Link fields, connectors/jira.py census, connectors/asana.py TASK_FIELDS and
# CENSUS_FIELDS. Keep in step with the connectors; a mismatch only costs a first-use render.
_JIRA_BASE = (
    "summary,status,resolution,resolutiondate,issuetype,project,parent,labels,assignee,"
    "duedate,created,updated,fixVersions"
)
WARM_JIRA_FIELDS = {
    "jira": (f"{_JIRA_BASE},{_jira.CLOUD_POINTS}", "updated"),
    "jira_dc": (f"{_JIRA_BASE},{_jira.DC_POINTS},{_jira.DC_EPIC_LINK}", "id"),
}
WARM_ASANA_OPT_FIELDS = (
    "name,resource_subtype,completed,completed_at,created_at,modified_at,due_on,assignee.name,"
    "assignee.email,"
    "tags.name,parent.gid,memberships.project.gid,memberships.project.name,"
    "memberships.section.gid,memberships.section.name,permalink_url,custom_fields.name,"
    "custom_fields.number_value,custom_fields.type",
    "gid",
)


class Sandbox:
    """Fake Jira Cloud, Jira DC, Asana and GitHub on one local port (see package docs)."""

    def __init__(
        self,
        seed: int = 7,
        sizes: dict[str, int] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.world = World(seed, DEFAULT_SIZES if sizes is None else sizes)
        self.faults = FaultQueue()
        self.settings = Settings()
        self.credentials: dict[str, str] = dict(CREDENTIALS)
        self.hooks = _hooks.Hooks(self.world)  # webhooks: subscriptions, faults, deliveries
        env = Env(self.world, self.faults, self.settings, self.credentials, self.hooks)
        self.app = App(env, self._admin)
        self._host, self._port = host, port
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._witness: Witness | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> Sandbox:
        self._server = SandboxServer(self._host, self._port, self.app)
        self.hooks.origin = self._server.base
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="okrsync-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
        self.hooks.stop()
        if self._witness is not None:
            self._witness.stop()
            self._witness = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        return int(self._server.server_address[1])

    def base_url(self, tracker: str) -> str:
        """The tracker's base URL: on the started server, else for `transport()`."""
        if tracker not in PREFIX_OF:
            raise ValueError(f"unknown tracker {tracker!r}; known: {list(TRACKERS)}")
        if self._server is None:
            return f"{IN_PROCESS_ORIGIN}{PREFIX_OF[tracker]}"
        return f"http://{self._host}:{self.port}{PREFIX_OF[tracker]}"

    def transport(self) -> httpx.MockTransport:
        """Serve this sandbox in process, no socket (see `_transport.py`); needs no `start()`."""
        return _transport.transport(self.app)

    def warm(self) -> None:
        """Pre-render list JSON bytes so a benchmark's first pass measures the client.

        Renders the projections okrsync's connectors request (`WARM_JIRA_FIELDS`,
        `WARM_ASANA_OPT_FIELDS`, GitHub's one shape) with the current `jira_timezone`; any
        other projection is rendered and cached on first use. Needs a started server.
        """
        tz, base = self.settings.jira_timezone, self.base_url("github")
        with self.world.lock:
            for tracker in ("jira", "jira_dc", "asana", "github"):
                state = self.world.state(tracker)
                live = [rec for rec in state.recs.values() if not rec.deleted]
                if tracker == "github":
                    for rec in live:
                        _github.issue_bytes(rec, state, base)
                elif tracker == "asana":
                    self._warm_asana(state, live)
                else:
                    self._warm_jira(state, live, tz)

    def _warm_jira(self, state: TrackerState, live: list[Rec], tz: str) -> None:
        wanted = [_jira.parse_fields(f, default_all=False) for f in WARM_JIRA_FIELDS[state.name]]
        keys = [_jira.bytes_key(tz, w) for w in wanted]
        full_key = f"jira:{tz}"
        for rec in live:
            had_full = full_key in rec.cache
            _jira.all_fields(rec, state, tz)  # built once, shared by every projection
            for w, key in zip(wanted, keys, strict=True):
                _jira.issue_bytes(rec, state, tz, w, key)
            if not had_full:
                del rec.cache[full_key]  # only the bytes are served from lists

    def _warm_asana(self, state: TrackerState, live: list[Rec]) -> None:
        projects = self.world.asana_projects
        trees = [(o, _asana.field_tree(o)) for o in WARM_ASANA_OPT_FIELDS]
        for rec in live:
            had_full = "asana" in rec.cache
            _asana.full_task(rec, state, projects)  # built once, shared by every projection
            for opt_fields, tree in trees:
                _asana.selected(rec, state, projects, opt_fields, tree)
            if not had_full:
                del rec.cache["asana"]

    # --- settings -----------------------------------------------------------------------

    @property
    def jira_timezone(self) -> str:
        return self.settings.jira_timezone

    @jira_timezone.setter
    def jira_timezone(self, value: str) -> None:
        self.settings.jira_timezone = value

    @property
    def github_cursor_over(self) -> int | None:
        """GitHub list issues pages by `after` cursor above this many items (None: by page)."""
        return self.app.github.cursor_over

    @github_cursor_over.setter
    def github_cursor_over(self, value: int | None) -> None:
        self.app.github.cursor_over = value

    def github_rename(self, old_name: str, repo: str) -> None:
        """GitHub answers requests under `/repos/{old_name}` with a 301 to `repo`'s id."""
        self.app.github.renamed[old_name] = repo

    def github_refuse(self, repo: str, status: int | None) -> None:
        """GitHub answers `repo` with 403 (SAML-blocked) or 410 (issues off); None: serve it."""
        if status is None:
            self.app.github.refused.pop(repo, None)
        else:
            self.app.github.refused[repo] = status

    # --- data ---------------------------------------------------------------------------

    def scopes(self, tracker: str) -> list[str]:
        return list(self.world.state(tracker).scopes)

    def truth(self, tracker: str) -> dict[str, TruthItem]:
        with self.world.lock:
            return {r.ext_id: r.truth() for r in self.world.truth(tracker)}

    def mutate(self, tracker: str, n: int, rng_seed: int | None = None) -> list[str]:
        with self.world.lock:
            return self.world.mutate(tracker, n, rng_seed)

    def update(self, tracker: str, external_id: str, **fields: Any) -> None:
        with self.world.lock:
            rec = self.world.rec(tracker, external_id)
            if rec.deleted:
                raise KeyError(f"{tracker}: {external_id} is deleted")
            self.world.change(rec, fields)

    def create(self, tracker: str, scope: str, title: str) -> str:
        """A new open issue (Asana: task) in `scope`; its external id."""
        with self.world.lock:
            return self.world.create(tracker, scope, title).ext_id

    def delete(self, tracker: str, external_id: str) -> None:
        with self.world.lock:
            self.world.delete(tracker, external_id)

    def move(self, tracker: str, external_id: str, new_scope: str) -> None:
        with self.world.lock:
            self.world.move(tracker, external_id, new_scope)

    def add_section(self, project: str, name: str) -> str:
        """Asana: a new empty section at the end of `project` (an `added` event); its gid."""
        return _asana.add_section(self.world, project, name)

    def rename_section(self, gid: str, name: str) -> None:
        """Asana: rename a section (a `changed` section event; its tasks' names follow)."""
        _asana.rename_section(self.world, gid, name)

    def delete_section(self, gid: str) -> None:
        """Asana: delete an added, empty section (a `deleted` section event)."""
        _asana.delete_section(self.world, gid)

    def set_updated(self, tracker: str, external_ids: list[str], when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("when must be timezone-aware")
        ms = dt_to_ms(when)
        ms = ms // 1000 * 1000 if tracker == "github" else ms
        with self.world.lock:
            for external_id in external_ids:
                self.world.change(self.world.rec(tracker, external_id), {}, when_ms=ms)

    # --- GitHub Projects (v2): the boards `_projects.py` holds ---------------------------

    def project_truth(self, project: str) -> list[dict[str, Any]]:
        """The board `owner/number` (or `project:owner/number`) as a correct connector sees
        it: one dict per item (id, type, external_id, key, title, archived, values by name)."""
        with self.world.lock:
            return self.world.projects.truth(project)

    def project_set(self, project: str, item: int, field: str, value: Any) -> None:
        """Set a board field of an item (None clears it): an option's name ("Done"), an
        iteration's title ("Sprint 15"), a number, a text or an ISO date. Bumps the item's and
        the project's `updatedAt`, not the issue's."""
        with self.world.lock:
            self.world.projects.set_value(project, int(item), field, value)

    def project_add(self, project: str, external_id: str | None = None, draft: str = "") -> int:
        """Add the GitHub issue or PR `external_id`, or a draft titled `draft`, at the end of
        the board; the new item's database id."""
        with self.world.lock:
            rec = self.world.rec("github", external_id) if external_id else None
            if rec is None and not draft:
                raise ValueError("project_add needs external_id or draft")
            return self.world.projects.add(project, rec, draft).database_id

    def project_remove(self, project: str, item: int) -> None:
        with self.world.lock:
            self.world.projects.remove(project, int(item))

    def project_archive(self, project: str, item: int, archived: bool = True) -> None:
        with self.world.lock:
            self.world.projects.archive(project, int(item), archived)

    # --- access and faults --------------------------------------------------------------

    def inject(self, tracker: str, fault: str, count: int = 1, **params: Any) -> None:
        if tracker not in METRIC_TRACKERS:
            self.world.state(tracker)
        if fault == "offorigin_link":
            params.setdefault("origin", self.witness.origin)
        self.faults.add(tracker, fault, count, params)

    def clear_faults(self) -> None:
        """Drop every queued fault (a hostile fault meant to last a run takes a large count)."""
        self.faults.clear()

    @property
    def witness(self) -> Witness:
        """A second listener on another port of this host (started on first use): where
        `offorigin_link` points by default. `witness.visits` lists what reached it."""
        if self._witness is None:
            self._witness = Witness(self._host)
        return self._witness

    def revoke_token(self, tracker: str) -> None:
        self.world.state(tracker).revoked = True

    def restore_token(self, tracker: str) -> None:
        self.world.state(tracker).revoked = False

    def hide_scope(self, tracker: str, scope: str) -> None:
        self.world.state(tracker).hidden.add(scope)

    def unhide_scope(self, tracker: str, scope: str) -> None:
        self.world.state(tracker).hidden.discard(scope)

    @property
    def requests(self) -> list[RequestLog]:
        with self.app.log_lock:
            return list(self.app.log)

    def clear_requests(self) -> None:
        with self.app.log_lock:
            self.app.log.clear()

    def stats(self) -> dict[str, Any]:
        counts: dict[str, dict[str, int]] = {}
        for entry in self.requests:
            per = counts.setdefault(entry.tracker, {})
            per[str(entry.status)] = per.get(str(entry.status), 0) + 1
        return {"requests": counts, "faults_fired": dict(self.faults.fired)}

    # --- admin endpoints ----------------------------------------------------------------

    def _admin(self, req: Request) -> Response:
        try:
            args = admin_json(req)
            result = self._admin_call(req.path.strip("/"), args)
        except (ValueError, KeyError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})
        if result is NotImplemented:
            return json_response(404, {"error": f"no admin endpoint {req.path}"})
        return json_response(200, result)

    def _admin_call(self, name: str, a: dict[str, Any]) -> Any:
        tracker = a.get("tracker", "")
        if name == "truth":
            return [_truth_json(t) for t in self.truth(tracker).values()]
        if name == "stats":
            return self.stats()
        if name in ("requests", "clear_requests", "github_paging"):
            return self._admin_log_and_paging(name, tracker, a)
        if name == "witness":
            visits = self.witness.visits
            return {"origin": self.witness.origin, "requests": [_visit_json(v) for v in visits]}
        if name == "clear_faults":
            self.clear_faults()
            return {"ok": True}
        if name in ("hooks", "hook_fault"):
            return self._admin_hooks(name, tracker, a)
        if name.startswith("project_"):
            return self._admin_project(name, a)
        if name == "mutate":
            return self.mutate(tracker, int(a.get("n", 1)), a.get("rng_seed"))
        if name == "create":
            return {"external_id": self.create(tracker, str(a["scope"]), str(a["title"]))}
        if name == "inject":
            params = {k: v for k, v in a.items() if k not in ("tracker", "fault", "count")}
            self.inject(tracker, str(a["fault"]), int(a.get("count", 1)), **params)
        elif name in ("revoke", "restore"):
            (self.revoke_token if name == "revoke" else self.restore_token)(tracker)
        elif name in ("hide_scope", "unhide_scope"):
            getattr(self, name)(tracker, str(a["scope"]))
        elif name in ("delete", "move"):
            self._admin_item(name, tracker, a)
        elif name == "update":
            fields = {k: v for k, v in a.items() if k not in ("tracker", "external_id")}
            self.update(tracker, str(a["external_id"]), **fields)
        else:
            return NotImplemented
        return {"ok": True}

    def _admin_log_and_paging(self, name: str, tracker: str, a: dict[str, Any]) -> Any:
        """`requests` (GET, optional tracker=): the request log; `clear_requests`;
        `github_paging` {"cursor_over": n | null}: see `github_cursor_over`."""
        if name == "requests":
            return [_request_json(e) for e in self.requests if tracker in ("", e.tracker)]
        if name == "clear_requests":
            self.clear_requests()
        else:
            over = a.get("cursor_over")
            self.github_cursor_over = None if over is None else int(over)
        return {"ok": True}

    def _admin_hooks(self, name: str, tracker: str, a: dict[str, Any]) -> Any:
        """`hooks` (GET, optional tracker=): subscriptions (secrets never shown) and
        deliveries; `hook_fault` {"tracker", "fault", "count", ...}: see `Hooks.inject`."""
        if name == "hook_fault":
            params = {k: v for k, v in a.items() if k not in ("tracker", "fault", "count")}
            self.hooks.inject(tracker, str(a["fault"]), int(a.get("count", 1)), **params)
            return {"ok": True}
        subs = [
            {"tracker": s.tracker, "id": s.id, "url": s.url, "scope": s.scope, "events": s.events}
            for s in self.hooks.subscriptions(tracker or None)
        ]
        sent = [dataclasses.asdict(d) for d in self.hooks.deliveries if tracker in ("", d.tracker)]
        return {"subscriptions": subs, "deliveries": sent}

    def _admin_project(self, name: str, a: dict[str, Any]) -> Any:
        """`project_truth` {"project"}; `project_set` {"project", "item", "field", "value"};
        `project_add` {"project", "external_id" | "draft"} → {"item"}; `project_remove` and
        `project_archive` {"project", "item"(, "archived")}."""
        project = str(a["project"])
        if name == "project_truth":
            return self.project_truth(project)
        if name == "project_set":
            self.project_set(project, int(a["item"]), str(a["field"]), a.get("value"))
        elif name == "project_add":
            ext = a.get("external_id")
            item = self.project_add(
                project, None if ext is None else str(ext), str(a.get("draft", ""))
            )
            return {"item": item}
        elif name == "project_remove":
            self.project_remove(project, int(a["item"]))
        elif name == "project_archive":
            self.project_archive(project, int(a["item"]), bool(a.get("archived", True)))
        else:
            return NotImplemented
        return {"ok": True}

    def _admin_item(self, name: str, tracker: str, a: dict[str, Any]) -> None:
        if name == "delete":
            self.delete(tracker, str(a["external_id"]))
        else:
            self.move(tracker, str(a["external_id"]), str(a["new_scope"]))


def _truth_json(item: TruthItem) -> dict[str, Any]:
    data = dataclasses.asdict(item)
    data["updated"] = item.updated.isoformat()
    data["labels"] = list(item.labels)
    return data


def _request_json(entry: RequestLog) -> dict[str, Any]:
    return {
        "tracker": entry.tracker,
        "method": entry.method,
        "path": entry.path,
        "query": entry.query,
        "status": entry.status,
    }


def _visit_json(visit: Visit) -> dict[str, Any]:
    """A witness visit for the admin API: credentials are reported present, never shown."""
    return {
        "method": visit.method,
        "path": visit.path,
        "authorization": "authorization" in visit.headers,
    }
