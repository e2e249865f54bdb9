"""The store: the only code that speaks SQL to okrsync's tables (`okrsync.store.tables`).

`Store` is the facade; its private modules hold the statements. Nothing outside this
package imports sqlalchemy tables or opens a connection (enforced by
`tests/unit/test_invariant.py`).
"""

from okrsync.models import StoredItem
from okrsync.store._backup import pg_dump_command
from okrsync.store._item_reads import ITEM_FILTERS, ListedItem
from okrsync.store._items import ItemReader, PageResult
from okrsync.store._links import LinkRow, Relinked
from okrsync.store._locks import DAEMON, AdvisoryLocks, Holder
from okrsync.store._notify import OutboxRow
from okrsync.store._okr import ApplyReport, Checkin, CheckinAudit, CheckinChange
from okrsync.store._runs import RunOwner, process_start
from okrsync.store._sources import Recorded, run_name
from okrsync.store._store import Link, Store
from okrsync.store._tree import TreeRows
from okrsync.store.migrate import head_revision
from okrsync.store.tables import SyncRunRow

__all__ = [
    "DAEMON",
    "ITEM_FILTERS",
    "AdvisoryLocks",
    "ApplyReport",
    "Checkin",
    "CheckinAudit",
    "CheckinChange",
    "Holder",
    "ItemReader",
    "Link",
    "LinkRow",
    "ListedItem",
    "OutboxRow",
    "PageResult",
    "Recorded",
    "Relinked",
    "RunOwner",
    "Store",
    "StoredItem",
    "SyncRunRow",
    "TreeRows",
    "head_revision",
    "pg_dump_command",
    "process_start",
    "run_name",
]
