"""Read-only SQL on the warehouse: ``tdw sql``.

The connection is opened read-only and only SELECT and EXPLAIN statements (with CTEs,
DESCRIBE, SHOW and SUMMARIZE, which DuckDB parses as SELECT) are accepted, so neither the
database nor the file system can be written through this interface.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from ingest.errors import TdwError
from warehouse import db

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


def query(warehouse: Path, sql: str) -> pd.DataFrame:
    check_read_only(sql)
    con = db.connect(Path(warehouse), read_only=True)
    try:
        return con.execute(sql).df()
    except duckdb.Error as e:
        raise TdwError(f"SQL error: {str(e).splitlines()[0]}") from None
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
