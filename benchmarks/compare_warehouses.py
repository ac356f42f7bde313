"""Compare the marts of two warehouses table by table: the check that a refactor changed no
result (issue 13: ``make demo``'s marts before and after, on the same input).

For every table of the marts schemas (``marts`` and any ``marts_*``) in either file it
prints one line: only in A / only in B, or the row counts, the columns only one side has
(a later issue's new column is an expected difference, reported as such), and whether the
values of the shared columns agree. Rows are compared as multisets (order-independent):
both sides are sorted on every shared column, floats rounded to ``--digits`` significant
digits for the sort, then compared value by value with a relative and absolute tolerance
(NaN equals NaN; lists element by element). Columns that record when or how long something
ran (``--volatile``: timestamps, durations, build and run ids) are left out of the value
comparison and named on the line, since two runs never share them.

    python benchmarks/compare_warehouses.py A.duckdb B.duckdb [--rtol 1e-6] [--atol 1e-9]

Exit status 0 when every table present on both sides has equal shared values, 1 otherwise.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

VOLATILE = r"(_at|_time|_seconds|_secs|_ms|duration|elapsed|build_id|run_id|invocation_id|hostname|pid)$"


@dataclass(frozen=True)
class Tolerance:
    rtol: float = 1e-6
    atol: float = 1e-9
    digits: int = 6  # significant digits of the floats the rows are sorted on


def mart_tables(path: Path) -> dict[str, list[str]]:
    """{schema.table: [column, ...]} of the marts schemas."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_schema = 'marts' or table_schema like 'marts\\_%' escape '\\' "
            "order by table_schema, table_name, ordinal_position"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list[str]] = {}
    for schema, table, column in rows:
        out.setdefault(f"{schema}.{table}", []).append(column)
    return out


def read(path: Path, table: str, columns: list[str]) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        return con.execute(f"select {cols} from {table}").df()
    finally:
        con.close()


def _missing(value) -> bool:
    """NULL as pandas hands it over: None, NaN, pd.NA or NaT."""
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _sort_key(value, digits: int):
    """A sortable, hashable stand-in: floats rounded, NaN and None last, lists as tuples."""
    if _missing(value):
        return (2, "")
    if isinstance(value, float | np.floating):
        return (0, float(f"{value:.{digits}g}"))
    if isinstance(value, int | np.integer | bool | np.bool_):
        return (0, float(value))
    if isinstance(value, list | tuple | np.ndarray):
        return (1, str([_sort_key(v, digits) for v in value]))
    return (1, str(value))


def _sorted(df: pd.DataFrame, tol: Tolerance) -> pd.DataFrame:
    keys = [tuple(_sort_key(v, tol.digits) for v in row) for row in df.itertuples(index=False)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return df.iloc[order].reset_index(drop=True)


def _equal(a, b, tol: Tolerance) -> bool:
    missing_a, missing_b = _missing(a), _missing(b)
    if missing_a or missing_b:
        return missing_a and missing_b
    if isinstance(a, list | tuple | np.ndarray) and isinstance(b, list | tuple | np.ndarray):
        return len(a) == len(b) and all(_equal(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float | np.floating) or isinstance(b, float | np.floating):
        try:
            return bool(np.isclose(float(a), float(b), rtol=tol.rtol, atol=tol.atol))
        except (TypeError, ValueError):
            return False
    return a == b or str(a) == str(b)


def _max_delta(a: pd.Series, b: pd.Series) -> str:
    try:
        d = np.abs(a.to_numpy(dtype=float) - b.to_numpy(dtype=float))
    except (TypeError, ValueError):
        return ""
    d = d[np.isfinite(d)]
    return f", max |delta| {d.max():.3g}" if d.size else ""


def compare_table(a: pd.DataFrame, b: pd.DataFrame, tol: Tolerance) -> list[str]:
    """What differs between two frames of the same columns (empty: the same multiset of rows)."""
    if len(a) != len(b):
        return [f"rows {len(a)} vs {len(b)}"]
    a, b = _sorted(a, tol), _sorted(b, tol)
    out = []
    for col in a.columns:
        bad = [i for i, (x, y) in enumerate(zip(a[col], b[col])) if not _equal(x, y, tol)]
        if bad:
            out.append(f"{col}: {len(bad)} of {len(a)} rows differ{_max_delta(a[col][bad], b[col][bad])}")
    return out


def compare(path_a: Path, path_b: Path, tol: Tolerance, volatile: str = VOLATILE) -> int:
    """Print one line per marts table; return the number of tables whose shared values differ."""
    ta, tb = mart_tables(path_a), mart_tables(path_b)
    n_bad = 0
    for table in sorted(set(ta) | set(tb)):
        if table not in tb or table not in ta:
            print(f"{table}: only in {'A' if table in ta else 'B'}")
            continue
        shared = [c for c in ta[table] if c in tb[table]]
        skipped = [c for c in shared if re.search(volatile, c)]
        used = [c for c in shared if c not in skipped]
        notes = []
        if only_a := [c for c in ta[table] if c not in tb[table]]:
            notes.append(f"columns only in A: {', '.join(only_a)}")
        if only_b := [c for c in tb[table] if c not in ta[table]]:
            notes.append(f"columns only in B: {', '.join(only_b)}")
        if skipped:
            notes.append(f"not compared (volatile): {', '.join(skipped)}")
        diffs = compare_table(read(path_a, table, used), read(path_b, table, used), tol)
        n_bad += bool(diffs)
        rows = len(read(path_a, table, used[:1])) if used else 0
        verdict = "DIFFERS: " + "; ".join(diffs) if diffs else f"identical ({rows} rows, {len(used)} columns)"
        print(f"{table}: {verdict}" + (f" [{'; '.join(notes)}]" if notes else ""))
    return n_bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--rtol", type=float, default=Tolerance.rtol)
    ap.add_argument("--atol", type=float, default=Tolerance.atol)
    ap.add_argument("--digits", type=int, default=Tolerance.digits)
    ap.add_argument("--volatile", default=VOLATILE, help="regex of the column names left out of the values")
    args = ap.parse_args()
    for p in (args.a, args.b):
        if not p.is_file():
            raise SystemExit(f"error: {p} is not a file")
    n_bad = compare(args.a, args.b, Tolerance(args.rtol, args.atol, args.digits), args.volatile)
    print(f"{n_bad} table(s) with differing values")
    sys.exit(1 if n_bad else 0)


if __name__ == "__main__":
    main()
