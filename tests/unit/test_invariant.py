"""Tasks are not goals: no code path writes a key result's value from work items."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from okrsync.models import ItemKind, Page, StatusCategory, WorkItem
from okrsync.okrfile import load_tree
from okrsync.store import Store
from okrsync.store.tables import KEY_RESULT
from tests.helpers import TREE, write

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*ROOT.joinpath("okrsync").rglob("*.py"), *ROOT.joinpath("connectors").rglob("*.py")]


def test_key_results_have_no_value_column() -> None:
    """A key result row holds its definition only; its value lives in check-ins."""
    columns = set(KEY_RESULT.columns.keys())
    assert not columns & {"current", "value", "current_value", "progress", "actual"}


def _writers_of(tables: set[str]) -> list[str]:
    """Every product function that names one of `tables` and inserts, updates or deletes."""
    offenders = []
    for path in SOURCES:
        if path.name == "tables.py" or "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            names = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
            if names & tables and not _reads_only(fn):
                offenders.append(f"{path.relative_to(ROOT)}:{fn.name}")
    return offenders


def test_checkin_table_is_written_only_by_the_checkin_writers() -> None:
    """Only the check-in writers of okrsync/store/_okr.py (add, correct, delete) refer to
    the check-in table among all product code."""
    assert _writers_of({"CheckinRow", "CHECKIN"}) == [
        "okrsync/store/_okr.py:add_checkin",
        "okrsync/store/_okr.py:correct_checkin",
        "okrsync/store/_okr.py:delete_checkin",
    ]


def test_checkin_audit_is_written_only_beside_a_checkin_write() -> None:
    """The audit trail has one writer, `_okr._audit`, which the check-in writers call."""
    assert _writers_of({"CheckinAuditRow", "CHECKIN_AUDIT"}) == ["okrsync/store/_okr.py:_audit"]


STORE = ROOT / "okrsync" / "store"
MIGRATIONS = ROOT / "okrsync" / "migrations"  # alembic's schema history, run by the store
DATABASE_LIBRARIES = ("sqlalchemy", "sqlmodel", "alembic", "psycopg", "sqlite3")


def _outside_store() -> list[Path]:
    return [p for p in SOURCES if STORE not in p.parents and MIGRATIONS not in p.parents]


def _bypasses_store(module: str) -> bool:
    """A database library, or a part of the store package that is not its facade."""
    return module.split(".")[0] in DATABASE_LIBRARIES or module.startswith(
        ("okrsync.store.tables", "okrsync.store._", "okrsync.store.migrate", "okrsync.tables")
    )


def _store_boundary_breaches(path: Path, tree: ast.AST) -> list[str]:
    """What in this module bypasses the Store facade: a database library, the store's tables
    or private modules imported, or a Store's engine or transaction reached for."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            modules = []
        if modules:
            line = getattr(node, "lineno", 0)
            found += [(line, f"imports {m}") for m in modules if _bypasses_store(m)]
        if isinstance(node, ast.Attribute) and node.attr in ("engine", "tx"):
            found.append((node.lineno, f"reaches for .{node.attr}"))
    where = path.relative_to(ROOT)
    return [f"{where}:{line} {what}" for line, what in sorted(found)]


# The `sql` source reads another database with SQLAlchemy (okrsync's own store it refuses):
# it may import that library, and nothing else of the store.
EXTERNAL_SQL = ROOT / "okrsync" / "sources" / "sql.py"


# The sandbox's fake analytics database (what the demo's sql source reads) writes its SQLite
# file with the standard library's sqlite3: a fake external database the sandbox plays, never
# okrsync's store (the sql source itself refuses okrsync's own store). sqlite3 only.
FAKE_ANALYTICS = ROOT / "okrsync" / "sandbox" / "analytics.py"


def _external_sql(path: Path, breach: str) -> bool:
    module = breach.split(" imports ", 1)[-1]
    if path == FAKE_ANALYTICS:
        return module == "sqlite3"
    return path == EXTERNAL_SQL and module.startswith("sqlalchemy")


def test_only_the_store_package_speaks_sql() -> None:
    """No module outside okrsync/store/ imports a database library or the store's tables or
    private modules, or opens a connection through a Store's engine or transaction (the sql
    source's own SQLAlchemy, for other databases, and the sandbox's fake analytics database's
    sqlite3 aside)."""
    assert FAKE_ANALYTICS.is_file(), "okrsync/sandbox/analytics.py moved: update FAKE_ANALYTICS"
    breaches = [
        breach
        for path in _outside_store()
        for breach in _store_boundary_breaches(path, ast.parse(path.read_text(encoding="utf-8")))
        if not _external_sql(path, breach)
    ]
    assert breaches == []


SOURCE_PACKAGE = ROOT / "okrsync" / "sources"


def test_sources_never_import_the_store_the_pipeline_sync_or_linking() -> None:
    """okrsync/sources/** reads outcome metrics where they live: it imports nothing from
    okrsync.store, okrsync.pipeline, okrsync.sync or okrsync.linking, so no work item (and
    no row of okrsync's store) can become a reading."""
    modules = sorted(SOURCE_PACKAGE.rglob("*.py"))
    assert EXTERNAL_SQL in modules
    banned = ("okrsync.store", "okrsync.pipeline", "okrsync.sync", "okrsync.linking")
    assert [b for path in modules for name in banned for b in _imports_of(path, name)] == []


def test_the_sources_check_catches_a_store_import() -> None:
    """The sources check flags a lazy `from okrsync.store import Store` in a source module,
    and the sql exemption covers SQLAlchemy only, not the store's tables."""
    lazy = "def f() -> None:\n    from okrsync.store import Store\n"
    assert _imports_of(SOURCE_PACKAGE / "x.py", "okrsync.store", ast.parse(lazy)) == [
        "okrsync/sources/x.py:2 imports okrsync.store",
        "okrsync/sources/x.py:2 imports okrsync.store.Store",
    ]
    code = "import sqlalchemy as sa\nfrom okrsync.store.tables import CHECKIN\n"
    found = _store_boundary_breaches(EXTERNAL_SQL, ast.parse(code))
    assert [b for b in found if not _external_sql(EXTERNAL_SQL, b)] == [
        "okrsync/sources/sql.py:2 imports okrsync.store.tables",
        "okrsync/sources/sql.py:2 imports okrsync.store.tables.CHECKIN",
    ]


def test_the_fake_analytics_exemption_covers_its_sqlite3_only() -> None:
    """The sandbox's fake analytics database may import sqlite3 and nothing else of the
    database side; any other sandbox module importing sqlite3 is still a breach."""
    code = "import sqlite3\nimport sqlalchemy\nfrom okrsync.store import tables\n"
    found = _store_boundary_breaches(FAKE_ANALYTICS, ast.parse(code))
    assert [b for b in found if not _external_sql(FAKE_ANALYTICS, b)] == [
        "okrsync/sandbox/analytics.py:2 imports sqlalchemy",
        "okrsync/sandbox/analytics.py:3 imports okrsync.store.tables",
    ]
    other = ROOT / "okrsync" / "sandbox" / "_world.py"
    found = _store_boundary_breaches(other, ast.parse("import sqlite3\n"))
    assert [b for b in found if not _external_sql(other, b)] == [
        "okrsync/sandbox/_world.py:1 imports sqlite3"
    ]


def test_the_store_boundary_check_catches_each_way_around_the_facade() -> None:
    """The boundary check flags sqlalchemy, the tables, a private module, .engine and .tx."""
    code = (
        "import sqlalchemy as sa\n"
        "from okrsync.store.tables import WORK_ITEM\n"
        "from okrsync.store._links import relink\n"
        "from okrsync.store import Store, StoredItem\n"
        "def f(store: Store) -> None:\n"
        "    store.engine.connect()\n"
        "    with store.tx() as conn: pass\n"
    )
    found = _store_boundary_breaches(ROOT / "okrsync" / "x.py", ast.parse(code))
    assert found == [
        "okrsync/x.py:1 imports sqlalchemy",
        "okrsync/x.py:2 imports okrsync.store.tables",
        "okrsync/x.py:2 imports okrsync.store.tables.WORK_ITEM",
        "okrsync/x.py:3 imports okrsync.store._links",
        "okrsync/x.py:3 imports okrsync.store._links.relink",
        "okrsync/x.py:6 reaches for .engine",
        "okrsync/x.py:7 reaches for .tx",
    ]


SIGNALS = ROOT / "okrsync" / "signals.py"


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import in a module, `if TYPE_CHECKING:` blocks included;
    `from a import b` counts as a and a.b."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _imports_of(path: Path, banned: str, tree: ast.AST | None = None) -> list[str]:
    """Where the module at `path` imports `banned` or anything inside it."""
    tree = tree or ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(ROOT)
    return [
        f"{where}:{line} imports {m}"
        for line, m in _imported(tree)
        if m == banned or m.startswith(f"{banned}.")
    ]


WEB = ROOT / "okrsync" / "web"
# The web layer never talks to a tracker: it reads the store, it does not sync.
TRACKER_SIDE = (
    "okrsync.sync",
    "okrsync.connector",
    "okrsync.http",
    "okrsync.sandbox",
    "connectors",
)


def _web_breaches(path: Path, tree: ast.AST) -> list[str]:
    where = path.relative_to(ROOT)
    return [
        f"{where}:{line} imports {m}"
        for line, m in _imported(tree)
        if _bypasses_store(m) or any(m == t or m.startswith(f"{t}.") for t in TRACKER_SIDE)
    ]


def test_the_web_layer_reads_through_the_store_facade_only() -> None:
    """okrsync/web (lazy and type-only imports included) imports no database library such
    as sqlalchemy, no part of the store but its facade, and nothing of the tracker side."""
    files = sorted(WEB.rglob("*.py"))
    assert len(files) >= 8, "okrsync/web moved: update WEB"
    breaches = [b for p in files for b in _web_breaches(p, ast.parse(p.read_text("utf-8")))]
    assert breaches == []


def test_the_web_check_catches_sql_store_internals_and_tracker_code() -> None:
    """The web check flags a lazy sqlalchemy import, the store's tables and okrsync.sync;
    the Store facade passes."""
    code = (
        "from okrsync.store import Store\n"
        "def f() -> None:\n"
        "    import sqlalchemy\n"
        "    from okrsync.store.tables import CHECKIN\n"
        "    from okrsync.sync import run_connector\n"
    )
    found = _web_breaches(WEB / "x.py", ast.parse(code))
    assert found == [
        "okrsync/web/x.py:3 imports sqlalchemy",
        "okrsync/web/x.py:4 imports okrsync.store.tables",
        "okrsync/web/x.py:4 imports okrsync.store.tables.CHECKIN",
        "okrsync/web/x.py:5 imports okrsync.sync",
        "okrsync/web/x.py:5 imports okrsync.sync.run_connector",
    ]


def test_signals_and_store_do_not_import_each_other() -> None:
    """okrsync/signals.py imports nothing from okrsync.store (it computes from plain values)
    and no module of okrsync/store/ imports okrsync.signals (the store reads and writes)."""
    breaches = _imports_of(SIGNALS, "okrsync.store")
    for path in sorted(STORE.rglob("*.py")):
        breaches += _imports_of(path, "okrsync.signals")
    assert breaches == []


# The pure layers: rules, linking and signals compute from plain values handed to them; only
# the pipeline (and the faces above it) brings the store in.
PURE = (
    "okrfile.py",
    "mapping.py",
    "linking.py",
    "preview.py",
    "explain.py",
    "statuses.py",
    "signals.py",
    "signal_types.py",
)


def test_rules_linking_and_signals_never_import_the_store_or_the_pipeline() -> None:
    """The pure modules (`PURE`) import neither okrsync.store nor okrsync.pipeline."""
    breaches: list[str] = []
    for name in PURE:
        path = ROOT / "okrsync" / name
        assert path.is_file(), f"{name} moved: update PURE"
        for banned in ("okrsync.store", "okrsync.pipeline"):
            breaches += _imports_of(path, banned)
    assert breaches == []


def test_the_signals_store_check_catches_plain_lazy_and_type_only_imports() -> None:
    """The check flags `from okrsync.store import Store` under TYPE_CHECKING, a lazy import
    in a function, and `import okrsync.store._snapshots`; okrsync.signal_types passes."""
    code = (
        "from typing import TYPE_CHECKING\n"
        "from okrsync.signal_types import Structure\n"
        "if TYPE_CHECKING:\n"
        "    from okrsync.store import Store\n"
        "def f() -> None:\n"
        "    import okrsync.store._snapshots\n"
    )
    assert _imports_of(SIGNALS, "okrsync.store", ast.parse(code)) == [
        "okrsync/signals.py:4 imports okrsync.store",
        "okrsync/signals.py:4 imports okrsync.store.Store",
        "okrsync/signals.py:6 imports okrsync.store._snapshots",
    ]
    lazy = "def g() -> None:\n    from okrsync.signals import ItemCounts\n"
    assert _imports_of(STORE / "_x.py", "okrsync.signals", ast.parse(lazy)) == [
        "okrsync/store/_x.py:2 imports okrsync.signals",
        "okrsync/store/_x.py:2 imports okrsync.signals.ItemCounts",
    ]


def _reads_only(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    calls = {
        c.func.attr
        for c in ast.walk(fn)
        if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
    }
    funcs = {
        c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
    }
    return not ({"insert", "update", "delete"} & calls) and not (
        {"insert", "update", "delete"} & funcs
    )


@contextmanager
def writes(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: object, _cur: object, statement: str, *_a: object) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)


def test_storing_completed_work_never_writes_key_results_or_checkins(
    store: Store, mapping_dir: Path
) -> None:
    """Committing pages of done items touches items, links, cursor and runs — nothing else."""
    write(mapping_dir / "okrs.toml", TREE)
    store.apply_okr_tree(load_tree([mapping_dir]))
    store.add_checkin("conv", 9)
    t = datetime(2026, 11, 2, tzinfo=UTC)
    done = [
        WorkItem(
            "gh",
            str(n),
            f"o/r#{n}",
            ItemKind.ISSUE,
            f"t{n}",
            StatusCategory.DONE,
            "closed",
            t,
            t,
            completed_at=t,
        )
        for n in range(50)
    ]
    run = store.start_run("gh")
    with writes(store) as seen:
        store.commit_page("gh", Page(done, {"since": "x"}), {"1": [("checkout", "r")]}, run)
    tables = {
        s.split()[2 if s.upper().startswith(("INSERT", "DELETE")) else 1].strip('"') for s in seen
    }
    assert tables <= {"work_item", "item_link", "sync_cursor", "sync_run"}
    assert [c.value for c in store.checkins("conv")] == [9.0]
