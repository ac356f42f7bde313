"""Read-only SQL on the warehouse: ``tdw sql``.

The connection is read-only by construction (``warehouse.sqlguard``: read-only attach,
external access off, configuration locked), so neither the database, the file system nor
the database's settings can be changed through this interface; SELECT and EXPLAIN are the
statements accepted (``EXPLAIN ANALYZE`` counts as the statement it wraps).

Queries read the serving snapshot (``warehouse/snapshot.py``) when one was published, so
they never block ingest or a build and never see half a build; ``working=True`` reads the
working file instead (raw and staging tables live only there). The timeout is the guard's.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from ingest.errors import TdwError
from warehouse import sqlguard

ALLOWED = sqlguard.ALLOWED


def check_read_only(query: str) -> None:
    """The friendlier first refusal (the connection itself cannot write: ``warehouse.sqlguard``)."""
    sqlguard.check_statements(query)


def run_with_timeout(con: duckdb.DuckDBPyConnection, sql: str, timeout: float | None,
                     params: list | None = None) -> pd.DataFrame:
    """Execute ``sql`` on ``con`` within ``timeout`` seconds (``warehouse.sqlguard.run``)."""
    return sqlguard.run(con, sql, timeout, params)


def query(warehouse: Path, sql: str, timeout: float | None = None, working: bool = False) -> pd.DataFrame:
    """Read-only ``sql`` on the serving snapshot (or the working file: see the module docstring)."""
    from warehouse.snapshot import connect

    check_read_only(sql)
    timeout = sqlguard.check_timeout(timeout, "--timeout")
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
