"""The serving snapshot: what readers (``tdw sql``, ``tdw serve``, reports, BI tools) open.

DuckDB lets one process write a file or many read it, never both, so readers of the working
file would block ``tdw ingest`` and ``tdw build``, and a reader opening it mid-build would see
some marts rebuilt and others not. After every successful build the marts are therefore
copied into a separate file that only readers open:

1. holding the working file's write lock (so no writer starts mid-copy) and after a
   CHECKPOINT (so the file alone holds every committed change), its bytes are copied to a
   temporary name in the warehouse's directory (same file system, so the rename below is
   atomic) — a byte copy, not a re-encoding of every mart, so publishing costs about as
   much as copying the file;
2. in the copy, every schema but ``marts`` is dropped and ``serving.snapshot`` (one row:
   when, from what, a build id) and ``serving.tables`` (the row count of every served
   table, so a reader can check it sees a whole build) are added; the table and column
   comments (dbt's descriptions) come along; the connection is checkpointed and closed:
   no ``.wal`` file is left beside it;
3. ``os.replace`` renames it over ``<stem>.serving.duckdb``. A reader that opens the path
   gets either the previous snapshot or the new one, whole; a reader that already has the
   previous one open keeps reading it (POSIX keeps the unlinked file alive) until it
   reconnects.

Raw and staging tables are not copied: the snapshot holds the public SQL contract
(DESIGN.md) and nothing else. ``tdw sql --working`` reads the working file itself.
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from ingest.errors import TdwError
from warehouse import db

SERVED_SCHEMAS = ("marts",)
SUFFIX = ".serving.duckdb"


@dataclass
class SnapshotInfo:
    path: Path
    build_id: str
    tables: dict[str, int]  # "schema.table" -> rows
    seconds: float


def snapshot_path(warehouse: Path) -> Path:
    """``data/warehouse.duckdb`` -> ``data/warehouse.serving.duckdb``."""
    warehouse = Path(warehouse)
    if warehouse.name.endswith(SUFFIX):
        return warehouse
    return warehouse.with_name(warehouse.stem + SUFFIX)


def serving_path(warehouse: Path) -> Path:
    """The file readers should open: the snapshot when one was published, else the working file."""
    snap = snapshot_path(warehouse)
    return snap if snap.exists() else Path(warehouse)


def sqlalchemy_uri(warehouse: Path) -> str:
    """The SQLAlchemy URI (duckdb-engine) of the snapshot, read-only through the URI alone, so
    tools that take only a URI (Superset, Metabase's DuckDB driver, pandas) can use it."""
    return f"duckdb:///{snapshot_path(Path(warehouse)).resolve()}?access_mode=read_only"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _materialise_views(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Served views become tables (their inputs were dropped), keeping dbt's descriptions;
    the row count of every served table, for readers to check they see a whole build."""
    counts = {}
    for schema in SERVED_SCHEMAS:
        for name, kind in con.execute(
                "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = ? "
                "AND table_catalog = current_database() ORDER BY table_name", [schema]).fetchall():
            target = f"{_quote(schema)}.{_quote(name)}"
            if kind == "VIEW":
                raise TdwError(f"served relation {schema}.{name} is a view: materialise marts as tables")
            counts[f"{schema}.{name}"] = con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]
    return counts


def publish(warehouse: Path, out: Path | None = None) -> SnapshotInfo:
    """Copy the marts of ``warehouse`` into a new file and rename it atomically over ``out``
    (default :func:`snapshot_path`). The working file is opened read-only: call this when no
    writer holds it (right after a build)."""
    t0 = time.perf_counter()
    warehouse = Path(warehouse)
    db.check_file(warehouse)
    if not warehouse.exists():
        raise TdwError(f"no warehouse at {warehouse} (run `tdw ingest` and `tdw build` first)")
    out = Path(out) if out is not None else snapshot_path(warehouse)
    if out.resolve() == warehouse.resolve():
        raise TdwError(f"the snapshot path {out} is the working file itself")
    build_id = str(uuid.uuid4())
    remove_stale_temporaries(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{build_id[:8]}.tmp")
    try:
        return _publish(warehouse, out, tmp, build_id, t0)
    except OSError as e:            # disk full, read-only folder: the previous snapshot is kept
        raise TdwError(f"publishing {out} failed ({e.strerror or e}); the previous snapshot is "
                       "kept") from None
    except duckdb.Error as e:
        raise TdwError(f"publishing {out} failed ({str(e).strip().splitlines()[0]}); the previous "
                       "snapshot is kept") from None
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            try:
                leftover.unlink(missing_ok=True)
            except OSError:
                pass


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove the temporary copies a killed publish left beside ``out`` (whole copies of the
    warehouse): those whose publishing process no longer runs, or of an unknown process."""
    removed = []
    for p in out.parent.glob(f".{out.name}.*.tmp*"):
        parts = p.name[len(out.name) + 2:].split(".")
        pid = int(parts[0]) if len(parts) >= 3 and parts[0].isdigit() else None
        if pid is not None and (pid == os.getpid() or _alive(pid)):   # a publish still running
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _publish(warehouse: Path, out: Path, tmp: Path, build_id: str, t0: float) -> SnapshotInfo:
    # 1. hold the write lock (no writer can start mid-copy), fold the WAL into the file,
    #    and copy its bytes: far faster than re-encoding every mart row by row
    src = db.connect(warehouse)
    try:
        src.execute("CHECKPOINT")
        shutil.copyfile(warehouse, tmp)
    finally:
        src.close()
    # 2. in the copy, keep only the served schemas and record which build it is
    con = duckdb.connect(str(tmp))
    try:
        con.execute("BEGIN TRANSACTION")
        for (schema,) in con.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database() "
                "AND schema_name NOT IN ('main', 'information_schema', 'pg_catalog')").fetchall():
            if schema not in SERVED_SCHEMAS:
                con.execute(f"DROP SCHEMA {_quote(schema)} CASCADE")
        tables = _materialise_views(con)
        con.execute("CREATE SCHEMA serving")
        con.execute("CREATE TABLE serving.snapshot (build_id VARCHAR, published_at TIMESTAMPTZ, "
                    "source VARCHAR, n_tables INTEGER)")
        con.execute("INSERT INTO serving.snapshot VALUES (?, ?, ?, ?)",
                    [build_id, datetime.now(timezone.utc), str(warehouse.resolve()), len(tables)])
        con.execute("CREATE TABLE serving.tables (table_name VARCHAR, n_rows BIGINT)")
        if tables:
            con.executemany("INSERT INTO serving.tables VALUES (?, ?)", list(tables.items()))
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, out)
    return SnapshotInfo(out, build_id, tables, time.perf_counter() - t0)


def connect(warehouse: Path, working: bool = False) -> duckdb.DuckDBPyConnection:
    """A read-only, locked-down connection (``warehouse.sqlguard``) to the snapshot (or, when
    none was published or ``working``, to the working file)."""
    from warehouse import sqlguard
    if working or not snapshot_path(warehouse).exists():
        return sqlguard.lock_down(db.connect(Path(warehouse), read_only=True))
    try:
        return sqlguard.open_read_only(snapshot_path(warehouse))
    except TdwError as e:
        raise TdwError(f"cannot open the serving snapshot {snapshot_path(warehouse)}: "
                       f"{str(e).split(': ', 1)[-1]}") from None
