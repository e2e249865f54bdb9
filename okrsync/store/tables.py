"""The store's tables (SQLAlchemy Core). Only `okrsync.store.Store` writes them.

Note what is absent: a key result has no "current value" column. Its value is the latest
check-in, and check-ins are written only by `Store.add_checkin`, `correct_checkin` and
`delete_checkin` (each with its `checkin_audit` row) — no code path leads from work items to
key-result values (tests/unit/test_invariant.py keeps it that way).

Plain `sa.Table`s on one `MetaData`, no ORM: a sync imports SQLAlchemy's Core alone (the ORM
and SQLModel's pydantic models cost ~25 MB of a process that must stay as small as the tap it
is benched against). Python-side defaults sit on the columns, so an insert may leave them out.
The two row types read back whole (`SyncRunRow`, `WorkItemRow`) are slotted dataclasses built
from a result row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend stores."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()


def _str(name: str, *, nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.String(), nullable=nullable, **kw)


def _opt(name: str, type_: Any = None, **kw: Any) -> sa.Column[Any]:
    """A nullable column (text unless `type_` says otherwise)."""
    return sa.Column(name, type_ if type_ is not None else sa.String(), nullable=True, **kw)


def _utc(name: str, *, nullable: bool = True, index: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(), nullable=nullable, index=index)


def _json(name: str, default: Any, *, server_default: str | None = None) -> sa.Column[Any]:
    return sa.Column(
        name, sa.JSON(), nullable=False, default=default, server_default=server_default
    )


def _num(name: str, default: float | int, type_: Any = sa.Float) -> sa.Column[Any]:
    return sa.Column(name, type_(), nullable=False, default=default)


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Integer(), primary_key=True)


OBJECTIVE = sa.Table(
    "objective",
    metadata,
    _str("id", primary_key=True),
    _str("title"),
    _opt("owner"),
    _opt("period"),
    sa.Column("period_start", sa.Date(), nullable=False),
    sa.Column("period_end", sa.Date(), nullable=False),
    sa.Column("parent_id", sa.String(), sa.ForeignKey("objective.id"), nullable=True),
    _num("weight", 1.0),
    _str("source", default=""),
    _utc("archived_at"),
    _utc("updated_at"),
)

KEY_RESULT = sa.Table(
    "key_result",
    metadata,
    _str("id", primary_key=True),
    sa.Column(
        "objective_id", sa.String(), sa.ForeignKey("objective.id"), nullable=False, index=True
    ),
    _str("title"),
    _opt("unit"),
    sa.Column("start_value", sa.Float(), nullable=False),
    sa.Column("target_value", sa.Float(), nullable=False),
    _str("direction", default="increase"),
    _num("weight", 1.0),
    _str("source", default=""),
    _utc("archived_at"),
    _utc("updated_at"),
    _opt("owner"),  # 0009: who answers for it (a name, an e-mail address or both)
)

CHECKIN = sa.Table(
    "checkin",
    metadata,
    _id(),
    sa.Column(
        "key_result_id", sa.String(), sa.ForeignKey("key_result.id"), nullable=False, index=True
    ),
    sa.Column("value", sa.Float(), nullable=False),
    _opt("confidence", sa.Float()),
    _opt("note"),
    _opt("author"),
    _utc("recorded_at", nullable=False),
    # 0005: a deleted check-in's id is never handed out again (its audit rows keep naming it)
    sqlite_autoincrement=True,
)

# Every write to a check-in (0005): added, corrected (its values before) or deleted (the row
# is gone from `checkin`; its values live on here). Written only by `_okr`.
CHECKIN_AUDIT = sa.Table(
    "checkin_audit",
    metadata,
    _id(),
    sa.Column("checkin_id", sa.Integer(), nullable=False, index=True),
    sa.Column(
        "key_result_id", sa.String(), sa.ForeignKey("key_result.id"), nullable=False, index=True
    ),
    _str("action"),  # "add" | "correct" | "delete"
    _opt("value", sa.Float()),  # the reading after the change (None: deleted)
    _utc("recorded_at"),
    _opt("old_value", sa.Float()),  # the reading before it (None: added)
    _utc("old_recorded_at"),
    _opt("old_confidence", sa.Float()),
    _opt("old_note"),
    _opt("old_author"),
    _opt("changed_by"),
    _utc("changed_at", nullable=False),
    _opt("reason"),
)

TACTIC = sa.Table(
    "tactic",
    metadata,
    _str("id", primary_key=True),
    sa.Column(
        "key_result_id", sa.String(), sa.ForeignKey("key_result.id"), nullable=False, index=True
    ),
    _str("title"),
    _num("weight", 1.0),
    _str("source", default=""),
    _utc("archived_at"),
    _utc("updated_at"),
)

WORK_ITEM = sa.Table(
    "work_item",
    metadata,
    _str("connector", primary_key=True),
    _str("external_id", primary_key=True),
    _str("key", index=True),
    _str("kind"),
    _opt("item_type"),
    _str("title"),
    _opt("url"),
    _opt("container", index=True),
    _opt("parent_key"),
    _json("labels", list),
    _opt("milestone"),
    _opt("section"),
    _opt("assignee"),
    _opt("estimate", sa.Float()),
    _opt("due", sa.Date()),
    _utc("created", nullable=False),
    _utc("updated", nullable=False),
    _utc("completed_at"),
    _str("status_raw", default=""),
    _str("status"),
    _json("custom", dict),
    _json("previous_keys", list),
    _utc("deleted_at"),
    _utc("lost_at"),
    _utc("first_seen", nullable=False),
    _utc("last_seen", nullable=False),
    # 0004: what a changed status_map is re-applied from, and the names matching also reads
    _opt("status_basis"),
    _json("status_names", list, server_default="[]"),
    _opt("container_name"),
    _json("assignee_ids", list, server_default="[]"),
    # 0008: GitHub Projects boards the item is on, their titles, and its iteration there
    _json("boards", list, server_default="[]"),
    _json("board_names", list, server_default="[]"),
    _opt("iteration"),
    _opt("iteration_start", sa.Date()),
    _opt("iteration_end", sa.Date()),  # the day after the iteration's last
)

# An item attached to a tactic, with the rule that made the link.
ITEM_LINK = sa.Table(
    "item_link",
    metadata,
    _str("connector", primary_key=True),
    _str("external_id", primary_key=True),
    _str("tactic_id", primary_key=True, index=True),
    _str("rule_id", primary_key=True),
    _utc("linked_at", nullable=False),
)

SNAPSHOT = sa.Table(
    "signal_snapshot",
    metadata,
    _id(),
    _str("subject_type", index=True),
    _str("subject_id", index=True),
    sa.Column("as_of", sa.Date(), nullable=False),
    _utc("computed_at", nullable=False),
    _str("digest"),
    _json("values", dict),
    # The newest snapshot of a subject is found by one index probe, however long the history.
    sa.Index("ix_signal_snapshot_latest", "subject_type", "subject_id", "id"),
)

SYNC_RUN = sa.Table(
    "sync_run",
    metadata,
    _id(),
    _str("connector", index=True),
    _utc("started_at", nullable=False),
    _utc("ended_at"),
    _str("status", default="running"),
    _num("pages", 0, sa.Integer),
    _num("requests", 0, sa.Integer),
    _num("retries", 0, sa.Integer),
    _num("rate_limit_wait_s", 0.0),
    _num("items_created", 0, sa.Integer),
    _num("items_updated", 0, sa.Integer),
    _num("items_deleted", 0, sa.Integer),
    _json("lost_scopes", list),
    _opt("error"),
    _opt("host"),  # "host:pid", as shown by `okrsync runs`
    # The process running it (None on runs recorded before revision 0003): a run left
    # "running" is abandoned only once this owner is gone (okrsync.locks.owner_alive).
    _opt("owner_host"),
    _opt("owner_pid", sa.Integer()),
    _opt("owner_start"),  # /proc/<pid>/stat starttime ticks @ boot id
    # 0006: "schedule" | "manual" | "webhook"
    sa.Column("trigger", sa.String(), nullable=False, server_default="schedule"),
)

# A tracker delivery already handled (0006), kept a day: a replay finds its row, does nothing.
WEBHOOK_DELIVERY = sa.Table(
    "webhook_delivery",
    metadata,
    _str("connector", primary_key=True),
    _str("delivery_id", primary_key=True),
    _utc("received_at", nullable=False, index=True),
)

# The secret a tracker chose for one webhook of a connector (Asana's X-Hook-Secret handshake),
# by resource (the Asana project gid it watches; "" connector-wide), and until when a handshake
# is expected (0006). A secret: never shown, exported or logged.
WEBHOOK_SECRET = sa.Table(
    "webhook_secret",
    metadata,
    _str("connector", primary_key=True),
    _str("resource", primary_key=True),
    _opt("secret"),
    _utc("handshake_until"),
    _utc("updated_at", nullable=False),
)

# Notifications (0007, okrsync.notify): how far the event scan has read ("snapshot", "run":
# the last id examined), and one outbox row per event and channel. UNIQUE(event_key, channel)
# makes an insert-if-absent atomic, so replicas examining the same rows enqueue an event once.
NOTIFY_WATERMARK = sa.Table(
    "notify_watermark",
    metadata,
    _str("name", primary_key=True),
    sa.Column("value", sa.Integer(), nullable=False),
    _utc("updated_at", nullable=False),
)

NOTIFY_OUTBOX = sa.Table(
    "notify_outbox",
    metadata,
    _id(),
    _str("event_key"),
    _str("channel"),
    _str("kind"),
    _json("event", dict),
    _str("status", default="pending"),  # "pending" | "sending" | "sent" | "failed"
    _num("attempts", 0, sa.Integer),
    _utc("next_at", nullable=False),
    _utc("lease_until"),
    _opt("lease_owner"),
    _utc("created_at", nullable=False),
    _utc("sent_at"),
    _opt("last_error"),
    sa.UniqueConstraint("event_key", "channel", name="uq_notify_outbox_event_channel"),
    sa.Index("ix_notify_outbox_due", "status", "next_at"),
)

CURSOR = sa.Table(
    "sync_cursor",
    metadata,
    _str("connector", primary_key=True),
    _json("value", dict),
    _utc("updated_at", nullable=False),
    _opt("run_id", sa.Integer()),
)


@dataclass(slots=True)
class SyncRunRow:
    """One `sync_run` row, as `okrsync runs` shows it."""

    id: int
    connector: str
    started_at: datetime
    ended_at: datetime | None = None
    status: str = "running"
    pages: int = 0
    requests: int = 0
    retries: int = 0
    rate_limit_wait_s: float = 0.0
    items_created: int = 0
    items_updated: int = 0
    items_deleted: int = 0
    lost_scopes: list[str] = field(default_factory=list)
    error: str | None = None
    host: str | None = None
    owner_host: str | None = None
    owner_pid: int | None = None
    owner_start: str | None = None
    trigger: str = "schedule"

    @classmethod
    def of(cls, row: RowMapping) -> SyncRunRow:
        return cls(**row)


@dataclass(slots=True)
class WorkItemRow:
    """One `work_item` row, every column (tests and tools read items back whole)."""

    connector: str
    external_id: str
    key: str
    kind: str
    item_type: str | None
    title: str
    url: str | None
    container: str | None
    parent_key: str | None
    labels: list[str]
    milestone: str | None
    section: str | None
    assignee: str | None
    estimate: float | None
    due: date | None
    created: datetime
    updated: datetime
    completed_at: datetime | None
    status_raw: str
    status: str
    custom: dict[str, str]
    previous_keys: list[str]
    deleted_at: datetime | None
    lost_at: datetime | None
    first_seen: datetime
    last_seen: datetime
    status_basis: str | None
    status_names: list[str]
    container_name: str | None
    assignee_ids: list[str]
    boards: list[str] = field(default_factory=list)
    board_names: list[str] = field(default_factory=list)
    iteration: str | None = None
    iteration_start: date | None = None
    iteration_end: date | None = None

    @classmethod
    def of(cls, row: RowMapping) -> WorkItemRow:
        return cls(**row)
