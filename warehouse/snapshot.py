"""The serving snapshot: what readers (``tdw sql``, ``tdw serve``, reports, BI tools) open.

DuckDB lets one process write a file or many read it, never both, so readers of the working
file would block ``tdw ingest`` and ``tdw build``, and a reader opening it mid-build would see
some marts rebuilt and others not. After every successful build the marts are therefore
copied into a separate file that only readers open:

1. a new DuckDB file is written under a temporary name in the warehouse's directory (same
   file system, so the rename below is atomic): every table and view of schema ``marts``
   materialised as a table, with its table and column comments (dbt's descriptions), plus
   ``serving.snapshot`` (one row: when, from what, a build id) and ``serving.tables`` (the
   row count of every copied table, so a reader can check it sees a whole build);
2. the connection is closed, which checkpoints it: no ``.wal`` file is left beside it;
3. ``os.replace`` renames it over ``<stem>.serving.duckdb``. A reader that opens the path
   gets either the previous snapshot or the new one, whole; a reader that already has the
   previous one open keeps reading it (POSIX keeps the unlinked file alive) until it
   reconnects.

Raw and staging tables are not copied: the snapshot holds the public SQL contract
(DESIGN.md) and nothing else. ``tdw sql --working`` reads the working file itself.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from ingest.errors import TdwError

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


def _copy_schema(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, int]:
    """Materialise every table and view of ``src.<schema>`` as a table of this database."""
    relations = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'src' "
        "AND table_schema = ? ORDER BY table_name", [schema]).fetchall()
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
    counts = {}
    for (name,) in relations:
        target = f"{_quote(schema)}.{_quote(name)}"
        con.execute(f"CREATE TABLE {target} AS SELECT * FROM src.{_quote(schema)}.{_quote(name)}")
        counts[f"{schema}.{name}"] = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
    _copy_comments(con, schema)
    return counts


def _copy_comments(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    """dbt's descriptions (persist_docs) travel with the tables, for BI tools' catalogues."""
    for kind in ("tables", "views"):
        for name, comment in con.execute(
                f"SELECT {kind[:-1]}_name, comment FROM duckdb_{kind}() WHERE database_name = 'src' "
                "AND schema_name = ? AND comment IS NOT NULL AND comment <> ''", [schema]).fetchall():
            con.execute(f"COMMENT ON TABLE {_quote(schema)}.{_quote(name)} IS {_literal(comment)}")
    for table, column, comment in con.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE database_name = 'src' "
            "AND schema_name = ? AND comment IS NOT NULL AND comment <> ''", [schema]).fetchall():
        con.execute(f"COMMENT ON COLUMN {_quote(schema)}.{_quote(table)}.{_quote(column)} "
                    f"IS {_literal(comment)}")


def publish(warehouse: Path, out: Path | None = None) -> SnapshotInfo:
    """Copy the marts of ``warehouse`` into a new file and rename it atomically over ``out``
    (default :func:`snapshot_path`). The working file is opened read-only: call this when no
    writer holds it (right after a build)."""
    from warehouse import db  # imports the probes (torch): only where needed

    t0 = time.perf_counter()
    warehouse = Path(warehouse)
    db.check_file(warehouse)
    if not warehouse.exists():
        raise TdwError(f"no warehouse at {warehouse} (run `tdw ingest` and `tdw build` first)")
    out = Path(out) if out is not None else snapshot_path(warehouse)
    if out.resolve() == warehouse.resolve():
        raise TdwError(f"the snapshot path {out} is the working file itself")
    build_id = str(uuid.uuid4())
    tmp = out.with_name(f".{out.name}.{build_id[:8]}.tmp")
    try:
        con = duckdb.connect(str(tmp))
        try:
            try:
                con.execute(f"ATTACH {_literal(str(warehouse.resolve()))} AS src (READ_ONLY)")
            except duckdb.Error as e:
                raise TdwError(f"cannot read warehouse {warehouse} to publish a snapshot: "
                               f"{str(e).splitlines()[0]}") from None
            con.execute("BEGIN TRANSACTION")
            tables: dict[str, int] = {}
            for schema in SERVED_SCHEMAS:
                tables.update(_copy_schema(con, schema))
            con.execute("CREATE SCHEMA serving")
            con.execute("CREATE TABLE serving.snapshot (build_id VARCHAR, published_at TIMESTAMPTZ, "
                        "source VARCHAR, n_tables INTEGER)")
            con.execute("INSERT INTO serving.snapshot VALUES (?, ?, ?, ?)",
                        [build_id, datetime.now(timezone.utc), str(warehouse.resolve()), len(tables)])
            con.execute("CREATE TABLE serving.tables (table_name VARCHAR, n_rows BIGINT)")
            if tables:
                con.executemany("INSERT INTO serving.tables VALUES (?, ?)", list(tables.items()))
            con.execute("COMMIT")
            con.execute("DETACH src")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, out)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            if leftover.exists():
                leftover.unlink()
    return SnapshotInfo(out, build_id, tables, time.perf_counter() - t0)


def connect(warehouse: Path, working: bool = False) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the snapshot (or, when none was published or ``working``,
    to the working file)."""
    if working or not snapshot_path(warehouse).exists():
        from warehouse import db  # imports the probes (torch): only for the working file
        return db.connect(Path(warehouse), read_only=True)
    try:
        return duckdb.connect(str(snapshot_path(warehouse)), read_only=True)
    except duckdb.Error as e:
        raise TdwError(f"cannot open the serving snapshot {snapshot_path(warehouse)}: "
                       f"{str(e).splitlines()[0]}") from None
