"""What a verified delivery means (okrsync.hooks.events), on the vendored deliveries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from okrsync.hooks.events import BadPayload, Delivery, body_id, parse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def raw(kind: str, name: str) -> bytes:
    return (FIXTURES / kind / name).read_bytes()


def github(event: str, name: str, delivery: str | None = DELIVERY) -> Delivery:
    headers = {"x-github-event": event}
    if delivery:
        headers["x-github-delivery"] = delivery
    return parse("github", headers, raw("github", name))


def test_github_issue_closed_asks_for_a_sync_of_its_repository() -> None:
    """issues.closed: a sync of `repository.full_name`, nothing deleted, the delivery id from
    X-GitHub-Delivery."""
    d = github("issues", "issues.closed.json")
    assert (d.action, d.event, d.scope, d.deleted) == (
        "sync",
        "issues.closed",
        "Codertocat/Hello-World",
        (),
    )
    assert d.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def test_github_issue_deleted_deletes_the_issue_id_the_connector_stores() -> None:
    """issues.deleted names the issue's `id` (connectors/github/normalise.py's external id)."""
    d = github("issues", "issues.deleted.json")
    assert (d.action, d.scope, d.deleted) == ("sync", "Codertocat/Hello-World", ("444500041",))


def test_github_issue_transferred_deletes_the_old_issue_in_the_old_repository() -> None:
    """issues.transferred: the issue left `repository`; its old id is deleted there (the new
    issue has another id in another repository)."""
    d = github("issues", "issues.transferred.json")
    body = json.loads(raw("github", "issues.transferred.json"))
    assert d.scope == body["repository"]["full_name"] == "octo-org/octo-repo"
    assert d.deleted == (str(body["issue"]["id"]),)
    assert str(body["changes"]["new_issue"]["id"]) not in d.deleted


def test_github_milestone_deleted_deletes_the_milestone_container() -> None:
    """milestone.deleted names `milestone:<owner/repo>#<number>`, the id milestones get."""
    d = github("milestone", "milestone.deleted.json")
    assert d.deleted == ("milestone:Codertocat/Hello-World#1",)
    assert github("milestone", "milestone.edited.json").deleted == ()


def test_github_pull_request_closed_is_a_sync_hint_only() -> None:
    """pull_request.closed: a sync, no deletion."""
    d = github("pull_request", "pull_request.closed.json")
    assert (d.action, d.event, d.deleted) == ("sync", "pull_request.closed", ())


def test_github_ping_and_other_events() -> None:
    """ping is answered (no sync); an event okrsync does not read (push) is ignored."""
    assert github("ping", "ping.json").action == "ping"
    assert github("push", "issues.closed.json").action == "ignore"


def test_a_delivery_without_an_id_gets_its_bodys_hash() -> None:
    """Without X-GitHub-Delivery, the id is the body's SHA-256: a replay still matches."""
    d = github("issues", "issues.closed.json", delivery=None)
    assert d.delivery_id == body_id(raw("github", "issues.closed.json"))
    assert d.delivery_id.startswith("sha256:")


def test_jira_issue_events() -> None:
    """jira:issue_created/updated: a sync of the issue's project; issue_deleted also deletes
    `issue.id`; the delivery id is X-Atlassian-Webhook-Identifier, else the body's hash."""
    ident = {"x-atlassian-webhook-identifier": "c0a7c7e1-0000-4c4e-9b9a-1234"}
    updated = parse("jira", ident, raw("jira", "issue_updated.json"))
    assert (updated.action, updated.scope, updated.deleted) == ("sync", "WEB", ())
    assert updated.delivery_id == "c0a7c7e1-0000-4c4e-9b9a-1234"
    deleted = parse("jira", {}, raw("jira", "issue_deleted.json"))
    assert (deleted.event, deleted.deleted) == ("jira:issue_deleted", ("10042",))
    assert deleted.delivery_id == body_id(raw("jira", "issue_deleted.json"))
    assert parse("jira", {}, raw("jira", "issue_created.json")).scope == "WEB"


def test_jira_scope_falls_back_to_the_key_prefix() -> None:
    """An issue without fields.project (Server payloads may trim fields): the key's prefix."""
    body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": 7, "key": "OPS-3"}})
    d = parse("jira", {}, body.encode())
    assert (d.scope, d.deleted) == ("OPS", ())


def test_jira_other_events_are_ignored() -> None:
    """comment_created and the like cause no run."""
    assert parse("jira", {}, raw("jira", "comment_created.json")).action == "ignore"


def test_asana_task_events() -> None:
    """Task changes: a sync (no scope in Asana's events); a deleted task's gid is deleted;
    a heartbeat (no events) is ignored."""
    changed = parse("asana", {}, raw("asana", "task_changed.json"))
    assert (changed.action, changed.scope, changed.deleted) == ("sync", None, ())
    deleted = parse("asana", {}, raw("asana", "task_deleted.json"))
    assert deleted.deleted == ("1202222222222222",)
    assert parse("asana", {}, raw("asana", "heartbeat.json")).action == "ignore"
    assert parse("asana", {}, raw("asana", "task_added.json")).action == "sync"


def test_asana_deleted_section_uses_the_section_id() -> None:
    """A deleted section is `section:<gid>`, as connectors/asana/normalise.py stores it."""
    body = {
        "events": [{"action": "deleted", "resource": {"gid": "55", "resource_type": "section"}}]
    }
    assert parse("asana", {}, json.dumps(body).encode()).deleted == ("section:55",)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("github", b"not json"),
        ("github", b"[1, 2]"),
        ("github", b'{"action": "closed"}'),  # an issues event without a repository
        ("jira", b'{"webhookEvent": "jira:issue_deleted", "issue": {}}'),
        ("asana", b'{"events": "all of them"}'),
        ("asana", b"\xff\xfe"),
    ],
)
def test_malformed_bodies_are_bad_payloads(kind: str, body: bytes) -> None:
    """A body that is not the tracker's JSON raises BadPayload (the route answers 400)."""
    with pytest.raises(BadPayload):
        parse(kind, {"x-github-event": "issues"}, body)


def test_fields_of_the_wrong_type_never_crash() -> None:
    """Odd field types are read as absent: a boolean id deletes nothing."""
    body = {"webhookEvent": "jira:issue_deleted", "issue": {"id": "9", "key": 5, "fields": []}}
    assert parse("jira", {}, json.dumps(body).encode()).deleted == ("9",)
    odd = {"action": "deleted", "issue": {"id": True}, "repository": {"full_name": "a/b"}}
    assert parse("github", {"x-github-event": "issues"}, json.dumps(odd).encode()).deleted == ()


@pytest.mark.parametrize("event", ["jira:issue_updated", "jira:issue_deleted"])
def test_a_jira_issue_id_that_is_a_boolean_is_a_bad_payload(event: str) -> None:
    """`true` is no issue id (though Python counts a bool as an int): refused as a missing id is,
    instead of a sync hint that deletes nothing."""
    body = {"webhookEvent": event, "issue": {"id": True, "key": "WEB-1"}}
    with pytest.raises(BadPayload, match=r"without issue\.id"):
        parse("jira", {}, json.dumps(body).encode())
