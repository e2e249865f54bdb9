"""The `Store` facade, and the sync hot path it runs itself: committing pages of work items.

Every other statement lives in a private module of this package, behind a named method here:
`_okr` (the OKR tree; check-ins), `_runs` (sync runs), `_items` and `_links` (items read for
linking; remap), `_tree` (the tree for display), `_signal_reads` and `_snapshots` (what
signals are computed from; their snapshots), `_locks` (PostgreSQL advisory locks).

`commit_page` stores a page of items, their links and the connector's cursor in ONE
transaction (one page, or the pages that waited for the store: `commit_pages`), so a crash
replays at most that transaction's pages. Key-result values are written only by
`add_checkin` (`_okr`); nothing here or anywhere else derives them from work items.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import chain
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from okrsync.errors import ConfigError, OkrsyncError, StoreError
from okrsync.models import Cursor, Lineage, Page, StoredItem, WorkItem
from okrsync.okrfile import OkrTree
from okrsync.redaction import redact_url
from okrsync.store import _okr, _runs
from okrsync.store._items import ItemReader, load_items
from okrsync.store._lineage import lineage
from okrsync.store._links import LinkRow, Relinked, relink
from okrsync.store._okr import ApplyReport, Checkin
from okrsync.store._runs import RunOwner, now
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
    from okrsync.signal_types import ItemCounts, Snapshot, Structure, Subject
    from okrsync.store._locks import AdvisoryLocks

WI = WORK_ITEM
LINK = ITEM_LINK
CHUNK = 500
Link = tuple[str, str]  # (tactic_id, rule_id)


@dataclass
class PageResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0


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
        """The alembic revision the schema is at (None: not created yet)."""
        from okrsync.store.migrate import current_revision

        return current_revision(self.engine)

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

    def linked_tactics(self, connector: str, external_ids: Iterable[str]) -> set[str]:
        """The tactics the given items are linked to."""
        from okrsync.store import _signal_reads

        return _signal_reads.linked_tactics(self.engine, connector, external_ids)

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
        """Record a key result's measured value: the only way one changes."""
        with self.tx() as conn:
            return _okr.add_checkin(
                conn, key_result_id, value, confidence=confidence, note=note, author=author, at=at
            )

    def checkins(self, key_result_id: str) -> list[Checkin]:
        with self.engine.connect() as conn:
            return _okr.checkins(conn, key_result_id)

    def latest_checkins(self) -> dict[str, Checkin]:
        """The newest check-in of every key result (one query)."""
        with self.engine.connect() as conn:
            return _okr.latest_checkins(conn)

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
                    self._upsert_items(conn, connector, batch, ts, owners)
                    batch, owners = [], []
                    result.deleted += self._mark_deleted(conn, connector, page.deleted, ts)
                    for container, ids in page.census.items():
                        result.deleted += self._apply_census(conn, connector, container, ids, ts)
            self._upsert_items(conn, connector, batch, ts, owners)
            if links is not None:
                self._replace_links(conn, connector, links, ts)
            self._save_cursor(conn, connector, pages[-1].cursor, ts, run_id)
            if run_id is not None:
                lost = sorted({s for page in pages for s in page.lost_scopes})
                self._count_pages(conn, run_id, len(pages), results, lost)
        return results

    def _upsert_items(
        self,
        conn: Connection,
        connector: str,
        items: Sequence[WorkItem],
        ts: datetime,
        results: Sequence[PageResult],
    ) -> None:
        """Upsert `items`; `results[i]` counts what happened to `items[i]` (its page's)."""
        if not items:
            return
        if self.dialect == "sqlite":
            _upsert_items_sqlite(conn, connector, items, ts, results)
            return
        existing: dict[str, Any] = {}
        ids = [i.external_id for i in items]
        for chunk in _chunks(ids):
            q = sa.select(
                WI.c.external_id,
                WI.c.updated,
                WI.c.key,
                WI.c.container,
                WI.c.previous_keys,
                WI.c.deleted_at,
                WI.c.lost_at,
                WI.c.first_seen,
                WI.c.title,
            ).where(WI.c.connector == connector, WI.c.external_id.in_(chunk))
            existing.update({r.external_id: r for r in conn.execute(q)})
        rows: dict[str, dict[str, Any]] = {}
        for item, result in zip(items, results, strict=True):
            old = existing.get(item.external_id)
            if (
                old is not None
                and old.updated == item.updated
                and old.key == item.key
                and old.container == item.container
                and old.title == item.title
                and (old.deleted_at is None and old.lost_at is None)
            ):
                result.unchanged += 1
                continue
            prev = list(old.previous_keys) if old is not None else []
            if old is not None and old.key != item.key and old.key not in prev:
                prev.append(old.key)
            _count_change(result, created=old is None)
            values = _item_values(item, prev, old.first_seen if old else ts, ts)
            rows[item.external_id] = values
            # A later sighting in this batch compares with this one, as a later commit would.
            existing[item.external_id] = SimpleNamespace(**values)
        if rows:
            self._bulk_upsert(conn, list(rows.values()))

    def _bulk_upsert(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        ins = postgresql.insert(WI) if self.dialect == "postgresql" else sqlite.insert(WI)
        cols = {
            c: getattr(ins.excluded, c)
            for c in rows[0]
            if c not in ("connector", "external_id", "first_seen")
        }
        conn.execute(
            ins.on_conflict_do_update(index_elements=["connector", "external_id"], set_=cols),
            rows,
        )

    def _mark_deleted(
        self, conn: Connection, connector: str, ids: Iterable[str], ts: datetime
    ) -> int:
        total = 0
        for chunk in _chunks(list(ids)):
            res = conn.execute(
                sa.update(WI)
                .where(
                    WI.c.connector == connector,
                    WI.c.external_id.in_(chunk),
                    WI.c.deleted_at.is_(None),
                )
                .values(deleted_at=ts)
            )
            total += res.rowcount or 0
        return total

    def _apply_census(
        self,
        conn: Connection,
        connector: str,
        container: str,
        present: Sequence[str],
        ts: datetime,
    ) -> int:
        known = conn.execute(
            sa.select(WI.c.external_id).where(
                WI.c.connector == connector,
                WI.c.container == container,
                WI.c.deleted_at.is_(None),
            )
        ).scalars()
        gone = set(known) - set(present)
        return self._mark_deleted(conn, connector, sorted(gone), ts)

    def _replace_links(
        self, conn: Connection, connector: str, links: Mapping[str, Sequence[Link]], ts: datetime
    ) -> None:
        ids = list(links)
        for chunk in _chunks(ids):
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
        ins = postgresql.insert(t) if self.dialect == "postgresql" else sqlite.insert(t)
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
        q = sa.select(WorkItemRow)
        if connector:
            q = q.where(WI.c.connector == connector)
        if not include_deleted:
            q = q.where(WI.c.deleted_at.is_(None))
        from sqlmodel import Session

        with Session(self.engine) as s:
            return list(s.exec(q).scalars())  # type: ignore[call-overload]

    # -- sync runs (okrsync.store._runs) --------------------------------------------------
    def start_run(self, connector: str, owner: RunOwner | None = None) -> int:
        """Record a run as "running", owned by `owner` (default: this process)."""
        with self.tx() as conn:
            return _runs.start_run(conn, connector, owner)

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


_ITEM_COLS = tuple(c.name for c in WI.columns)
assert _ITEM_COLS == (  # noqa: S101 - `_sqlite_item_row` writes in exactly this order
    "connector",
    "external_id",
    "key",
    "kind",
    "item_type",
    "title",
    "url",
    "container",
    "parent_key",
    "labels",
    "milestone",
    "section",
    "assignee",
    "estimate",
    "due",
    "created",
    "updated",
    "completed_at",
    "status_raw",
    "status",
    "custom",
    "previous_keys",
    "deleted_at",
    "lost_at",
    "first_seen",
    "last_seen",
)
_SQLITE_UPSERT = (
    f"INSERT INTO work_item ({', '.join(_ITEM_COLS)}) VALUES ({', '.join('?' * len(_ITEM_COLS))}) "
    "ON CONFLICT (connector, external_id) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c in _ITEM_COLS
        if c not in ("connector", "external_id", "first_seen")
    )
)


_COL_PREVIOUS_KEYS = _ITEM_COLS.index("previous_keys")
_COL_FIRST_SEEN = _ITEM_COLS.index("first_seen")
_UPSERT_ROWS = 200  # rows per statement: 200 x 26 parameters, well under SQLite's 32,766


@functools.cache
def _upsert_sql(rows: int) -> str:
    """The upsert of `rows` rows in one statement (see `_upsert_items_sqlite`)."""
    values = "(" + ", ".join("?" * len(_ITEM_COLS)) + ")"
    head, _, tail = _SQLITE_UPSERT.partition(f" VALUES {values} ")
    return f"{head} VALUES {', '.join([values] * rows)} {tail}"


def _json(value: Any) -> str:
    """JSON text for a JSON column (orjson: ~10x json.dumps; the column reads any JSON)."""
    return orjson.dumps(value).decode()


def _sqlite_dt(v: datetime | None) -> str | None:
    if v is None:
        return None
    if v.tzinfo is None:
        raise ValueError("naive datetime given to the store; use an aware UTC datetime")
    if v.utcoffset():
        v = v.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - the hot path
        v.year,
        v.month,
        v.day,
        v.hour,
        v.minute,
        v.second,
        v.microsecond,
    )


_SQLITE_SAVE_CURSOR = (
    "INSERT INTO sync_cursor (connector, value, updated_at, run_id) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (connector) DO UPDATE SET value = excluded.value, "
    "updated_at = excluded.updated_at, run_id = excluded.run_id"
)
_SQLITE_COUNT_PAGE = (
    "UPDATE sync_run SET pages = pages + ?, items_created = items_created + ?, "
    "items_updated = items_updated + ?, items_deleted = items_deleted + ? WHERE id = ?"
)
_SQLITE_EXISTING = (
    "SELECT external_id, updated, key, container, previous_keys, deleted_at, lost_at, "
    "first_seen, title FROM work_item WHERE connector = ? AND external_id IN ({})"
)


def _upsert_items_sqlite(
    conn: Connection,
    connector: str,
    items: Sequence[WorkItem],
    ts: datetime,
    results: Sequence[PageResult],
) -> None:
    """The hot path of a sync on SQLite: one SELECT and one multi-row upsert per page.

    Values are encoded exactly as SQLAlchemy stores them on SQLite (naive-UTC datetimes with
    microseconds, JSON text), skipping its per-value bind processing, which cost most of the
    page time.

    Rows go in statements of `_UPSERT_ROWS` rows, not `executemany`: pages are stored on a
    worker thread while the event loop parses the next one, and `executemany` gives up and
    takes back the GIL around every row's step. Each take-back waits for the event loop to let
    go (up to the 5 ms switch interval), which stretched a 100-row page to about twice its CPU
    time. One statement releases the GIL once for the whole page.
    """
    existing: dict[str, tuple[Any, ...]] = {}
    ids = [i.external_id for i in items]
    for chunk in _chunks(ids):
        sql = _SQLITE_EXISTING.format(", ".join("?" * len(chunk)))
        existing.update({r[0]: tuple(r) for r in conn.exec_driver_sql(sql, (connector, *chunk))})
    now_s = _sqlite_dt(ts)
    rows: dict[str, tuple[Any, ...]] = {}
    for item, result in zip(items, results, strict=True):
        updated = _sqlite_dt(item.updated)
        old = existing.get(item.external_id)
        if (
            old is not None
            and old[1:4] == (updated, item.key, item.container)
            and old[8] == item.title
            and (old[5] is None and old[6] is None)
        ):
            result.unchanged += 1
            continue
        prev: list[str] = json.loads(old[4]) if old is not None else []
        if old is not None and old[2] != item.key and old[2] not in prev:
            prev.append(old[2])
        _count_change(result, created=old is None)
        row = _sqlite_item_row(item, updated, prev, old[7] if old else now_s, now_s)
        rows[item.external_id] = row
        # A later sighting in this batch compares with this one, as a later commit would.
        existing[item.external_id] = (
            item.external_id,
            updated,
            item.key,
            item.container,
            row[_COL_PREVIOUS_KEYS],
            None,
            None,
            row[_COL_FIRST_SEEN],
            item.title,
        )
    if rows:
        values = list(rows.values())
        for start in range(0, len(values), _UPSERT_ROWS):
            batch = values[start : start + _UPSERT_ROWS]
            conn.exec_driver_sql(_upsert_sql(len(batch)), tuple(chain.from_iterable(batch)))


def _count_change(result: PageResult, *, created: bool) -> None:
    if created:
        result.created += 1
    else:
        result.updated += 1


def _sqlite_item_row(
    i: WorkItem, updated: str | None, prev: list[str], first_seen: str | None, now_s: str | None
) -> tuple[Any, ...]:
    """A work_item row in `_ITEM_COLS` order."""
    return (
        i.connector,
        i.external_id,
        i.key,
        str(i.kind),
        i.item_type,
        i.title,
        i.url,
        i.container,
        i.parent_key,
        _json(list(i.labels)),
        i.milestone,
        i.section,
        i.assignee,
        i.estimate,
        i.due.isoformat() if i.due else None,
        _sqlite_dt(i.created),
        updated,
        _sqlite_dt(i.completed_at),
        i.status_raw,
        str(i.status),
        _json(i.custom),
        _json(prev),
        None,
        None,
        first_seen,
        now_s,
    )


def _chunks(seq: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _item_values(
    item: WorkItem, prev: list[str], first_seen: datetime, ts: datetime
) -> dict[str, Any]:
    return {
        "connector": item.connector,
        "external_id": item.external_id,
        "key": item.key,
        "kind": str(item.kind),
        "item_type": item.item_type,
        "title": item.title,
        "url": item.url,
        "container": item.container,
        "parent_key": item.parent_key,
        "labels": list(item.labels),
        "milestone": item.milestone,
        "section": item.section,
        "assignee": item.assignee,
        "estimate": item.estimate,
        "due": item.due,
        "created": item.created,
        "updated": item.updated,
        "completed_at": item.completed_at,
        "status_raw": item.status_raw,
        "status": str(item.status),
        "custom": dict(item.custom),
        "previous_keys": prev,
        "deleted_at": None,
        "lost_at": None,
        "first_seen": first_seen,
        "last_seen": ts,
    }
