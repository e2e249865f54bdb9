"""Notifications out (docs/notifications.md): what changed becomes events (`events`, pure),
queued per channel in the store's outbox and sent by the daemon (`daemon`, `outbox`) over
Slack, Teams, a signed JSON webhook or e-mail (`channels`)."""
