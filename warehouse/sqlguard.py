"""The one guard every SQL surface goes through: ``tdw sql``, ``tdw serve`` and the report.

Read-only by construction, not by a list of statement types. A list was the first design
and it failed: ``EXPLAIN ANALYZE`` *executes* the statement it wraps, so
``EXPLAIN ANALYZE COPY ... TO 'data/warehouse.duckdb'`` overwrote the warehouse and
``EXPLAIN ANALYZE SET memory_limit='1KB'`` bricked the server for every later client. So:

1. the file is attached **read-only** (no INSERT, CREATE, CHECKPOINT-with-changes...);
2. **external access is disabled** (``enable_external_access = false``): COPY TO, EXPORT,
   ATTACH, INSTALL, LOAD from a path, ``read_text``/``read_csv``/``glob`` of any file fail
   inside DuckDB itself; extension auto-install and auto-load are off;
3. the **configuration is locked** (``lock_configuration = true``): ``SET memory_limit``,
   ``SET threads``, ``RESET``, ``PRAGMA threads`` fail, so no session can change the
   database's global settings for the others. Session-local settings (``search_path``,
   ``schema``, variables) remain each session's own.

DuckDB cannot switch either setting back while the database is open, so a statement that
slipped past the first message below still cannot write or reconfigure anything.

The statement check (:func:`check_statements`) is kept only as a friendlier first message:
SELECT and EXPLAIN (with CTEs, DESCRIBE, SHOW and SUMMARIZE, which DuckDB parses as
SELECT) are accepted, and ``EXPLAIN [ANALYZE]`` is classified as the statement it wraps.

Running a query (:func:`run`) binds parameters, enforces a timeout (DuckDB has none: a
timer thread calls ``interrupt()``) and turns any DuckDB error into a one-line TdwError.
"""
from __future__ import annotations

import math
import re
import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ingest.errors import TdwError

ALLOWED = {"SELECT", "EXPLAIN"}
MAX_TIMEOUT = 7 * 24 * 3600.0
# set before the lock; the lock then keeps every setting as it is for the life of the database
LOCKDOWN = (("enable_external_access", "false"), ("autoinstall_known_extensions", "false"),
            ("autoload_known_extensions", "false"), ("allow_community_extensions", "false"))
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+|\((?:[^()]*)\)\s*)?", re.IGNORECASE)
_PARSER = threading.local()


def _parser() -> duckdb.DuckDBPyConnection:
    if not hasattr(_PARSER, "con"):
        _PARSER.con = duckdb.connect()
    return _PARSER.con


def statement_kinds(sql: str) -> list[str]:
    """DuckDB's statement type of each statement of ``sql``; ``EXPLAIN [ANALYZE] X`` is X's
    type (EXPLAIN of a SELECT stays ``EXPLAIN``). A syntax error is a one-line TdwError."""
    try:
        statements = _parser().extract_statements(sql)
    except duckdb.Error as e:
        raise TdwError(f"SQL error: {str(e).splitlines()[0]}") from None
    kinds = []
    for s in statements:
        kind = str(s.type).split(".")[-1]
        if kind == "EXPLAIN":
            inner = _EXPLAIN.sub("", s.query, count=1)
            inner_kinds = statement_kinds(inner) if inner.strip() and inner != s.query else ["SELECT"]
            kind = "EXPLAIN" if inner_kinds == ["SELECT"] else (inner_kinds[0] if inner_kinds else "EXPLAIN")
        kinds.append(kind)
    return kinds


def check_statements(sql: str, what: str = "the SQL interface") -> list[str]:
    """Refuse (one line) anything but SELECT/EXPLAIN; returns the kinds. Only a first message:
    the connection itself cannot write (see the module docstring)."""
    kinds = statement_kinds(sql)
    if not kinds:
        raise TdwError("empty query")
    for kind in kinds:
        if kind not in ALLOWED:
            raise TdwError(f"refused: {kind} statements are not allowed; {what} is read-only")
    return kinds


def lock_down(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Disable external access and lock the configuration of ``con``'s database (idempotent:
    a database already locked down in this process is checked, not reconfigured)."""
    try:
        locked = con.execute("SELECT current_setting('lock_configuration')").fetchall()[0][0]
        if not locked:
            for name, value in LOCKDOWN:
                con.execute(f"SET {name} = {value}")
            con.execute("SET lock_configuration = true")
        external = con.execute("SELECT current_setting('enable_external_access')").fetchall()[0][0]
    except duckdb.Error as e:
        con.close()
        raise TdwError(f"cannot make the connection read-only: {str(e).splitlines()[0]}") from None
    if external:
        con.close()
        raise TdwError("cannot make the connection read-only: this database was opened in this "
                       "process with external access on and its configuration locked")
    return con


def open_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only, locked-down connection to the DuckDB file at ``path``."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as e:
        raise TdwError(f"cannot open {path}: {str(e).splitlines()[0]}") from None
    return lock_down(con)


def check_timeout(timeout: float | None, what: str = "timeout") -> float | None:
    """A finite, positive number of seconds (at most a week), or None for no timeout."""
    if timeout is None:
        return None
    try:
        t = float(timeout)
    except (TypeError, ValueError):
        raise TdwError(f"{what} must be a number of seconds, got {timeout!r}") from None
    if not math.isfinite(t) or t <= 0 or t > MAX_TIMEOUT:
        raise TdwError(f"{what} must be a positive number of seconds up to {MAX_TIMEOUT:g}, got {timeout}")
    return t


def run(con: duckdb.DuckDBPyConnection, sql: str, timeout: float | None = None,
        params: list | dict | None = None, arrow: bool = False) -> Any:
    """Execute ``sql`` (with bound ``params``) on ``con`` and materialise the result (a pandas
    DataFrame, or an Arrow table with ``arrow``; None for a statement without rows). Past
    ``timeout`` seconds the query is interrupted; any DuckDB error is a one-line TdwError."""
    timeout = check_timeout(timeout)
    fired = threading.Event()
    timer = None
    if timeout is not None:
        def stop() -> None:
            fired.set()
            con.interrupt()
        timer = threading.Timer(timeout, stop)
        timer.daemon = True
        timer.start()
    try:
        rel = con.sql(sql, params=params or None)     # lazy: runs when materialised below
        if rel is None:
            return None
        return rel.to_arrow_table() if arrow else rel.df()
    except (duckdb.Error, pa.ArrowException) as e:
        if fired.is_set():
            raise TdwError(f"query interrupted: it ran longer than the {timeout:g} s timeout") from None
        raise TdwError(f"SQL error: {str(e).splitlines()[0]}") from None
    finally:
        if timer is not None:
            timer.cancel()
