"""Fake Jira Cloud, Jira Data Center, Asana and GitHub servers on 127.0.0.1.

One stdlib HTTP server, one port, a path prefix per tracker: `/jira` (Cloud, v3),
`/jira-dc` (v2), `/asana` (like `https://app.asana.com/api/1.0`), `/github` (like GHE's
`/api/v3`), the metric APIs measured key results read (`/prometheus`, Prometheus's query API,
and `/metrics-json`, a KPI JSON API; see `metrics.py`), and JSON control endpoints under
`/_sandbox/` (mutate, update, delete, move, inject, revoke, restore, hide_scope, unhide_scope,
clear_faults, hook_fault: POST; truth?tracker=, stats, witness, hooks: GET). The trackers
accept webhook registrations and send signed deliveries on every change (`_hooks.py`,
`sb.hooks`). Hostile faults (off-origin links,
paging loops, huge pages and fields, escape sequences; see `_faults.py`) serve the fault
matrix's hostile section; a second listener, `sb.witness`, records whatever an off-origin link
makes a client send it.

    with Sandbox(seed=7, sizes={"jira": 300, "jira_dc": 200, "asana": 300, "github": 300}) as sb:
        sb.base_url("jira"); sb.credentials; sb.truth("github"); sb.inject("asana", "429")

The data set is generated from `random.Random(seed)`: timestamps over the 120 days before the
construction time, deliberate `updated` ties around every 25th position of each scope's
(updated, id) order (so across page boundaries of 25/50/100) plus random ones.

Truth conventions (what a correct connector produces; `sb.truth(tracker)`)
-------------------------------------------------------------------------
Common: `updated` is the vendor's updated/modified timestamp as an aware UTC datetime;
`deleted=True` items stay in truth; `labels` are sorted; status categories are
todo / in_progress / done / dropped.

* Jira Cloud and DC (`jira`, `jira_dc`): every issue, epics included. external_id = the
  issue id (numeric string), key = issue key, scope = project key. kind = "epic" for issue
  type Epic, else "issue" (Story/Task/Bug/Sub-task). parent_key: Cloud = `fields.parent.key`
  (epic of a story, or the parent of a sub-task); DC = the parent for sub-tasks, else the
  "Epic Link" (customfield_10008). estimate: Cloud `customfield_10016` ("Story point
  estimate"; "Story Points" customfield_10026 exists but is always empty), DC
  `customfield_10002` ("Story Points"); epics have none. Status: "To Do" → todo, "In
  Progress" → in_progress, "Done" (resolution Done) → done, "Cancelled" (resolution
  "Won't Do", category done) → dropped. Moving an issue gives it a new key in the new
  project (same id); its sub-tasks move too, and children's parent keys follow.
  Projects are not truth items.
* Asana (`asana`): every task (subtasks too; they are also members of the project) with
  kind "task" (resource_subtype "milestone" tasks are containers: kind "milestone"),
  external_id = key = gid, scope = project gid, parent_key = parent task gid, labels = tag
  names, estimate = the number custom field "Estimate". Status: section "Cancelled" →
  dropped (whatever `completed` says), else completed → done, section "In Progress" →
  in_progress, else todo. Sections are containers in truth: kind "section", external_id
  "section:<gid>", key = "section:<gid>", title = section name, status todo, updated = created_at.
  Projects are not truth items.
* GitHub (`github`): issues (kind "issue") and pull requests (kind "pull_request"),
  external_id = numeric `id`, key = "owner/repo#number", scope = "owner/repo",
  parent_key None, estimate None. Status: open → todo, except an open pull request or an
  issue labelled "in progress"/"in-progress"/"wip" → in_progress; closed `state_reason:
  completed` or a merged PR → done; `not_planned` or a PR closed unmerged → dropped.
  Milestones are containers: kind "milestone", external_id "milestone:owner/repo#N",
  key "owner/repo#mN", status open → todo / closed → done, updated = the milestone's
  `updated_at` (never changes); each is referenced by at least one issue at generation. A
  transferred issue gets a new repo and number, same id; it loses its milestone.
* GitHub Projects (v2) (`POST /github/graphql`, `_graphql.py`; boards in `_projects.py`):
  `sb.project_truth("acme/12")` lists a board's items (id, type, external_id of the issue or
  PR, values by field name); `project_set`, `project_add`, `project_remove`,
  `project_archive` change it (also `POST /_sandbox/project_*`); GraphQL faults
  `graphql_rate_limited`, `graphql_secondary`, `graphql_partial`.

Behaviour details per tracker live in `_jira`, `_jql`, `_asana` and `_github`; faults in
`_faults`; the HTTP layer in `_server`.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from okrsync.sandbox._data import TruthItem
from okrsync.sandbox._sandbox import DEFAULT_SIZES, Sandbox
from okrsync.sandbox._server import RequestLog

__all__ = ["DEFAULT_SIZES", "RequestLog", "Sandbox", "TruthItem", "serve"]


def serve(
    port: int, seed: int, sizes: dict[str, int], host: str = "127.0.0.1", warm: bool = False
) -> None:
    """Run a sandbox until SIGINT/SIGTERM, printing base URLs and the (fake) credentials."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    with Sandbox(seed=seed, sizes=sizes, port=port, host=host) as sb:
        if warm:
            sb.warm()
        for tracker in ("jira", "jira_dc", "asana", "github"):
            print(f"{tracker:8} {sb.base_url(tracker)}  scopes={','.join(sb.scopes(tracker))}")
        for api in ("prometheus", "metrics_json"):
            print(f"{api:12} {sb.base_url(api)}")
        for name, value in sb.credentials.items():
            print(f"{name:14} {value}")
        print(f"admin    http://{host}:{sb.port}/_sandbox/stats", flush=True)
        stop.wait()
    for sig, handler in previous.items():
        signal.signal(sig, handler)
