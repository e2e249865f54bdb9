"""Channels (okrsync.notify.channels) and their configuration (okrsync.config_notify): each
kind's payload, the generic webhook's signature, a URL that is a secret (never followed
elsewhere, never in an error), and `[[notify]]` mistakes refused at their file:line."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path

import httpx
import pytest

from okrsync.config import load_settings
from okrsync.config_notify import NotifyChannel, SlackChannel, TeamsChannel, WebhookChannel
from okrsync.errors import ConfigError
from okrsync.notify.channels import SendFailed, send
from okrsync.notify.events import Event
from tests.helpers import write

URL = "https://hooks.example.com/services/T000/B000/s3cretpath"

EVENT = Event(
    key="status:key_result:conv:9",
    kind="status",
    subject_type="key_result",
    subject_id="conv",
    title="Trial <conversion> & more",
    objective_id="grow",
    before="on_track",
    after="at_risk",
    at="2026-11-15T12:00:00+00:00",
    figures={"progress": 0.4, "expected": 0.5, "current": 40, "start": 0, "target": 100},
)


def deliver(
    channel: NotifyChannel, answer: int = 200, public_url: str | None = "https://okr.example.com"
) -> list[httpx.Request]:
    """Send EVENT on `channel` through an in-process transport answering `answer`."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(answer, headers={"Location": "https://elsewhere.example.org/"})

    asyncio.run(
        send(channel, EVENT, public_url, timeout_s=5, transport=httpx.MockTransport(handler))
    )
    return seen


@pytest.fixture(autouse=True)
def _url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKRSYNC_TEST_HOOK_URL", URL)
    monkeypatch.setenv("OKRSYNC_TEST_HOOK_SECRET", "hmac-key-123")


def test_slack_gets_text_and_blocks_with_the_figures_and_the_link() -> None:
    """Slack: `text` names the change; `blocks` hold the figures and the /kr/ link, with
    Slack's control characters escaped."""
    [request] = deliver(SlackChannel(name="s", url_env="OKRSYNC_TEST_HOOK_URL"))
    assert str(request.url) == URL
    body = json.loads(request.content)
    assert body["text"] == (
        "Key result conv “Trial &lt;conversion&gt; &amp; more”: status on track → at risk"
    )
    flat = json.dumps(body["blocks"], ensure_ascii=False)
    assert "40% (expected 50%)" in flat
    assert "40 (start 0, target 100)" in flat
    assert "<https://okr.example.com/kr/conv|Open>" in flat


def test_teams_gets_one_adaptive_card_with_facts_and_an_open_action() -> None:
    """Teams workflow webhook: a message whose one attachment is an Adaptive Card."""
    [request] = deliver(TeamsChannel(name="t", kind="teams", url_env="OKRSYNC_TEST_HOOK_URL"))
    body = json.loads(request.content)
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["progress"] == "40% (expected 50%)"
    assert card["actions"][0]["url"] == "https://okr.example.com/kr/conv"


def test_the_generic_webhook_is_signed_over_its_timestamp_and_body() -> None:
    """HMAC-SHA256 with the channel's secret over `<timestamp>.<body>`, in
    X-Okrsync-Signature; the body is okrsync's document with the event."""
    channel = WebhookChannel(
        name="w", kind="webhook", url_env="OKRSYNC_TEST_HOOK_URL",
        secret_env="OKRSYNC_TEST_HOOK_SECRET",
    )  # fmt: skip
    [request] = deliver(channel, public_url=None)
    stamp = request.headers["X-Okrsync-Timestamp"]
    mac = hmac.new(b"hmac-key-123", stamp.encode() + b"." + request.content, hashlib.sha256)
    assert request.headers["X-Okrsync-Signature"] == "sha256=" + mac.hexdigest()
    assert request.headers["X-Okrsync-Delivery"] == EVENT.key
    body = json.loads(request.content)
    assert body["schema"] == "okrsync.notification/1"
    assert body["event"]["after"] == "at_risk"
    assert body["link"] is None


def test_a_redirect_is_not_followed_and_a_failure_names_no_url() -> None:
    """A 302 is a failure (the secret URL's body never goes to another origin); 500 too;
    neither message holds the URL or its secret path."""
    channel = SlackChannel(name="s", url_env="OKRSYNC_TEST_HOOK_URL")
    for answer in (302, 500):
        with pytest.raises(SendFailed) as failed:
            deliver(channel, answer)
        assert str(failed.value) == f"the slack webhook answered HTTP {answer}"


def test_an_unreachable_webhook_fails_with_one_line_without_the_url() -> None:
    """Nothing listening: SendFailed naming the kind, not the URL."""
    channel = SlackChannel(name="s", url_env="OKRSYNC_TEST_HOOK_URL")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused to " + str(request.url))

    with pytest.raises(SendFailed) as failed:
        asyncio.run(send(channel, EVENT, None, timeout_s=1, transport=httpx.MockTransport(refuse)))
    assert str(failed.value) == "cannot reach the slack webhook: ConnectError"


def test_an_unset_url_variable_is_a_failure_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """url_env names a variable that is not set: the send fails saying which."""
    monkeypatch.delenv("OKRSYNC_TEST_HOOK_URL")
    with pytest.raises(SendFailed, match="OKRSYNC_TEST_HOOK_URL"):
        deliver(SlackChannel(name="s", url_env="OKRSYNC_TEST_HOOK_URL"))


def test_notify_mistakes_are_refused_at_their_line(tmp_path: Path) -> None:
    """An unknown kind, a key of another kind, a missing url and a repeated name: each
    reported at its file:line, all at once."""
    cfg = write(
        tmp_path / "okrsync.toml",
        """
        [[notify]]
        name = "a"
        kind = "pager"

        [[notify]]
        name = "b"
        kind = "slack"
        url_env = "X"
        smtp_host = "mail"

        [[notify]]
        name = "c"
        kind = "teams"

        [[notify]]
        name = "d"
        kind = "email"
        smtp_host = "mail"
        from = "okr@example.com"
        to = ["not an address"]
        """,
    )
    with pytest.raises(ConfigError) as refused:
        load_settings(cfg)
    text = str(refused.value)
    assert f"{cfg}:3: notify channel 'a': kind 'pager' is not a notification channel" in text
    assert f"{cfg}:9: unknown key 'notify.1.smtp_host'" in text
    assert f"{cfg}:11: key 'notify.2': a teams channel needs url_env" in text
    assert f"{cfg}:20: key 'notify.3.to': 'not an address' is not an e-mail address" in text


def test_a_relative_url_file_is_read_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """url_file = "slack.url" is read beside the config file, whatever the working folder."""
    write(tmp_path / "conf" / "slack.url", URL + "\n")
    cfg = write(
        tmp_path / "conf" / "okrsync.toml",
        '[[notify]]\nname = "s"\nkind = "slack"\nurl_file = "slack.url"\n',
    )
    monkeypatch.chdir(tmp_path)
    [channel] = load_settings(cfg).notify
    assert isinstance(channel, SlackChannel)
    assert channel.url() == URL
