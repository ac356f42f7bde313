"""Read-only SQL on the warehouse: ``tdw sql``.

The connection is opened read-only and only SELECT and EXPLAIN statements (with CTEs,
DESCRIBE, SHOW and SUMMARIZE, which DuckDB parses as SELECT) are accepted, so neither the
database nor the file system can be written through this interface.

Queries read the serving snapshot (``warehouse/snapshot.py``) when one was published, so
they never block ingest or a build and never see half a build; ``working=True`` reads the
working file instead (raw and staging tables live only there). DuckDB has no statement
timeout: a timer thread calls ``interrupt()`` on the connection when ``timeout`` runs out.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import duckdb
import pandas as pd

from ingest.errors import TdwError

ALLOWED = {"SELECT", "EXPLAIN"}


def check_read_only(query: str) -> None:
    try:
        statements = duckdb.connect().extract_statements(query)
    except duckdb.Error as e:
        raise TdwError(f"SQL error: {str(e).splitlines()[0]}") from None
    if not statements:
        raise TdwError("empty query")
    for s in statements:
        kind = str(s.type).split(".")[-1]
        if kind not in ALLOWED:
            raise TdwError(f"refused: {kind} statements are not allowed; the SQL interface is read-only")


def run_with_timeout(con: duckdb.DuckDBPyConnection, sql: str, timeout: float | None,
                     params: list | None = None) -> pd.DataFrame:
    """Execute ``sql`` on ``con``; past ``timeout`` seconds the query is interrupted and a
    TdwError says so. Any DuckDB error becomes a one-line TdwError."""
    timer = None
    fired = threading.Event()
    if timeout is not None:
        if timeout <= 0:
            raise TdwError(f"timeout must be positive, got {timeout}")

        def stop() -> None:
            fired.set()
            con.interrupt()
        timer = threading.Timer(timeout, stop)
        timer.daemon = True
        timer.start()
    try:
        return con.execute(sql, params).df() if params else con.execute(sql).df()
    except duckdb.Error as e:
        if fired.is_set():
            raise TdwError(f"query interrupted: it ran longer than the {timeout:g} s timeout") from None
        raise TdwError(f"SQL error: {str(e).splitlines()[0]}") from None
    finally:
        if timer is not None:
            timer.cancel()


def query(warehouse: Path, sql: str, timeout: float | None = None, working: bool = False) -> pd.DataFrame:
    """Read-only ``sql`` on the serving snapshot (or the working file: see the module docstring)."""
    from warehouse.snapshot import connect

    check_read_only(sql)
    con = connect(Path(warehouse), working=working)
    try:
        return run_with_timeout(con, sql, timeout)
    except TdwError as e:
        if not working and any(f'schema "{s}" does not exist' in str(e) for s in ("raw", "staging", "intermediate")):
            raise TdwError(f"{e} (the serving snapshot holds the marts only: use --working for the "
                           "raw, staging and intermediate tables)") from None
        raise
    finally:
        con.close()


def format_frame(df: pd.DataFrame, fmt: str = "table", max_rows: int = 200) -> str:
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return json.dumps(json.loads(df.to_json(orient="records", date_format="iso")), indent=1)
    shown = df.head(max_rows)
    cells = [[str(c) for c in shown.columns]] + [
        ["" if pd.isna(v) is True else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in row]
        for row in shown.itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))] if cells[0] else []
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    if len(df) > max_rows:
        lines.append(f"... {len(df) - max_rows} more rows ({len(df)} in all)")
    else:
        lines.append(f"({len(df)} row{'s' if len(df) != 1 else ''})")
    return "\n".join(lines)
