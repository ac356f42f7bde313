"""``tdw serve``: the serving snapshot over the PostgreSQL wire protocol, read-only.

Any BI tool or client with a Postgres driver (psql, psycopg, Superset, Metabase, Tableau,
DBeaver) connects to it. The protocol, session commands and catalog are in
:mod:`warehouse.pgwire`; this module is the adapter between them and the warehouse:

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
- **the protocol is ours** (:mod:`warehouse.pgwire`): buenavista 0.5's handlers mis-bound
  parameters, replayed suspended portals from row 0, sent no SQLSTATEs, ignored cancel
  requests and encoded rows one value at a time; the PostgreSQL v3 subset clients use is
  small, so it is implemented there with a catalog (``pg_catalog`` as PostgreSQL clients
  expect it, built from the snapshot) and the session commands clients send on connect.
- **who may connect.** The server binds to loopback by default and then accepts any user
  name without a password. Binding to another address needs ``allow_remote`` and a password
  (MD5 authentication, one user); without ``allow_remote`` only loopback peers are accepted.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingest.errors import TdwError
from warehouse import sqlguard
from warehouse.pgwire.catalog import Catalog
from warehouse.pgwire.protocol import PgServer
from warehouse.pgwire.session import Session
from warehouse.snapshot import snapshot_path
from warehouse.sqlguard import statement_kinds  # noqa: F401  (re-exported for tests and clients)

DEFAULT_PORT = 5433
DEFAULT_IDLE_TIMEOUT = 300.0
BACKLOG = PgServer.request_queue_size
ALLOWED = sqlguard.ALLOWED


class SnapshotConnection:
    """Hands each new session a cursor on the newest published snapshot."""

    def __init__(self, warehouse: Path, timeout: float | None):
        self.path = snapshot_path(Path(warehouse))
        if not self.path.exists():
            raise TdwError(f"no serving snapshot at {self.path}: run `tdw build` (or `tdw publish`) first")
        self.timeout = timeout
        self._lock = threading.Lock()
        self._db: duckdb.DuckDBPyConnection | None = None
        self._inode: tuple[int, int] | None = None
        self._catalogs: dict[int, Catalog] = {}
        self.catalog(self.database())  # built now, so the first client does not wait for it

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
            except TdwError as e:  # name the snapshot, not the private link
                raise TdwError(str(e).replace(str(target), str(self.path))) from None
        finally:
            if target == link:
                link.unlink(missing_ok=True)
        return con, (st.st_ino, st.st_dev)

    def catalog(self, db: duckdb.DuckDBPyConnection) -> Catalog:
        """The PostgreSQL catalog of the snapshot ``db`` (built once per opened snapshot)."""
        with self._lock:
            catalog = self._catalogs.get(id(db))
            if catalog is None:
                try:
                    catalog = Catalog(db.cursor())
                except (duckdb.Error, OSError) as e:
                    raise TdwError(f"cannot read the catalog of {self.path}: {str(e).splitlines()[0]}") from None
                self._catalogs = {id(db): catalog}
            return catalog

    def new_session(self, database: str, user: str, pid: int) -> Session:
        db = self.database()
        return Session(db.cursor(), self.catalog(db), self.timeout, database, user, pid)


class TdwServer(PgServer):
    """The PostgreSQL-protocol server on a snapshot; loopback peers only unless ``allow_remote``."""

    def __init__(
        self,
        address: tuple[str, int],
        conn: SnapshotConnection,
        auth: dict[str, str] | None,
        allow_remote: bool,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    ):
        self.conn, self.allow_remote = conn, allow_remote
        super().__init__(address, conn.new_session, auth, idle_timeout)

    def verify_request(self, request, client_address) -> bool:
        return self.allow_remote or is_loopback(client_address[0])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeOptions:
    """How ``tdw serve`` listens: address (port 0: any free one), who may connect, and the
    query and idle time limits in seconds (None: none)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allow_remote: bool = False
    user: str = "tdw"
    password: str | None = None
    timeout: float | None = 60.0
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT


def make_server(warehouse: Path, options: ServeOptions = ServeOptions()) -> TdwServer:
    """A server bound to ``options.host:port``; call ``serve_forever()``."""
    host, port, allow_remote, password = options.host, options.port, options.allow_remote, options.password
    if not is_loopback(host):
        if not allow_remote:
            raise TdwError(
                f"--host {host} exposes the warehouse beyond this machine: "
                "pass --allow-remote and a --password to do so"
            )
        if not password:
            raise TdwError("--allow-remote needs a password (--password or TDW_SERVE_PASSWORD)")
    timeout = sqlguard.check_timeout(options.timeout, "--timeout")
    idle_timeout = sqlguard.check_timeout(options.idle_timeout, "--idle-timeout")
    if not 0 <= port <= 65535:
        raise TdwError(f"--port must be between 0 and 65535, got {port}")
    auth = {options.user: password} if password else None
    conn = SnapshotConnection(warehouse, timeout)
    try:
        return TdwServer((host, port), conn, auth, allow_remote, idle_timeout)
    except socket.gaierror:
        raise TdwError(f"cannot resolve host {host!r}") from None
    except OSError as e:
        raise TdwError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
