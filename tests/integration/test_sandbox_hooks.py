"""The sandbox sends webhooks: registration through each vendor's API, signed deliveries on
world changes, Asana's handshake, faults; a local receiver stands in for the daemon."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from okrsync.sandbox import Sandbox
from tests.integration.sandbox_utils import TRACKER, differences, sandbox_world, sync

SIZES = {"jira": 20, "jira_dc": 0, "asana": 20, "github": 20}
GH_SECRET = "gh-s"


@dataclass(frozen=True)
class Got:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A loopback HTTP receiver recording POSTs; answers Asana's handshake when `echo`;
    `on_post`, when set, is called with each POST before it is answered."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.on_post: Callable[[Got], None] | None = None
        self.gate = threading.Event()  # cleared: answers wait until it is set again
        self.gate.set()
        self.got: list[Got] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.got.append(Got(self.path, headers, body))
                if receiver.on_post is not None:
                    receiver.on_post(receiver.got[-1])
                receiver.gate.wait(timeout=10)
                self.send_response(200)
                if receiver.echo and "x-hook-secret" in headers:
                    self.send_header("X-Hook-Secret", headers["x-hook-secret"])
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def deliveries(self) -> list[Got]:
        """What arrived, handshakes left out."""
        return [g for g in self.got if "x-hook-secret" not in g.headers]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(seed=3, sizes=SIZES) as sandbox:
        yield sandbox


def client(sb: Sandbox, tracker: str) -> httpx.Client:
    creds = sb.credentials
    if tracker == "jira":
        return httpx.Client(auth=(creds["jira_email"], creds["jira_token"]), timeout=10)
    token = creds["github_token" if tracker == "github" else "asana_token"]
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10)


def github_hook(sb: Sandbox, url: str, repo: str = "acme/web") -> Any:
    body = {"name": "web", "events": ["issues"], "config": {"url": url, "secret": GH_SECRET}}
    with client(sb, "github") as c:
        return c.post(f"{sb.base_url('github')}/repos/{repo}/hooks", json=body)


def open_issue(sb: Sandbox, repo: str = "acme/web") -> str:
    return next(
        t.external_id
        for t in sb.truth("github").values()
        if t.scope == repo and t.kind == "issue" and t.status == "todo"
    )


def sig(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_github_hook_is_created_listed_and_pinged_with_its_real_fields(
    sb: Sandbox, receiver: Receiver
) -> None:
    """POST /repos/{o}/{r}/hooks answers 201 with GitHub's hook object, masks the secret and
    pings the new hook; listing shows it once."""
    resp = github_hook(sb, receiver.url())
    assert resp.status_code == 201
    hook = resp.json()
    assert hook["type"] == "Repository"
    assert hook["config"] == {
        "content_type": "json",
        "insecure_ssl": "0",
        "url": receiver.url(),
        "secret": "********",
    }
    assert hook["ping_url"].endswith(f"/repos/acme/web/hooks/{hook['id']}/pings")
    with client(sb, "github") as c:
        listed = c.get(f"{sb.base_url('github')}/repos/acme/web/hooks").json()
    assert [h["id"] for h in listed] == [hook["id"]]
    assert sb.hooks.settle()
    ping = receiver.deliveries()[0]
    assert ping.headers["x-github-event"] == "ping"
    assert ping.json()["hook_id"] == hook["id"]


def test_closing_an_issue_sends_a_signed_issues_closed_delivery(
    sb: Sandbox, receiver: Receiver
) -> None:
    """An issue closed in the sandbox reaches the hook as `issues`/`closed`, with the issue,
    repository and sender, `X-Hub-Signature-256` over the raw body and a delivery id."""
    github_hook(sb, receiver.url())
    issue = open_issue(sb)
    sb.update("github", issue, status="done")
    assert sb.hooks.settle()
    got = receiver.deliveries()[-1]
    assert got.headers["x-github-event"] == "issues"
    assert got.headers["x-hub-signature-256"] == "sha256=" + sig(GH_SECRET, got.body)
    assert len(got.headers["x-github-delivery"]) == 36  # a GUID
    payload = got.json()
    assert payload["action"] == "closed"
    assert str(payload["issue"]["id"]) == issue
    assert payload["issue"]["state"] == "closed"
    assert payload["repository"]["full_name"] == "acme/web"
    assert "login" in payload["sender"]


def test_hooks_of_other_repos_and_deleted_hooks_get_nothing(
    sb: Sandbox, receiver: Receiver
) -> None:
    """A change goes only to hooks on its repository, and a deleted hook gets nothing more."""
    hook = github_hook(sb, receiver.url(), repo="acme/api").json()
    sb.update("github", open_issue(sb, "acme/web"), title="elsewhere")
    assert sb.hooks.settle()
    assert [g.headers["x-github-event"] for g in receiver.deliveries()] == ["ping"]
    with client(sb, "github") as c:
        gone = c.delete(f"{sb.base_url('github')}/repos/acme/api/hooks/{hook['id']}")
    assert gone.status_code == 204
    sb.update("github", open_issue(sb, "acme/api"), title="after delete")
    assert sb.hooks.settle()
    assert len(receiver.deliveries()) == 1


def test_github_refuses_a_second_hook_with_the_same_url_and_a_non_loopback_one(
    sb: Sandbox, receiver: Receiver
) -> None:
    """The same URL twice on a repo, or a target off loopback, is a 422 and no hook."""
    assert github_hook(sb, receiver.url()).status_code == 201
    again = github_hook(sb, receiver.url())
    assert again.status_code == 422
    assert again.json()["errors"][0]["message"] == "Hook already exists on this repository"
    assert github_hook(sb, "http://example.com/hooks").status_code == 422
    assert len(sb.hooks.subscriptions("github")) == 1


def test_jira_deletion_is_sent_signed_and_filtered_by_jql(sb: Sandbox, receiver: Receiver) -> None:
    """A Jira webhook filtered to ALPHA gets `jira:issue_deleted` for an ALPHA issue, signed
    `X-Hub-Signature: sha256=` with an identifier; a BETA issue's change is not sent."""
    body = {
        "name": "okrsync",
        "url": receiver.url(),
        "events": ["jira:issue_updated", "jira:issue_deleted"],
        "secret": "jira-s",
        "filters": {"issue-related-events-section": 'project in ("ALPHA")'},
    }
    with client(sb, "jira") as c:
        made = c.post(f"{sb.base_url('jira')}/rest/webhooks/1.0/webhook", json=body)
    assert made.status_code == 201
    assert made.json()["self"].endswith("/rest/webhooks/1.0/webhook/1")
    truth = sb.truth("jira").values()
    alpha = next(t.external_id for t in truth if t.scope == "ALPHA")
    beta = next(t.external_id for t in truth if t.scope == "BETA")
    sb.update("jira", beta, title="not for this hook")
    sb.delete("jira", alpha)
    assert sb.hooks.settle()
    [got] = receiver.deliveries()
    assert got.headers["x-hub-signature"] == "sha256=" + sig("jira-s", got.body)
    assert got.headers["x-atlassian-webhook-identifier"]
    assert got.json()["webhookEvent"] == "jira:issue_deleted"
    assert got.json()["issue"]["id"] == alpha


def asana_hook(sb: Sandbox, target: str, project: str) -> httpx.Response:
    body = {"data": {"resource": project, "target": target}}
    with client(sb, "asana") as c:
        return c.post(f"{sb.base_url('asana')}/webhooks", json=body)


def test_asana_creates_a_webhook_only_after_the_target_echoes_the_handshake(
    sb: Sandbox, receiver: Receiver
) -> None:
    """POST /webhooks handshakes with the target first: a target that does not echo
    `X-Hook-Secret` gets no webhook (400); one that does gets 201 and deliveries signed
    `X-Hook-Signature` with that secret, a deleted task as a `deleted` event."""
    project = sb.scopes("asana")[0]
    mute = Receiver(echo=False)
    try:
        refused = asana_hook(sb, mute.url(), project)
    finally:
        mute.close()
    assert refused.status_code == 400
    assert sb.hooks.subscriptions("asana") == []
    made = asana_hook(sb, receiver.url(), project)
    assert made.status_code == 201
    assert made.json()["data"]["resource"]["gid"] == project
    secret = receiver.got[0].headers["x-hook-secret"]
    task = next(t for t in sb.truth("asana").values() if t.scope == project and t.kind == "task")
    sb.delete("asana", task.external_id)
    assert sb.hooks.settle()
    got = receiver.deliveries()[-1]
    assert got.headers["x-hook-signature"] == sig(secret, got.body)
    [event] = got.json()["events"]
    assert (event["action"], event["resource"]["gid"]) == ("deleted", task.external_id)


def test_asana_webhooks_of_two_projects_keep_their_target_query_and_own_secrets(
    sb: Sandbox, receiver: Receiver
) -> None:
    """Two projects' webhooks targeting `?resource=<gid>` (what `okrsync hooks register`
    creates): each handshake and each delivery goes to its own target, query included, and
    each project's deliveries are signed with the secret of its own handshake."""
    projects = sb.scopes("asana")[:2]
    for project in projects:
        made = asana_hook(sb, receiver.url(f"/hooks/asana/x?resource={project}"), project)
        assert made.status_code == 201
    shakes = {g.path: g.headers["x-hook-secret"] for g in receiver.got}
    assert sorted(shakes) == sorted(f"/hooks/asana/x?resource={p}" for p in projects)
    assert len(set(shakes.values())) == 2
    for project in projects:
        task = next(
            t for t in sb.truth("asana").values() if t.scope == project and t.kind == "task"
        )
        sb.update("asana", task.external_id, title=f"renamed in {project}")
    assert sb.hooks.settle()
    delivered = receiver.deliveries()
    assert sorted(g.path for g in delivered) == sorted(shakes)
    for got in delivered:
        assert got.headers["x-hook-signature"] == sig(shakes[got.path], got.body)


def test_faults_forge_the_signature_replay_a_delivery_and_pad_the_body(
    sb: Sandbox, receiver: Receiver
) -> None:
    """`forged_signature` signs with another key, `replay` sends one delivery id twice,
    `oversize` pads a validly signed body to the size asked."""
    github_hook(sb, receiver.url())
    assert sb.hooks.settle()
    faults: list[tuple[str, dict[str, Any]]] = [
        ("forged_signature", {}),
        ("replay", {}),
        ("oversize", {"size": 300_000}),
    ]
    for fault, params in faults:
        sb.hooks.inject("github", fault, **params)
        sb.update("github", open_issue(sb), title=f"with {fault}")
    assert sb.hooks.settle()
    forged, replay1, replay2, big = receiver.deliveries()[1:]
    assert forged.headers["x-hub-signature-256"] != "sha256=" + sig(GH_SECRET, forged.body)
    assert replay1.headers["x-github-delivery"] == replay2.headers["x-github-delivery"]
    assert replay1.body == replay2.body
    assert len(big.body) > 300_000
    assert big.headers["x-hub-signature-256"] == "sha256=" + sig(GH_SECRET, big.body)


def test_sending_never_blocks_a_change_and_a_dead_target_is_recorded(sb: Sandbox) -> None:
    """A change returns while its receiver has not answered yet (sending is asynchronous);
    a target that is gone is recorded with status 0 and the reason, the world changed."""
    slow = Receiver()
    try:
        github_hook(sb, slow.url())
        assert sb.hooks.settle()
        slow.gate.clear()
        sb.update("github", open_issue(sb), title="slow one")
        assert len(sb.hooks.deliveries) == 1  # only the ping: the update waits on the gate
        slow.gate.set()
        assert sb.hooks.settle()
        assert len(sb.hooks.deliveries) == 2
    finally:
        slow.close()
    sb.update("github", open_issue(sb), status="done")
    assert sb.hooks.settle()
    last = sb.hooks.deliveries[-1]
    assert (last.event, last.status) == ("issues", 0)
    assert last.error


def test_admin_api_lists_hooks_without_secrets_and_takes_faults(
    sb: Sandbox, receiver: Receiver
) -> None:
    """`/_sandbox/hooks` lists subscriptions and deliveries (no secret); `/_sandbox/hook_fault`
    queues a fault, so a test in another process can ask for one."""
    github_hook(sb, receiver.url())
    admin = f"http://127.0.0.1:{sb.port}/_sandbox"
    fault = {"tracker": "github", "fault": "forged_signature"}
    assert httpx.post(f"{admin}/hook_fault", json=fault).status_code == 200
    sb.update("github", open_issue(sb), title="forged")
    assert sb.hooks.settle()
    listed = httpx.get(f"{admin}/hooks").json()
    assert GH_SECRET not in json.dumps(listed)
    assert [d["fault"] for d in listed["deliveries"]] == [None, "forged_signature"]


def test_a_created_issue_is_sent_as_opened_and_created(sb: Sandbox, receiver: Receiver) -> None:
    """`Sandbox.create` adds an open item; GitHub hooks get `issues`/`opened`, Jira hooks
    `jira:issue_created`, with the new item in the payload."""
    github_hook(sb, receiver.url())
    body = {"name": "j", "url": receiver.url(), "events": ["jira:issue_created"]}
    with client(sb, "jira") as c:
        assert c.post(f"{sb.base_url('jira')}/rest/webhooks/1.0/webhook", json=body).is_success
    new_issue = sb.create("github", "acme/web", "A brand new issue")
    new_jira = sb.create("jira", "ALPHA", "A brand new task")
    assert sb.hooks.settle()
    github, jira = receiver.deliveries()[1:]
    assert github.json()["action"] == "opened"
    assert str(github.json()["issue"]["id"]) == new_issue
    assert github.json()["issue"]["title"] == "A brand new issue"
    assert jira.json()["webhookEvent"] == "jira:issue_created"
    assert jira.json()["issue"]["fields"]["summary"] == "A brand new task"
    assert sb.truth("jira")[new_jira].status == "todo"


def test_created_items_are_synced_like_any_other(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Items made by `Sandbox.create` in each tracker are listed by the vendor APIs the
    connectors read: a sync stores them exactly as the sandbox's truth says."""
    with sandbox_world(monkeypatch, tmp_path) as (sb, settings, store):
        for tracker in ("jira", "jira_dc", "asana", "github"):
            sb.create(tracker, sb.scopes(tracker)[-1], f"new in {tracker}")
        assert all(r.status == "ok" for r in sync(settings, store))
        for name in TRACKER:
            assert differences(sb, store, name) == []


VENDORED = Path(__file__).parent.parent / "fixtures" / "webhooks"


def missing_keys(example: Any, ours: Any, at: str = "") -> list[str]:
    """Keys of the vendor's example (nested objects too) that our payload lacks."""
    if not (isinstance(example, dict) and isinstance(ours, dict)):
        return []
    out = [f"{at}.{k}" for k in example if k not in ours]
    for k in example.keys() & ours.keys():
        out += missing_keys(example[k], ours[k], f"{at}.{k}")
    return out


def test_payloads_carry_every_field_of_the_vendors_examples(receiver: Receiver) -> None:
    """Each delivery the sandbox sends has every key (nested too) of the vendor's example of
    that event (tests/fixtures/webhooks: octokit's GitHub examples, Atlassian's and Asana's
    documented shapes)."""
    with Sandbox(seed=3, sizes={**SIZES, "github": 80}) as sb:
        sent = _one_of_each(sb, receiver)
    examples = {
        "ping": "github/ping",
        "issues.closed": "github/issues.closed",
        "issues.deleted": "github/issues.deleted",
        "issues.transferred": "github/issues.transferred",
        "pull_request.closed": "github/pull_request.closed",
        "jira/issue_updated": "jira/issue_updated",
        "jira/issue_created": "jira/issue_created",
        "jira/issue_deleted": "jira/issue_deleted",
        "asana/task_changed": "asana/task_changed",
        "asana/task_added": "asana/task_added",
        "asana/task_deleted": "asana/task_deleted",
    }
    assert sorted(sent) == sorted(examples)
    for name, example in examples.items():
        vendor = json.loads((VENDORED / f"{example}.json").read_text())
        if name.startswith("asana/"):
            vendor, ours = vendor["events"][0], sent[name]["events"][0]
        else:
            ours = sent[name]
        assert missing_keys(vendor, ours) == [], name


def _one_of_each(sb: Sandbox, receiver: Receiver) -> dict[str, Any]:
    """Make one change of each kind; the first payload sent per event name."""
    body = {"name": "web", "events": ["issues", "pull_request"], "config": {"url": receiver.url()}}
    with client(sb, "github") as c:
        c.post(f"{sb.base_url('github')}/repos/acme/web/hooks", json=body)
    jira = {"name": "j", "url": receiver.url(), "events": ["jira:issue_created",
            "jira:issue_updated", "jira:issue_deleted"]}  # fmt: skip
    with client(sb, "jira") as c:
        c.post(f"{sb.base_url('jira')}/rest/webhooks/1.0/webhook", json=jira)
    project = sb.scopes("asana")[0]
    asana_hook(sb, receiver.url(), project)
    truth = sb.truth("github").values()
    web = [t for t in truth if t.scope == "acme/web" and t.status in ("todo", "in_progress")]
    issues = [t.external_id for t in web if t.kind == "issue"]
    pull = next(t.external_id for t in web if t.kind == "pull_request")  # open: in_progress
    sb.update("github", issues[0], status="done")
    sb.delete("github", issues[1])
    sb.move("github", issues[2], "acme/api")
    sb.update("github", pull, status="done")
    alpha = next(t.external_id for t in sb.truth("jira").values() if t.scope == "ALPHA")
    sb.update("jira", alpha, status="in_progress")
    sb.create("jira", "ALPHA", "new")
    sb.delete("jira", alpha)
    task = next(t.external_id for t in sb.truth("asana").values()
                if t.scope == project and t.kind == "task" and t.status == "todo")  # fmt: skip
    sb.update("asana", task, status="done")
    sb.create("asana", project, "new task")
    sb.delete("asana", task)
    assert sb.hooks.settle()
    sent: dict[str, Any] = {}
    for got in receiver.deliveries():
        payload = got.json()
        if "x-github-event" in got.headers:
            action = payload.get("action")
            name = got.headers["x-github-event"] + (f".{action}" if action else "")
        elif "webhookEvent" in payload:
            name = "jira/" + payload["webhookEvent"].split(":")[1]
        else:
            name = "asana/task_" + payload["events"][0]["action"]
        sent.setdefault(name, payload)
    return sent
