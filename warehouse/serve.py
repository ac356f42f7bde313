"""``tdw serve``: the serving snapshot over the PostgreSQL wire protocol, read-only.

Any BI tool or client with a Postgres driver (psql, psycopg, Superset, Metabase, Tableau,
DBeaver) connects to it. The protocol is buenavista's (0.5); this module is the thin adapter
between it and the warehouse:

- **the snapshot, never the working file.** Each new client session opens (a cursor of) a
  read-only connection to ``<stem>.serving.duckdb``; when a build has published a new
  snapshot since (its inode changed) the next session opens the new file, and sessions
  already open finish on the one they started with. Ingest and build are never blocked.
- **read-only by construction** (``warehouse.sqlguard``, shared with ``tdw sql`` and the
  report): the file is opened read-only, external access is off and the configuration is
  locked, so no client can write, read other files, or change a global setting (memory
  limit, threads) for the others. The statement check is the friendlier first message:
  SELECT and EXPLAIN run (``EXPLAIN ANALYZE X`` counts as X), BEGIN/COMMIT/ROLLBACK are
  acknowledged, ``SET`` is acknowledged without effect (BI tools send session settings on
  connect) except the session-local ``search_path``/``schema``; anything else is refused
  with an error message. The session stays usable after an error.
- **bursts and idle clients.** The listen backlog is 256, so a burst of clients queues
  instead of timing out; a client idle for ``idle_timeout`` seconds (default 300) is
  disconnected.
- **bounded queries.** A query running longer than ``timeout`` seconds is interrupted (a
  timer thread calls ``interrupt()``), and its result is materialised before the first row
  is sent, so a failure never leaves a half-sent result on the wire.
- **DuckDB 2.0.** buenavista's DuckDB backend calls ``fetch_record_batch``, which DuckDB 2.0
  names ``to_arrow_reader``, and it fails on Arrow types it does not map (NULL, dictionary):
  this module reads Arrow tables itself and sends unmapped types as text.
- **who may connect.** The server binds to loopback by default and then accepts any user
  name without a password. Binding to another address needs ``allow_remote`` and a password
  (MD5 authentication, one user); without ``allow_remote`` only loopback peers are accepted.
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa
from buenavista import bv_dialects, rewrite
from buenavista.backends.duckdb import DuckDBSession, to_bvtype
from buenavista.core import BVType, Connection, QueryResult, Session
from buenavista.postgres import BuenaVistaHandler, BuenaVistaServer

from ingest.errors import TdwError
from warehouse import sqlguard
from warehouse.snapshot import snapshot_path
from warehouse.sqlguard import statement_kinds  # noqa: F401  (re-exported for tests and clients)

DEFAULT_PORT = 5433
DEFAULT_IDLE_TIMEOUT = 300.0
BACKLOG = 256
ALLOWED = sqlguard.ALLOWED
SETTABLE = {"search_path", "schema"}   # session-local in DuckDB; everything else is locked


class ArrowResult(QueryResult):
    """A materialised Arrow table (or a bare status such as ``BEGIN``) for buenavista."""

    def __init__(self, table: pa.Table | None = None, status: str = ""):
        super().__init__()
        self.table, self._status = table, status
        self.bvtypes = [self._bvtype(f.type) for f in table.schema] if table is not None else []

    @staticmethod
    def _bvtype(t: pa.DataType) -> BVType:
        if pa.types.is_nested(t):  # lists, structs, maps: sent as JSON text
            return BVType.TEXT
        try:
            return to_bvtype(t)
        except Exception:  # NULL, dictionary (ENUM), unions...: sent as text
            return BVType.TEXT

    def has_results(self) -> bool:
        return self.table is not None

    def column_count(self) -> int:
        return self.table.num_columns if self.table is not None else 0

    def column(self, index: int) -> tuple[str, BVType]:
        return self.table.schema[index].name, self.bvtypes[index]

    def rows(self) -> Iterator[list]:
        if self.table is None:
            return iter([])
        text = [i for i, b in enumerate(self.bvtypes) if b == BVType.TEXT]

        def gen():
            for batch in self.table.to_batches():
                cols = [c.to_pylist() for c in batch.columns]
                for r in range(batch.num_rows):
                    row = [c[r] for c in cols]
                    for i in text:
                        if row[i] is not None and not isinstance(row[i], str):
                            row[i] = (json.dumps(row[i], default=str) if isinstance(row[i], (list, dict))
                                      else str(row[i]))
                    yield row
        return gen()

    def status(self) -> str:
        return self._status


class ReadOnlySession(DuckDBSession):
    """One client session: statement checks, the timeout, Arrow results."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, timeout: float | None):
        self.timeout = timeout
        super().__init__(cursor)

    def execute_sql(self, sql: str, params=None) -> QueryResult:
        if not sql.strip().strip(";").strip():
            return ArrowResult(status="")
        kinds = statement_kinds(sql)
        if kinds and all(k == "TRANSACTION" for k in kinds):
            word = sql.strip().split()[0].upper()
            status = {"START": "BEGIN", "END": "COMMIT", "ABORT": "ROLLBACK"}.get(word, word)
            self.in_txn = status == "BEGIN"
            return ArrowResult(status=status)
        if kinds and all(k in ("SET", "VARIABLE_SET") for k in kinds):
            words = sql.replace("=", " ").split()
            if len(kinds) == 1 and len(words) > 1 and words[1].lower() in SETTABLE:
                self._run(sql, None)
            return ArrowResult(status="SET")
        refused = [k for k in kinds if k not in ALLOWED]
        if refused:
            raise TdwError(f"refused: {refused[0]} statements are not allowed; this server is read-only")
        table = self._run(self.rewrite_sql(sql), params)
        return ArrowResult(table, "" if table is not None else "OK")

    def _run(self, sql: str, params) -> pa.Table | None:
        return sqlguard.run(self._cursor, sql, self.timeout, params, arrow=True)


class SnapshotConnection(Connection):
    """Hands each new session a cursor on the newest published snapshot."""

    def __init__(self, warehouse: Path, timeout: float | None):
        super().__init__()
        self.path = snapshot_path(Path(warehouse))
        if not self.path.exists():
            raise TdwError(f"no serving snapshot at {self.path}: run `tdw build` (or `tdw publish`) first")
        self.timeout = timeout
        self._lock = threading.Lock()
        self._db: duckdb.DuckDBPyConnection | None = None
        self._inode: tuple[int, int] | None = None
        self.database()

    def database(self) -> duckdb.DuckDBPyConnection:
        """The open snapshot, reopened when a newer one has been renamed into place."""
        with self._lock:
            st = os.stat(self.path)
            if self._db is None or (st.st_ino, st.st_dev) != self._inode:
                self._db, self._inode = self._open()
            return self._db

    def _open(self) -> tuple[duckdb.DuckDBPyConnection, tuple[int, int]]:
        """Open the current snapshot through a private hard link: DuckDB caches one database
        instance per path in a process, so reconnecting to the same path while sessions still
        use the previous snapshot would hand back the previous snapshot. The link is removed
        once the file is open (the open file keeps its data)."""
        link = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}.serve")
        try:
            link.unlink(missing_ok=True)
            os.link(self.path, link)
            target = link
        except OSError:  # no hard links here: the path itself (a new build shows once all sessions end)
            target = self.path
        try:
            st = os.stat(target)
            try:
                con = sqlguard.open_read_only(target)
            except TdwError as e:   # name the snapshot, not the private link
                raise TdwError(str(e).replace(str(target), str(self.path))) from None
        finally:
            if target == link:
                link.unlink(missing_ok=True)
        return con, (st.st_ino, st.st_dev)

    def parameters(self) -> dict[str, str]:
        return {"server_version": "9.3.duckdb", "client_encoding": "UTF8", "DateStyle": "ISO"}

    def new_session(self) -> Session:
        cursor = self.database().cursor()
        cursor.execute("SET search_path = 'marts,main'")
        return ReadOnlySession(cursor, self.timeout)


class _Rewriter(rewrite.Rewriter):
    def rewrite(self, sql: str) -> str:
        if sql.strip().rstrip(";").lower() in ("select version()", "select pg_catalog.version()"):
            return "SELECT 'PostgreSQL 9.3 (tdw serving snapshot, DuckDB)' AS version"
        return super().rewrite(sql)


class _Handler(BuenaVistaHandler):
    """buenavista's handler with an idle timeout: a client that sends nothing for
    ``server.idle_timeout`` seconds is disconnected (its session closed), so idle
    connections cannot pile up; a dropped or timed-out socket ends the session quietly."""

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout
        super().setup()

    def send_error(self, exception, ctx=None):
        if isinstance(exception, OSError):   # timed out or gone: nobody left to tell
            return
        try:
            super().send_error(exception, ctx)
        except OSError:
            pass


class TdwServer(BuenaVistaServer):
    request_queue_size = BACKLOG      # listen backlog: bursts of clients queue instead of timing out
    daemon_threads = True

    def __init__(self, address: tuple[str, int], conn: Connection, auth: dict[str, str] | None,
                 allow_remote: bool, idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT):
        self.allow_remote = allow_remote
        self.idle_timeout = idle_timeout
        super().__init__(address, conn, rewriter=_Rewriter(bv_dialects.BVPostgres(), bv_dialects.BVDuckDB()),
                         auth=auth)
        self.RequestHandlerClass = _Handler

    def verify_request(self, request, client_address) -> bool:
        return self.allow_remote or is_loopback(client_address[0])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(warehouse: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                allow_remote: bool = False, user: str = "tdw", password: str | None = None,
                timeout: float | None = 60.0,
                idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT) -> TdwServer:
    """A server bound to ``host:port`` (port 0: any free one); call ``serve_forever()``."""
    if not is_loopback(host):
        if not allow_remote:
            raise TdwError(f"--host {host} exposes the warehouse beyond this machine: "
                           "pass --allow-remote and a --password to do so")
        if not password:
            raise TdwError("--allow-remote needs a password (--password or TDW_SERVE_PASSWORD)")
    timeout = sqlguard.check_timeout(timeout, "--timeout")
    idle_timeout = sqlguard.check_timeout(idle_timeout, "--idle-timeout")
    if not 0 <= port <= 65535:
        raise TdwError(f"--port must be between 0 and 65535, got {port}")
    auth = {user: password} if password else None
    conn = SnapshotConnection(warehouse, timeout)
    try:
        return TdwServer((host, port), conn, auth, allow_remote, idle_timeout)
    except socket.gaierror:
        raise TdwError(f"cannot resolve host {host!r}") from None
    except OSError as e:
        raise TdwError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
