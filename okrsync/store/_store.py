"""The `Store` facade, and the sync hot path it runs itself: committing pages of work items.

Every other statement lives in a private module of this package, behind a named method here:
`_okr` (the OKR tree; check-ins), `_runs` (sync runs), `_items` and `_links` (items read for
linking; remap), `_tree` (the tree for display), `_item_reads` (the items behind a count),
`_signal_reads` and `_snapshots` (what
signals are computed from; their snapshots), `_locks` (PostgreSQL advisory locks).

`commit_page` stores a page of items, their links and the connector's cursor in ONE
transaction (one page, or the pages that waited for the store: `commit_pages`), so a crash
replays at most that transaction's pages. Key-result values are written only by
check-ins (`add_checkin`, `correct_checkin`, `delete_checkin`: `_okr`); nothing here or
anywhere else derives them from work items.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from okrsync.errors import ConfigError, OkrsyncError, StoreError
from okrsync.models import Cursor, Lineage, Page, StatusCategory, StoredItem, WorkItem
from okrsync.okrfile import OkrTree
from okrsync.redaction import redact_url, register_secret
from okrsync.store import _items, _okr, _runs, _source_reads, _sources
from okrsync.store._items import (
    ItemReader,
    PageResult,
    apply_census,
    load_items,
    mark_deleted,
    upsert_items,
)
from okrsync.store._items import sqlite_dt as _sqlite_dt
from okrsync.store._lineage import lineage
from okrsync.store._links import LinkRow, Relinked, relink
from okrsync.store._okr import ApplyReport, Checkin, CheckinAudit, CheckinChange
from okrsync.store._runs import RunOwner, now
from okrsync.store._sources import Recorded
from okrsync.store._sql import chunks, upsert
from okrsync.store._tree import TreeRows, active_ids, active_rows, linked_item_counts
from okrsync.store.tables import (
    CURSOR,
    ITEM_LINK,
    SYNC_RUN,
    WORK_ITEM,
    SyncRunRow,
    WorkItemRow,
)

if TYPE_CHECKING:
    from okrsync.config import SignalsConfig
    from okrsync.signal_types import ItemCounts, Snapshot, SourceRuns, Structure, Subject
    from okrsync.store._item_reads import ListedItem
    from okrsync.store._locks import AdvisoryLocks
    from okrsync.store._notify import OutboxRow

WI = WORK_ITEM
LINK = ITEM_LINK
CHUNK = 500
Link = tuple[str, str]  # (tactic_id, rule_id)


WAL_AUTOCHECKPOINT_PAGES = 10_000


def make_engine(url: str, *, busy_timeout_ms: int = 5000) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA synchronous=NORMAL")
            # A sync upserts items in `updated` order, i.e. at random places in the key
            # indexes; checkpointing every 1,000 WAL pages (the default) copied the same index
            # pages back over and over: ~40% of a 100k-item sync's CPU. Every 10,000 pages
            # (a WAL of up to ~40 MB) does the copying once per many pages.
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            cur.close()

        return engine
    if url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "store URL uses the psycopg2 scheme; write it as postgresql+psycopg://user@host/db"
        )
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (ImportError, sa.exc.ArgumentError) as exc:
        raise ConfigError(f"cannot use store URL {redact_url(url)}: {exc}") from None


def _checkpoint(engine: Engine) -> None:
    """Copy the WAL into the database file and empty it. Never waits: while another process
    reads or writes (a daemon beside `okrsync report`) it is skipped, and the files stay
    until that process, the last to close, removes them."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA busy_timeout=0")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except SQLAlchemyError:
        pass


class Store:
    """Transactions over the okrsync tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True, busy_timeout_ms: int = 5000) -> Store:
        store = cls(make_engine(url, busy_timeout_ms=busy_timeout_ms))
        if upgrade:
            store.upgrade()
        return store

    @classmethod
    def open_existing(cls, url: str) -> Store | None:
        """The store at `url` opened without migrating, if it holds okrsync's tables; None
        when it cannot be read (no store yet, or another schema)."""
        try:
            store = cls.open(url, upgrade=False)
            with store.engine.connect() as conn:
                conn.execute(sa.select(WI.c.key).limit(1))
        except (SQLAlchemyError, OkrsyncError):
            return None
        return store

    def close(self) -> None:
        """Close every pooled connection; on SQLite first checkpoint the WAL into the
        database file, so the last connection's close removes `-wal` and `-shm`."""
        if self.dialect == "sqlite":
            _checkpoint(self.engine)
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------------
    def upgrade(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        from okrsync.store.migrate import upgrade

        try:
            upgrade(self.engine)
        except OperationalError as exc:
            raise StoreError(f"cannot reach the store: {exc.orig}") from None

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Hold the schema-upgrade lock (a PostgreSQL advisory lock; a no-op elsewhere)."""
        from okrsync.store._locks import upgrade_lock

        with upgrade_lock(self.engine):
            yield

    def advisory_locks(self, role: str | None = None) -> AdvisoryLocks:
        """Per-connector run locks on PostgreSQL, taken on connections named for `role`
        (default: the daemon's)."""
        from okrsync.store._locks import DAEMON, AdvisoryLocks

        return AdvisoryLocks(self.engine, role or DAEMON)

    def schema_revision(self) -> str | None:
        """The alembic revision the schema is at (None: not created yet); StoreError when the
        database cannot be read."""
        from okrsync.store.migrate import current_revision

        try:
            return current_revision(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot read the store at {redact_url(str(self.engine.url))}: "
                f"{getattr(exc, 'orig', exc)}"
            ) from None

    def backup(self, target: Path) -> None:
        """A consistent copy of this SQLite store at `target`, taken while writers go on
        (SQLite's online backup API: `_backup`); replaces `target` atomically."""
        from okrsync.store._backup import sqlite_backup

        if self.dialect != "sqlite":
            raise StoreError(f"backup copies SQLite stores only (this store: {self.dialect})")
        try:
            sqlite_backup(self.engine, target)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot back up the store to {target}: {exc}") from None

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"store error: {exc.orig}") from exc

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    # -- items read for linking, and links (okrsync.store._items, _links) ----------------
    def stored_items(self) -> list[StoredItem]:
        """Every stored work item's matchable fields (deleted ones included), stably ordered."""
        with self.engine.connect() as conn:
            return load_items(conn)

    @contextmanager
    def item_reader(self) -> Iterator[ItemReader]:
        """Item reads on one connection: one snapshot of the store for a page's linker."""
        with self.engine.connect() as conn:
            yield ItemReader(conn)

    def restatus(
        self, connector: str, categorise: Callable[[StatusCategory, Sequence[str]], str]
    ) -> int:
        """Re-derive the status of `connector`'s stored items from their stored basis and
        names (`okrsync.statuses`) in one transaction; returns how many changed."""
        with self.tx() as conn:
            return _items.restatus(conn, connector, categorise)

    def lineage(self, items: Sequence[WorkItem]) -> Lineage:
        """What the links of a page of `items` depend on in the store (one read snapshot):
        their stored keys and their stored ancestors (`okrsync.linking.link_page`)."""
        with self.item_reader() as reader:
            return lineage(reader, items)

    def relink(self, wanted_of: Callable[[list[StoredItem]], set[LinkRow]]) -> Relinked:
        """In one transaction under the link table's write lock: read every item, ask
        `wanted_of` for the links they should have, write only the differences."""
        with self.tx() as conn:
            return relink(conn, self.dialect, wanted_of)

    # -- one item and its ancestors; values rules can name (okrsync.store._values) --------
    def items_by_key(self, key: str, connector: str | None = None) -> list[StoredItem]:
        """The stored items known as `key` (key, tracker id, key ignoring case, or an earlier
        key), each with its matchable fields; deleted ones included."""
        from okrsync.store import _values

        with self.engine.connect() as conn:
            return _values.find_items(conn, key, connector)

    def stored_ancestors(self, connector: str, parent_key: str | None) -> list[StoredItem]:
        """The stored items up `parent_key`'s chain within `connector`, nearest first."""
        from okrsync.store import _values

        with self.engine.connect() as conn:
            return _values.ancestors(conn, connector, parent_key)

    def value_counts(
        self, connector: str | None = None, fields: Sequence[str] | None = None
    ) -> dict[str, list[tuple[str, int, tuple[str, ...]]]]:
        """Per field (labels, milestone, section, type, assignee, container, custom.<name>):
        (value, live items carrying it, its aliases), most common first."""
        from okrsync.store import _values

        with self.engine.connect() as conn:
            return _values.value_counts(conn, connector, fields or _values.FIELDS)

    # -- the OKR tree for display (okrsync.store._tree) -----------------------------------
    def active_tree_rows(self) -> TreeRows:
        """Active objectives, key results and tactics, each ordered by id."""
        return active_rows(self.engine)

    def active_okr_ids(self) -> dict[str, list[str]]:
        """The active ids per kind: "objective", "key_result", "tactic" (each ordered)."""
        return active_ids(self.engine)

    def linked_item_counts(self) -> dict[str, int]:
        """Live work items linked to each tactic (an item linked by several rules once)."""
        return linked_item_counts(self.engine)

    # -- signal reads and snapshots (okrsync.store._signal_reads, _snapshots) -------------
    def signal_inputs(
        self, as_of: date, cfg: SignalsConfig, tactic_ids: Collection[str] | None = None
    ) -> tuple[Structure, dict[str, ItemCounts], dict[str, tuple[float, datetime]]]:
        """The tree (whole, or the objectives `tactic_ids` roll up into), linked-item counts
        per tactic (one set-based aggregate per period start) and newest check-ins by as_of."""
        from okrsync.store import _signal_reads

        return _signal_reads.signal_inputs(self.engine, as_of, cfg, tactic_ids)

    def structure(self) -> Structure:
        """The active tree alone (no check-ins, counts or snapshots)."""
        from okrsync.store import _signal_reads

        with self.engine.connect() as conn:
            return _signal_reads.load_structure(conn)

    def linked_tactics(self, connector: str, external_ids: Iterable[str]) -> set[str]:
        """The tactics the given items are linked to."""
        from okrsync.store import _signal_reads

        return _signal_reads.linked_tactics(self.engine, connector, external_ids)

    # -- the items behind a count (okrsync.store._item_reads) -----------------------------
    def tactic_items(
        self,
        structure: Structure,
        as_of: date,
        cfg: SignalsConfig,
        tactic_ids: Collection[str] | None = None,
        filters: Collection[str] = (),
    ) -> dict[str, list[ListedItem]]:
        """The items each tactic counts (the aggregate's own predicates), narrowed to those
        every named count of `filters` holds ("todo", "stale", "scope_added", ...)."""
        from okrsync.store import _item_reads

        return _item_reads.tactic_items(self.engine, structure, as_of, cfg, tactic_ids, filters)

    def unlinked_items(
        self, connector: str, as_of: date, cfg: SignalsConfig, filters: Collection[str] = ()
    ) -> list[ListedItem]:
        """A connector's live work items linked to no active tactic."""
        from okrsync.store import _item_reads

        return _item_reads.unlinked_items(self.engine, connector, as_of, cfg, filters)

    def item_connectors(self) -> list[str]:
        """The connectors the store holds work items of."""
        from okrsync.store import _item_reads

        return _item_reads.item_connectors(self.engine)

    def add_changed_snapshots(
        self, as_of: date, subjects: Sequence[Subject], *, full: bool = False
    ) -> int:
        """Snapshot every subject whose digest differs from its newest snapshot's (one
        transaction); `full` reads all newest digests at once. Returns the rows written."""
        from okrsync.store import _snapshots

        with self.tx() as conn:
            return _snapshots.add_changed(conn, as_of, subjects, full=full)

    def snapshot_history(self, subject_id: str, limit: int = 20) -> list[Snapshot]:
        """A subject's newest `limit` snapshots, oldest first (tactics, key results and
        objectives alike)."""
        from okrsync.store import _snapshots

        return _snapshots.history(self.engine, subject_id, limit)

    # -- the web read model (okrsync.store._web_reads) ------------------------------------
    def current_inputs(
        self, as_of: date, objective_ids: Collection[str] | None = None
    ) -> tuple[Structure, dict[str, tuple[float, datetime]], dict[str, tuple[date, Any]]]:
        """The tree (whole or those objectives), newest check-ins by `as_of` and each
        tactic's newest snapshot (as-of date, values): signals without the item aggregate."""
        from okrsync.store import _web_reads

        return _web_reads.current_inputs(self.engine, as_of, objective_ids)

    def objective_inputs(
        self, as_of: date, cfg: SignalsConfig, objective_ids: Collection[str]
    ) -> tuple[Structure, dict[str, ItemCounts], dict[str, tuple[float, datetime]]]:
        """`signal_inputs` for the given objectives only."""
        from okrsync.store import _web_reads

        return _web_reads.objective_inputs(self.engine, as_of, cfg, objective_ids)

    def objective_of(self, kind: str, subject_id: str) -> str | None:
        """The active objective an active objective, key result or tactic belongs to."""
        from okrsync.store import _web_reads

        return _web_reads.objective_of(self.engine, _web_reads.kind(kind), subject_id)

    def data_version(self) -> tuple[Any, ...]:
        """A fingerprint of what the tree and its signals are read from (snapshots,
        check-ins, the OKR tables): unchanged, an answer built from them is current."""
        from okrsync.store import _web_reads

        return _web_reads.data_version(self.engine)

    def subject_history(self, kind: str, subject_id: str, limit: int = 1000) -> list[Snapshot]:
        """A subject's newest `limit` snapshots of that kind, oldest first."""
        from okrsync.store import _web_reads

        return _web_reads.history(self.engine, _web_reads.kind(kind), subject_id, limit)

    # -- the OKR tree and check-ins (okrsync.store._okr) ----------------------------------
    def apply_okr_tree(self, tree: OkrTree) -> ApplyReport:
        """Load the tree idempotently: add new ids, update changes, archive removed ones.
        Check-ins are never touched (an archived key result keeps its history)."""
        with self.tx() as conn:
            return _okr.apply_okr_tree(conn, tree)

    def add_checkin(
        self,
        key_result_id: str,
        value: float,
        *,
        confidence: float | None = None,
        note: str | None = None,
        author: str | None = None,
        at: datetime | None = None,
    ) -> Checkin:
        """Record a key result's measured value taken at `at` (default: now, never later):
        with a correction or deletion, the only way one changes."""
        with self.tx() as conn:
            return _okr.add_checkin(
                conn, key_result_id, value, confidence=confidence, note=note, author=author, at=at
            )

    def correct_checkin(
        self, checkin_id: int, value: float, change: CheckinChange
    ) -> tuple[Checkin, Checkin]:
        """Correct a check-in's value (and time, confidence or note where `change` gives
        them), keeping the values before in its audit trail; returns (before, after)."""
        with self.tx() as conn:
            return _okr.correct_checkin(conn, checkin_id, value, change)

    def delete_checkin(self, checkin_id: int, change: CheckinChange) -> Checkin:
        """Remove a check-in from its key result's readings; its audit trail keeps it."""
        with self.tx() as conn:
            return _okr.delete_checkin(conn, checkin_id, change)

    def checkins(self, key_result_id: str) -> list[Checkin]:
        """A key result's check-ins, oldest reading first (deleted ones are gone)."""
        with self.engine.connect() as conn:
            return _okr.checkins(conn, key_result_id)

    def checkin_audit(self, key_result_id: str) -> list[CheckinAudit]:
        """Every check-in of a key result added, corrected or deleted, in order."""
        with self.engine.connect() as conn:
            return _okr.checkin_audit(conn, key_result_id)

    def latest_checkins(self) -> dict[str, Checkin]:
        """The newest reading of every key result, by its time (one query)."""
        with self.engine.connect() as conn:
            return _okr.latest_checkins(conn)

    # -- readings of key-result sources (okrsync.store._sources) -------------------------
    def record_readings(
        self, key_result_id: str, kind: str, readings: Sequence[tuple[datetime, float]]
    ) -> Recorded:
        """A source run "ok" and a check-in (author `source:<kind>`) per reading (time, value)
        not yet recorded from that source; one transaction."""
        with self.tx() as conn:
            return _sources.record_readings(conn, key_result_id, kind, readings)

    def record_source_failure(self, key_result_id: str, reason: str) -> int:
        """A source run "failed" with its one-line reason; check-ins are left as they are."""
        with self.tx() as conn:
            return _sources.record_failure(conn, key_result_id, reason)

    def source_runs(self, key_result_ids: Collection[str]) -> dict[str, SourceRuns]:
        """Each key result's source runs: first run, newest good one, newest failure."""
        with self.engine.connect() as conn:
            return _source_reads.source_runs(conn, key_result_ids)

    # -- work items ----------------------------------------------------------------------
    def commit_page(
        self,
        connector: str,
        page: Page,
        links: Mapping[str, Sequence[Link]] | None = None,
        run_id: int | None = None,
    ) -> PageResult:
        """Store a page's items, their links and the cursor together, or nothing."""
        return self.commit_pages(connector, [page], links, run_id)[0]

    def commit_pages(
        self,
        connector: str,
        pages: Sequence[Page],
        links: Mapping[str, Sequence[Link]] | None = None,
        run_id: int | None = None,
    ) -> list[PageResult]:
        """Store consecutive pages and their items' links in one transaction, or nothing.

        The result is what committing the pages one by one, in order, would store; only the
        last page's cursor is saved, since it covers the pages before it. A sync groups the
        pages it has fetched ahead this way when the store is the slower side (fewer commits
        and statements). Each page's result counts its own items."""
        if not pages:
            return []
        ts = now()
        results: list[PageResult] = []
        with self.tx() as conn:
            # Items of consecutive pages go in one upsert, up to a page that flags deletions:
            # those apply after every item before them, as if each page were committed alone.
            batch: list[WorkItem] = []
            owners: list[PageResult] = []
            for page in pages:
                result = PageResult()
                results.append(result)
                batch += page.items
                owners += [result] * len(page.items)
                if page.deleted or page.census:
                    upsert_items(conn, connector, batch, ts, owners)
                    batch, owners = [], []
                    result.deleted += mark_deleted(conn, connector, page.deleted, ts)
                    for container, ids in page.census.items():
                        result.deleted += apply_census(conn, connector, container, ids, ts)
            upsert_items(conn, connector, batch, ts, owners)
            if links is not None:
                self._replace_links(conn, connector, links, ts)
            self._save_cursor(conn, connector, pages[-1].cursor, ts, run_id)
            if run_id is not None:
                lost = sorted({s for page in pages for s in page.lost_scopes})
                self._count_pages(conn, run_id, len(pages), results, lost)
        return results

    def _replace_links(
        self, conn: Connection, connector: str, links: Mapping[str, Sequence[Link]], ts: datetime
    ) -> None:
        ids = list(links)
        for chunk in chunks(ids, CHUNK):
            conn.execute(
                sa.delete(LINK).where(LINK.c.connector == connector, LINK.c.external_id.in_(chunk))
            )
        rows = [
            {
                "connector": connector,
                "external_id": ext,
                "tactic_id": tac,
                "rule_id": rule,
                "linked_at": ts,
            }
            for ext, pairs in links.items()
            for tac, rule in sorted(set(pairs))
        ]
        if rows:
            conn.execute(sa.insert(LINK), rows)

    def _save_cursor(
        self, conn: Connection, connector: str, cursor: Cursor, ts: datetime, run_id: int | None
    ) -> None:
        if self.dialect == "sqlite":  # once per page: skip statement building
            conn.exec_driver_sql(
                _SQLITE_SAVE_CURSOR, (connector, json.dumps(cursor), _sqlite_dt(ts), run_id)
            )
            return
        t = CURSOR
        ins = upsert(self.dialect, t)
        vals = {"connector": connector, "value": cursor, "updated_at": ts, "run_id": run_id}
        conn.execute(
            ins.values(**vals).on_conflict_do_update(
                index_elements=["connector"],
                set_={"value": cursor, "updated_at": ts, "run_id": run_id},
            )
        )

    def _count_pages(
        self,
        conn: Connection,
        run_id: int,
        pages: int,
        results: Sequence[PageResult],
        lost: Sequence[str],
    ) -> None:
        created = sum(r.created for r in results)
        updated = sum(r.updated for r in results)
        deleted = sum(r.deleted for r in results)
        if self.dialect == "sqlite" and not lost:  # once per commit: skip statement building
            conn.exec_driver_sql(_SQLITE_COUNT_PAGE, (pages, created, updated, deleted, run_id))
            return
        t = SYNC_RUN
        vals: dict[str, Any] = {
            "pages": t.c.pages + pages,
            "items_created": t.c.items_created + created,
            "items_updated": t.c.items_updated + updated,
            "items_deleted": t.c.items_deleted + deleted,
        }
        if lost:
            old = conn.execute(sa.select(t.c.lost_scopes).where(t.c.id == run_id)).scalar_one()
            vals["lost_scopes"] = sorted(set(old or []) | set(lost))
        conn.execute(sa.update(t).where(t.c.id == run_id).values(**vals))

    def mark_lost(self, connector: str, containers: Sequence[str]) -> None:
        """Flag items of scopes we can no longer see (kept and counted, never deleted)."""
        with self.tx() as conn:
            conn.execute(
                sa.update(WI)
                .where(
                    WI.c.connector == connector,
                    WI.c.container.in_(containers),
                    WI.c.lost_at.is_(None),
                )
                .values(lost_at=now())
            )

    def cursor(self, connector: str) -> Cursor | None:
        t = CURSOR
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(t.c.value).where(t.c.connector == connector)).scalar()
        return dict(value) if value is not None else None

    def newest_updated(self, connector: str) -> datetime | None:
        """The newest stored `updated` of a connector's items."""
        q = sa.select(sa.func.max(WI.c.updated)).where(WI.c.connector == connector)
        with self.engine.connect() as conn:
            value = conn.execute(q).scalar()
        if isinstance(value, str):  # SQLite hands back aggregate datetimes as text
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value if isinstance(value, datetime) else None

    def item_count(self, connector: str) -> int:
        """How many items `connector` has stored (deleted ones too): sizes a run's page cap."""
        q = sa.select(sa.func.count()).select_from(WI).where(WI.c.connector == connector)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def items(
        self, connector: str | None = None, *, include_deleted: bool = True
    ) -> list[WorkItemRow]:
        q = sa.select(WI)
        if connector:
            q = q.where(WI.c.connector == connector)
        if not include_deleted:
            q = q.where(WI.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            return [WorkItemRow.of(r) for r in conn.execute(q).mappings()]

    # -- webhooks in (okrsync.store._hooks; docs/webhooks.md) -------------------------------
    def remember_webhook_delivery(self, connector: str, delivery_id: str) -> bool:
        """Record a delivery for `connector`: True the first time, False for a replay within
        a day (insert-if-absent: atomic across replicas); older deliveries are pruned."""
        from okrsync.store import _hooks

        with self.tx() as conn:
            return _hooks.remember_delivery(conn, connector, delivery_id, now())

    def expect_webhook_handshake(
        self, connector: str, until: datetime, *, resource: str = ""
    ) -> None:
        """Accept an Asana `X-Hook-Secret` handshake for (`connector`, `resource`: the
        project gid the webhook watches, "" connector-wide) until `until`."""
        from okrsync.store import _hooks

        with self.tx() as conn:
            _hooks.expect_handshake(conn, connector, resource, until, now())

    def webhook_handshake_open(self, connector: str, *, resource: str = "") -> bool:
        """Whether a handshake for (`connector`, `resource`) is expected now."""
        from okrsync.store import _hooks

        with self.engine.connect() as conn:
            return _hooks.handshake_open(conn, connector, resource, now())

    def accept_webhook_handshake(self, connector: str, secret: str, *, resource: str = "") -> bool:
        """Store the secret a tracker chose for (`connector`, `resource`), only while its
        handshake is expected (and close the window); False when none is. The secret is
        registered for redaction."""
        from okrsync.store import _hooks

        register_secret(secret)
        with self.tx() as conn:
            return _hooks.accept_handshake(conn, connector, resource, secret, now())

    def webhook_secrets(self, connector: str) -> dict[str, str]:
        """The secrets handshakes stored for `connector`, by resource, registered for
        redaction."""
        from okrsync.store import _hooks

        with self.engine.connect() as conn:
            secrets = _hooks.stored_secrets(conn, connector)
        for secret in secrets.values():
            register_secret(secret)
        return secrets

    def delete_items(self, connector: str, external_ids: Collection[str]) -> int:
        """Mark these items of `connector` deleted, as the deletion census does; how many
        were live."""
        with self.tx() as conn:
            return mark_deleted(conn, connector, sorted(external_ids), now())

    # -- sync runs (okrsync.store._runs) --------------------------------------------------
    def start_run(
        self, connector: str, owner: RunOwner | None = None, *, trigger: str = "schedule"
    ) -> int:
        """Record a run as "running", owned by `owner` (default: this process); `trigger`:
        "schedule" (the daemon's timer), "manual" or "webhook"."""
        with self.tx() as conn:
            return _runs.start_run(conn, connector, owner, trigger)

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        requests: int = 0,
        retries: int = 0,
        rate_limit_wait_s: float = 0.0,
        error: str | None = None,
    ) -> None:
        with self.tx() as conn:
            _runs.finish_run(
                conn,
                run_id,
                status,
                requests=requests,
                retries=retries,
                rate_limit_wait_s=rate_limit_wait_s,
                error=error,
            )

    def running_runs(self, connector: str) -> list[tuple[int, RunOwner | None]]:
        """`connector`'s runs recorded as "running", with their owners (None: not recorded)."""
        with self.engine.connect() as conn:
            return _runs.running_runs(conn, connector)

    def abandon_runs(self, run_ids: Mapping[int, str]) -> int:
        """Mark runs still "running" as interrupted, each with its reason (owner gone)."""
        with self.tx() as conn:
            return _runs.abandon_runs(conn, run_ids)

    def runs(
        self,
        connector: str | None = None,
        *,
        failed: bool = False,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[SyncRunRow]:
        """Recorded sync runs, newest first."""
        with self.engine.connect() as conn:
            return _runs.runs(conn, connector, failed=failed, since=since, limit=limit)

    def run(self, run_id: int) -> SyncRunRow | None:
        """One recorded sync run, or None."""
        with self.engine.connect() as conn:
            return _runs.run(conn, run_id)

    # -- notifications (okrsync.store._notify) --------------------------------------------
    def notify_watermark(self, name: str) -> int:
        """The id the event scan `name` ("snapshot" or "run") has examined up to; first
        asked, the newest id (history is not announced)."""
        from okrsync.store import _notify

        with self.tx() as conn:
            return _notify.watermark(conn, name, now())

    def notify_advance(self, name: str, value: int) -> None:
        """Move the watermark `name` forward to `value` (never back)."""
        from okrsync.store import _notify

        with self.tx() as conn:
            _notify.advance(conn, name, value, now())

    def notify_snapshots(
        self, after_id: int, limit: int = 1000
    ) -> list[tuple[tuple[int, Snapshot] | None, tuple[int, Snapshot]]]:
        """Snapshots after `after_id` (oldest first), each with its subject's previous one."""
        from okrsync.store import _notify

        with self.engine.connect() as conn:
            return _notify.snapshots_after(conn, after_id, limit)

    def notify_runs(
        self, after_id: int, history: int, limit: int = 1000
    ) -> list[tuple[SyncRunRow, list[str]]]:
        """Runs after `after_id` (oldest first), each with up to `history` statuses of its
        connector's earlier ok or failed runs, newest first."""
        from okrsync.store import _notify

        with self.engine.connect() as conn:
            return _notify.runs_after(conn, after_id, history, limit)

    def notify_enqueue(self, rows: Sequence[dict[str, Any]]) -> int:
        """Queue (event_key, channel) rows not already queued; how many were new."""
        from okrsync.store import _notify

        with self.tx() as conn:
            return _notify.enqueue(conn, rows, now())

    def notify_claim(self, owner: str, lease_s: float, limit: int = 20) -> list[OutboxRow]:
        """Take the due outbox rows for `owner` for `lease_s` seconds (one sender per row)."""
        from datetime import timedelta

        from okrsync.store import _notify

        with self.tx() as conn:
            return _notify.claim(conn, owner, now(), timedelta(seconds=lease_s), limit)

    def notify_settle(
        self,
        row_id: int,
        owner: str,
        status: str,
        *,
        next_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        """Record a send's outcome while `owner` still holds the row (False: lease lost)."""
        from okrsync.store import _notify

        with self.tx() as conn:
            return _notify.settle(conn, row_id, owner, status, now(), next_at=next_at, error=error)

    def notify_log(
        self,
        limit: int = 50,
        channel: str | None = None,
        statuses: Collection[str] | None = None,
    ) -> list[OutboxRow]:
        """Queued, sent and failed notifications, newest first."""
        from okrsync.store import _notify

        with self.engine.connect() as conn:
            return _notify.log(conn, limit, channel, statuses)


_SQLITE_SAVE_CURSOR = (
    "INSERT INTO sync_cursor (connector, value, updated_at, run_id) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (connector) DO UPDATE SET value = excluded.value, "
    "updated_at = excluded.updated_at, run_id = excluded.run_id"
)
_SQLITE_COUNT_PAGE = (
    "UPDATE sync_run SET pages = pages + ?, items_created = items_created + ?, "
    "items_updated = items_updated + ?, items_deleted = items_deleted + ? WHERE id = ?"
)
