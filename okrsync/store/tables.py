"""The store's tables (SQLModel). Only `okrsync.store.Store` writes them.

Note what is absent: a key result has no "current value" column. Its value is the latest
check-in, and check-ins are written only by `Store.add_checkin`, `correct_checkin` and
`delete_checkin` (each with its `checkin_audit` row) — no code path leads from work items to
key-result values (tests/unit/test_invariant.py keeps it that way).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


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


def utc_col(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def json_col() -> Any:
    return Field(default_factory=dict, sa_type=sa.JSON, nullable=False)


def json_list_col() -> Any:
    """A JSON list, `[]` for rows that were stored before the column existed."""
    return Field(
        default_factory=list,
        sa_type=sa.JSON,
        nullable=False,
        sa_column_kwargs={"server_default": "[]"},
    )


class ObjectiveRow(SQLModel, table=True):
    __tablename__ = "objective"
    id: str = Field(primary_key=True)
    title: str
    owner: str | None = None
    period: str | None = None
    period_start: date
    period_end: date
    parent_id: str | None = Field(default=None, foreign_key="objective.id")
    weight: float = 1.0
    source: str = ""
    archived_at: datetime | None = utc_col()
    updated_at: datetime | None = utc_col()


class KeyResultRow(SQLModel, table=True):
    __tablename__ = "key_result"
    id: str = Field(primary_key=True)
    objective_id: str = Field(foreign_key="objective.id", index=True)
    title: str
    unit: str | None = None
    start_value: float
    target_value: float
    direction: str = "increase"
    weight: float = 1.0
    source: str = ""
    archived_at: datetime | None = utc_col()
    updated_at: datetime | None = utc_col()


class CheckinRow(SQLModel, table=True):
    __tablename__ = "checkin"
    # 0005: a deleted check-in's id is never handed out again (its audit rows keep naming it)
    __table_args__ = {"sqlite_autoincrement": True}
    id: int | None = Field(default=None, primary_key=True)
    key_result_id: str = Field(foreign_key="key_result.id", index=True)
    value: float
    confidence: float | None = None
    note: str | None = None
    author: str | None = None
    recorded_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class CheckinAuditRow(SQLModel, table=True):
    """Every write to a check-in (0005): added, corrected (its values before) or deleted (the
    row is gone from `checkin`; its values live on here). Written only by `_okr`."""

    __tablename__ = "checkin_audit"
    id: int | None = Field(default=None, primary_key=True)
    checkin_id: int = Field(index=True)
    key_result_id: str = Field(foreign_key="key_result.id", index=True)
    action: str  # "add" | "correct" | "delete"
    value: float | None = None  # the reading after the change (None: deleted)
    recorded_at: datetime | None = utc_col()
    old_value: float | None = None  # the reading before it (None: added)
    old_recorded_at: datetime | None = utc_col()
    old_confidence: float | None = None
    old_note: str | None = None
    old_author: str | None = None
    changed_by: str | None = None
    changed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    reason: str | None = None


class TacticRow(SQLModel, table=True):
    __tablename__ = "tactic"
    id: str = Field(primary_key=True)
    key_result_id: str = Field(foreign_key="key_result.id", index=True)
    title: str
    weight: float = 1.0
    source: str = ""
    archived_at: datetime | None = utc_col()
    updated_at: datetime | None = utc_col()


class WorkItemRow(SQLModel, table=True):
    __tablename__ = "work_item"
    connector: str = Field(primary_key=True)
    external_id: str = Field(primary_key=True)
    key: str = Field(index=True)
    kind: str
    item_type: str | None = None
    title: str
    url: str | None = None
    container: str | None = Field(default=None, index=True)
    parent_key: str | None = None
    labels: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    milestone: str | None = None
    section: str | None = None
    assignee: str | None = None
    estimate: float | None = None
    due: date | None = None
    created: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated: datetime = Field(sa_type=UTCDateTime, nullable=False)
    completed_at: datetime | None = utc_col()
    status_raw: str = ""
    status: str
    custom: dict[str, str] = json_col()
    previous_keys: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    deleted_at: datetime | None = utc_col()
    lost_at: datetime | None = utc_col()
    first_seen: datetime = Field(sa_type=UTCDateTime, nullable=False)
    last_seen: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # 0004: what a changed status_map is re-applied from, and the names matching also reads
    status_basis: str | None = None
    status_names: list[str] = json_list_col()
    container_name: str | None = None
    assignee_ids: list[str] = json_list_col()


class ItemLinkRow(SQLModel, table=True):
    """An item attached to a tactic, with the rule that made the link."""

    __tablename__ = "item_link"
    connector: str = Field(primary_key=True)
    external_id: str = Field(primary_key=True)
    tactic_id: str = Field(primary_key=True, index=True)
    rule_id: str = Field(primary_key=True)
    linked_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class SignalSnapshotRow(SQLModel, table=True):
    __tablename__ = "signal_snapshot"
    # The newest snapshot of a subject is found by one index probe, however long the history.
    __table_args__ = (sa.Index("ix_signal_snapshot_latest", "subject_type", "subject_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    subject_type: str = Field(index=True)
    subject_id: str = Field(index=True)
    as_of: date
    computed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    digest: str
    values: dict[str, Any] = json_col()


class SyncRunRow(SQLModel, table=True):
    __tablename__ = "sync_run"
    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(index=True)
    started_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    ended_at: datetime | None = utc_col()
    status: str = "running"
    pages: int = 0
    requests: int = 0
    retries: int = 0
    rate_limit_wait_s: float = 0.0
    items_created: int = 0
    items_updated: int = 0
    items_deleted: int = 0
    lost_scopes: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    error: str | None = None
    host: str | None = None  # "host:pid", as shown by `okrsync runs`
    # The process running it (None on runs recorded before revision 0003): a run left
    # "running" is abandoned only once this owner is gone (okrsync.locks.owner_alive).
    owner_host: str | None = None
    owner_pid: int | None = None
    owner_start: str | None = None  # /proc/<pid>/stat starttime ticks @ boot id


class CursorRow(SQLModel, table=True):
    __tablename__ = "sync_cursor"
    connector: str = Field(primary_key=True)
    value: dict[str, Any] = json_col()
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    run_id: int | None = None


metadata = SQLModel.metadata

# Typed handles on the tables for SQLAlchemy Core queries (SQLModel leaves __table__ untyped).
OBJECTIVE: sa.Table = ObjectiveRow.__table__  # type: ignore[attr-defined]
KEY_RESULT: sa.Table = KeyResultRow.__table__  # type: ignore[attr-defined]
CHECKIN: sa.Table = CheckinRow.__table__  # type: ignore[attr-defined]
CHECKIN_AUDIT: sa.Table = CheckinAuditRow.__table__  # type: ignore[attr-defined]
TACTIC: sa.Table = TacticRow.__table__  # type: ignore[attr-defined]
WORK_ITEM: sa.Table = WorkItemRow.__table__  # type: ignore[attr-defined]
ITEM_LINK: sa.Table = ItemLinkRow.__table__  # type: ignore[attr-defined]
SNAPSHOT: sa.Table = SignalSnapshotRow.__table__  # type: ignore[attr-defined]
SYNC_RUN: sa.Table = SyncRunRow.__table__  # type: ignore[attr-defined]
CURSOR: sa.Table = CursorRow.__table__  # type: ignore[attr-defined]
