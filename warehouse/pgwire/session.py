"""One client session: what each statement a PostgreSQL client sends becomes.

Classification is textual and cheap (no DuckDB connection per statement): the session
commands clients send on connect or around transactions (``SET``, ``SHOW``, ``BEGIN``,
``SAVEPOINT``, ``DISCARD``, ``LISTEN``, ``DEALLOCATE``...) are answered here; a statement
starting with SELECT/WITH/VALUES/TABLE runs directly; anything else is classified by
DuckDB's parser through :mod:`warehouse.sqlguard` and refused unless it reads. None of
this is the read-only guarantee: the connection itself cannot write, read files or change
settings (``sqlguard``); a write slipping past the text check still fails inside DuckDB
and is answered with SQLSTATE 25006 like the refused ones.

Errors carry a SQLSTATE (:func:`sqlstate`) and leave the session usable.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from ingest.errors import TdwError
from warehouse import sqlguard
from warehouse.pgwire import catalog
from warehouse.pgwire.types import TEXT, arrow_oid

SERVER_VERSION = "15.0"
VERSION = f"PostgreSQL {SERVER_VERSION} (tdw serving snapshot on DuckDB {duckdb.__version__})"
SETTABLE = {"search_path", "schema"}  # session-local in DuckDB; everything else is acknowledged only
_READ = re.compile(r"^\s*(\(\s*)*(select|with|values|table|from)\b", re.I)
_WORD = re.compile(r"^\s*([a-z_]+)(?:\s+([a-z_]+))?", re.I)
_COPY = re.compile(r"^\s*copy\s*\((?P<q>.*)\)\s*to\s+stdout\b(?P<opts>.*)$", re.I | re.S)
_SESSION_WORDS = re.compile(
    r"pg_backend_pid|current_database|version\s*\(|current_user|session_user|"
    r"current_setting",
    re.I,
)
_SHOW = re.compile(r"^\s*show\s+(.+?)\s*$", re.I | re.S)
_DECLARE = re.compile(r"^\s*declare\s+\"?(\w+)\"?\s.*?\bcursor\b.*?\bfor\s+(.*)$", re.I | re.S)
_FETCH = re.compile(r"^\s*(?:fetch|move)\s+(?:(?:forward\s+)?(\d+|all)\s+)?(?:from\s+|in\s+)?\"?(\w+)\"?\s*$", re.I)


class PgError(Exception):
    """An ErrorResponse: severity ERROR, a SQLSTATE and a one-line message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


_STATES = (
    ("interrupted", "57014"),
    ("read-only", "25006"),
    ("read only", "25006"),
    ("refused", "25006"),
    ("Permission Error", "42501"),
    ("external access", "42501"),
    ("Parser Error", "42601"),
    ("syntax error", "42601"),
    ("Table with name", "42P01"),
    ("Table Function with name", "42883"),
    ("Referenced column", "42703"),
    ("not found in FROM clause", "42703"),
    ("Function with name", "42883"),
    ("Conversion Error", "22P02"),
    ("Out of Range", "22003"),
    ("Invalid Input", "22023"),
    ("Binder Error", "42000"),
    ("Catalog Error", "42000"),
)


def sqlstate(message: str) -> str:
    return next((code for needle, code in _STATES if needle in message), "XX000")


def pg_error(e: Exception) -> PgError:
    if isinstance(e, PgError):
        return e
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return PgError(sqlstate(msg), msg)


@dataclass
class Result:
    """Rows (an Arrow table) or a bare command tag; ``copy`` marks COPY ... TO STDOUT."""

    table: pa.Table | None = None
    tag: str = ""
    copy: dict | None = None
    oids: list[int] = field(default_factory=list)

    def __post_init__(self):
        if self.table is not None and not self.oids:
            self.oids = [arrow_oid(f.type) for f in self.table.schema]


def _one_row(name: str, value: str, tag: str = "SHOW") -> Result:
    return Result(pa.table({name: pa.array([value], pa.string())}), tag, oids=[TEXT])


def split_statements(sql: str) -> list[str]:
    """``sql`` split at semicolons outside quotes, comments and dollar quotes."""
    out, start, i, n = [], 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            j = sql.find(c, i + 1)
            while j != -1 and j + 1 < n and sql[j + 1] == c:
                j = sql.find(c, j + 2)
            i = n if j == -1 else j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j == -1 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j == -1 else j + 2
        elif c == "$" and (m := re.match(r"\$[A-Za-z_]*\$", sql[i:])):
            j = sql.find(m.group(0), i + len(m.group(0)))
            i = n if j == -1 else j + len(m.group(0))
        elif c == ";":
            out.append(sql[start:i])
            i += 1
            start = i
        else:
            i += 1
    out.append(sql[start:])
    return [s for s in out if s.strip()]


class Session:
    """A cursor on the snapshot plus the session's state (settings, cursors, transaction)."""

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        cat: catalog.Catalog,
        timeout: float | None,
        database: str,
        user: str,
        pid: int,
    ):
        self.cursor, self.catalog, self.timeout = cursor, cat, timeout
        self.database, self.user, self.pid = database, user, pid
        self.in_txn = self.failed = False
        self.cursors: dict[str, list] = {}
        self.settings = {
            "server_version": SERVER_VERSION,
            "server_version_num": "150000",
            "server_encoding": "UTF8",
            "client_encoding": "UTF8",
            "datestyle": "ISO, MDY",
            "timezone": "UTC",
            "time zone": "UTC",
            "intervalstyle": "postgres",
            "integer_datetimes": "on",
            "standard_conforming_strings": "on",
            "transaction_isolation": "read committed",
            "transaction isolation level": "read committed",
            "default_transaction_read_only": "on",
            "transaction_read_only": "on",
            "is_superuser": "off",
            "application_name": "",
            "max_identifier_length": "63",
            "lc_collate": "C",
            "lc_ctype": "C",
            "max_index_keys": "32",
            "search_path": "marts, main",
        }
        self._lock = threading.Lock()
        self._running = False
        self.cancelled = False
        self._catalog_cursor: duckdb.DuckDBPyConnection | None = None
        self._active = cursor
        cursor.execute("SET search_path = 'marts,main'")

    def close(self) -> None:
        """Close the session's cursors (its catalog cursor holds a temp view)."""
        for cur in (self.cursor, self._catalog_cursor):
            try:
                if cur is not None:
                    cur.close()
            except duckdb.Error:
                pass

    # -- cancel ---------------------------------------------------------------------------
    def cancel(self) -> None:
        with self._lock:
            if self._running:
                self.cancelled = True
                self._active.interrupt()

    # -- statements -----------------------------------------------------------------------
    def run_simple(self, sql: str) -> list[Result]:
        return [self.execute(s) for s in split_statements(sql)] or [Result(tag="EMPTY")]

    def execute(self, sql: str, params: list | None = None) -> Result:
        try:
            result = self._execute(sql.strip().rstrip(";").strip(), params)
        except Exception:
            if self.in_txn:
                self.failed = True
            raise
        return result

    def _execute(self, sql: str, params: list | None) -> Result:
        if not sql:
            return Result(tag="EMPTY")
        if _READ.match(sql):
            return self.query(sql, params)
        m = _WORD.match(sql)
        w1, w2 = ((m.group(1) or "").lower(), (m.group(2) or "").lower()) if m else ("", "")
        if w1 in ("begin", "start"):
            self.in_txn, self.failed = True, False
            return Result(tag="BEGIN")
        if w1 in ("commit", "end", "rollback", "abort") and w2 != "to":
            failed, self.in_txn, self.failed = self.failed, False, False
            self.cursors.clear()
            return Result(tag="ROLLBACK" if failed or w1 in ("rollback", "abort") else "COMMIT")
        if w1 == "rollback" or w1 in ("savepoint", "release"):
            self.failed = False if w1 == "rollback" else self.failed
            return Result(tag={"savepoint": "SAVEPOINT", "release": "RELEASE"}.get(w1, "ROLLBACK"))
        if w1 in ("discard", "listen", "unlisten", "deallocate", "close", "notify", "checkpoint", "reset"):
            if w1 == "close":
                self.cursors.pop(sql.split()[-1].strip('"').lower(), None)
            return Result(
                tag={"discard": f"DISCARD {w2.upper() or 'ALL'}", "close": "CLOSE CURSOR"}.get(w1, w1.upper())
            )
        if w1 == "set":
            return self.set(sql)
        if w1 == "show":
            return self.show(sql)
        if w1 == "copy":
            return self.copy(sql, params)
        if w1 == "declare":
            return self.declare(sql, params)
        if w1 == "fetch" or w1 == "move":
            return self.fetch(sql)
        kinds = sqlguard.statement_kinds(self.catalog.rewrite(sql))
        refused = [k for k in kinds if k not in sqlguard.ALLOWED]
        if refused:
            raise PgError("25006", f"cannot execute {refused[0]} in a read-only transaction: this server is read-only")
        return self.query(sql, params)

    def query(self, sql: str, params: list | None) -> Result:
        sql = self.session_values(sql)
        rewritten = self.catalog.rewrite(sql)
        cursor = self.cursor
        if rewritten is not sql:  # a catalog query: it runs on the catalog's own database
            if self._catalog_cursor is None:
                self._catalog_cursor = self.catalog.cursor(self.database)
            cursor, sql = self._catalog_cursor, rewritten
        with self._lock:
            self._running, self.cancelled, self._active = True, False, cursor
        try:
            table = sqlguard.run(cursor, sql, self.timeout, params, arrow=True)
        except TdwError as e:
            if self.cancelled:
                raise PgError("57014", "canceling statement due to user request") from None
            raise pg_error(e) from None
        finally:
            with self._lock:
                self._running = False
        if table is None:
            return Result(tag="OK")
        verb = sql.split(None, 1)[0].upper() if sql.split() else "SELECT"
        return Result(table, f"SELECT {table.num_rows}" if verb not in ("EXPLAIN",) else "EXPLAIN")

    def session_values(self, sql: str) -> str:
        """The session's own answers written into ``sql``: ``pg_backend_pid()``,
        ``current_database()``, ``current_user``, ``version()`` and ``current_setting`` of the
        PostgreSQL settings clients ask for (DuckDB's own settings are left to DuckDB)."""
        if not _SESSION_WORDS.search(sql):
            return sql

        def lit(v: str) -> str:
            return "'" + v.replace("'", "''") + "'"

        def setting(m: re.Match) -> str:
            name = m.group(1).lower()
            return lit(self.settings[name]) if name in self.settings else m.group(0)

        sql = re.sub(r"\b(?:pg_catalog\.)?pg_backend_pid\s*\(\s*\)", str(self.pid), sql, flags=re.I)
        sql = re.sub(r"\b(?:pg_catalog\.)?current_database\s*\(\s*\)", lit(self.database), sql, flags=re.I)
        sql = re.sub(r"\b(?:pg_catalog\.)?version\s*\(\s*\)", lit(VERSION), sql, flags=re.I)
        sql = (
            re.sub(
                r"\b(?:pg_catalog\.)?(?:current_user|session_user|user)\b(?:\s*\(\s*\))?(?!\s*\.)",
                lit(self.user),
                sql,
                flags=re.I,
            )
            if re.search(r"\b(current_user|session_user)\b", sql, re.I)
            else sql
        )
        return re.sub(
            r"\b(?:pg_catalog\.)?current_setting\s*\(\s*'([^']*)'\s*(?:,\s*\w+\s*)?\)", setting, sql, flags=re.I
        )

    def describe(self, sql: str, nparams: int) -> Result | None:
        """The result's columns without running it (Describe of a prepared statement)."""
        sql = sql.strip().rstrip(";").strip()
        if _READ.match(sql):
            return self.query(f"SELECT * FROM ({sql}) AS tdw_describe LIMIT 0", [None] * nparams or None)
        if _SHOW.match(sql) and sql.split()[0].lower() == "show":
            return self.show(sql)
        return None

    def set(self, sql: str) -> Result:
        m = re.match(r"^\s*set\s+(?:session\s+|local\s+)?(.+?)\s*(?:=|\bto\b)\s*(.+)$", sql, re.I | re.S)
        if m:
            name, value = m.group(1).strip().lower(), m.group(2).strip().strip("'\"")
            if name in SETTABLE:
                try:
                    self.cursor.execute(f"SET {name} = '{value.replace(chr(39), '')}'")
                except duckdb.Error as e:
                    raise pg_error(e) from None
            if name not in self.catalog.duckdb_settings:  # DuckDB's own stay DuckDB's (locked)
                self.settings[name] = value
        return Result(tag="SET")

    def show(self, sql: str) -> Result:
        name = _SHOW.match(sql).group(1).strip().lower()
        if name == "all":
            items = sorted(self.settings.items())
            return Result(
                pa.table(
                    {"name": [k for k, _ in items], "setting": [v for _, v in items], "description": [""] * len(items)}
                ),
                "SHOW",
                oids=[TEXT] * 3,
            )
        if name in self.settings:
            return _one_row(name.replace(" ", "_") if name != "time zone" else "TimeZone", self.settings[name])
        raise PgError("42704", f'unrecognized configuration parameter "{name}"')

    def copy(self, sql: str, params: list | None) -> Result:
        m = _COPY.match(sql)
        if not m:
            raise PgError("25006", "only COPY (query) TO STDOUT is supported: this server is read-only")
        opts = m.group("opts").lower()
        csv = "csv" in opts
        header = "header" in opts and not re.search(r"header\s*(false|off|0)", opts)
        delim = re.search(r"delimiter\s*(?:as\s*)?'(.)'", opts)
        result = self.query(m.group("q"), params)
        result.copy = {
            "csv": csv,
            "header": header and csv,
            "delimiter": delim.group(1) if delim else ("," if csv else "\t"),
        }
        result.tag = f"COPY {result.table.num_rows if result.table is not None else 0}"
        return result

    def declare(self, sql: str, params: list | None) -> Result:
        m = _DECLARE.match(sql)
        if not m:
            raise PgError("42601", "syntax error in DECLARE")
        result = self.query(m.group(2), params)
        self.cursors[m.group(1).lower()] = [result.table, 0]
        return Result(tag="DECLARE CURSOR")

    def fetch(self, sql: str) -> Result:
        m = _FETCH.match(sql)
        if not m or m.group(2).lower() not in self.cursors:
            raise PgError("34000", "cursor does not exist")
        table, offset = self.cursors[m.group(2).lower()]
        n = table.num_rows - offset if (m.group(1) or "1").lower() == "all" else int(m.group(1) or 1)
        part = table.slice(offset, n)
        self.cursors[m.group(2).lower()][1] = offset + part.num_rows
        if sql.lstrip().lower().startswith("move"):
            return Result(tag=f"MOVE {part.num_rows}")
        return Result(part, f"FETCH {part.num_rows}")


def backend_pid() -> int:
    return os.getpid()
