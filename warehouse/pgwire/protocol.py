"""The PostgreSQL v3 wire protocol, the subset clients use, written here rather than on buenavista.

buenavista 0.5 was the first layer and its handlers were the problem, not the edges: its
Bind parses untyped text parameters as dates and indexes Parse's type list per value, its
portals restart from row 0 on every Execute, errors carry no SQLSTATE, cancel requests are
ignored, rows are encoded one Python value at a time. Fixing that by subclassing meant
replacing every message handler, so the protocol (startup, MD5 or no auth, simple query,
Parse/Bind/Describe/Execute/Close/Sync/Flush, CancelRequest, COPY TO STDOUT) lives here in
one small module and the statements' meaning in :mod:`warehouse.pgwire.session`.

Extended protocol: Bind runs the statement and keeps its (materialised) result as the
portal; Execute(n) sends the next n rows and ``PortalSuspended`` until it is exhausted,
so pgjdbc's ``setFetchSize`` pages through it; after an error every message up to Sync is
skipped, as PostgreSQL does, and the session goes on.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import socketserver
import struct
import threading
from collections.abc import Callable

from warehouse.pgwire.session import PgError, Result, Session, pg_error
from warehouse.pgwire.types import BINARY_OIDS, TEXT, decode_param, encode_rows, text_columns

_I16, _I32 = struct.Struct("!h"), struct.Struct("!i")
BATCH = 65536


def msg(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _I32.pack(len(body) + 4) + body


def cstr(s: str) -> bytes:
    return s.encode() + b"\x00"


def error_response(e: PgError, severity: str = "ERROR") -> bytes:
    body = b"S" + cstr(severity) + b"V" + cstr(severity) + b"C" + cstr(e.code) + b"M" + cstr(e.message) + b"\x00"
    return msg(b"E", body)


def any_params(sql: str) -> set[int]:
    """The parameters used as ``= ANY($n)`` in ``sql``."""
    return {int(n) for n in re.findall(r"ANY\s*\(\s*\$(\d+)\s*\)", sql, re.I)}


class Handler(socketserver.BaseRequestHandler):
    """One client connection."""

    server: PgServer

    def setup(self) -> None:
        self.request.settimeout(self.server.idle_timeout)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.request.makefile("rb", buffering=65536)
        self.out: list[bytes] = []
        self.session: Session | None = None
        self.statements: dict[str, tuple[str, list[int]]] = {}
        self.portals: dict[str, list] = {}

    # -- io -------------------------------------------------------------------------------
    def read(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) < n:
            raise ConnectionError("client went away")
        return data

    def send(self, data: bytes) -> None:
        self.out.append(data)
        if sum(map(len, self.out)) > 1 << 18:
            self.flush()

    def flush(self) -> None:
        if self.out:
            self.request.sendall(b"".join(self.out))
            self.out.clear()

    def ready(self) -> None:
        s = self.session
        self.send(msg(b"Z", b"E" if s.failed else (b"T" if s.in_txn else b"I")))
        self.flush()

    # -- startup --------------------------------------------------------------------------
    def handle(self) -> None:
        try:
            if not self.startup():
                return
            self.loop()
        except (TimeoutError, OSError, ConnectionError):
            pass
        finally:
            if self.session is not None:
                self.server.sessions.pop(self.session.pid, None)
                self.session.close()

    def startup(self) -> bool:
        while True:
            n = _I32.unpack(self.read(4))[0]
            body = self.read(n - 4)
            code = _I32.unpack(body[:4])[0]
            if code == 80877103 or code == 80877104:  # SSLRequest, GSSENCRequest: not here
                self.request.sendall(b"N")
                continue
            if code == 80877102:  # CancelRequest
                pid, key = struct.unpack("!ii", body[4:12])
                entry = self.server.sessions.get(pid)
                if entry is not None and entry[0] == key:
                    entry[1].cancel()
                return False
            break
        parts = body[4:].split(b"\x00")
        params = {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2) if parts[i]}
        user = params.get("user", "tdw")
        database = params.get("database", user)
        if not self.authenticate(user):
            return False
        pid, key = self.server.next_pid(), secrets.randbits(31)
        try:
            self.session = self.server.new_session(database, user, pid)
        except Exception as e:
            self.request.sendall(error_response(pg_error(e), "FATAL"))
            return False
        self.server.sessions[pid] = (key, self.session)
        self.send(msg(b"R", _I32.pack(0)))
        status = {
            "server_version": "15.0",
            "server_encoding": "UTF8",
            "client_encoding": "UTF8",
            "DateStyle": "ISO, MDY",
            "TimeZone": "UTC",
            "integer_datetimes": "on",
            "IntervalStyle": "postgres",
            "standard_conforming_strings": "on",
            "is_superuser": "off",
            "session_authorization": user,
            "application_name": params.get("application_name", ""),
            "default_transaction_read_only": "on",
        }
        for k, v in status.items():
            self.send(msg(b"S", cstr(k) + cstr(v)))
        self.send(msg(b"K", struct.pack("!ii", pid, key)))
        self.ready()
        return True

    def authenticate(self, user: str) -> bool:
        auth = self.server.auth
        if not auth:
            return True
        salt = os.urandom(4)
        self.request.sendall(msg(b"R", _I32.pack(5) + salt))
        kind = self.read(1)
        n = _I32.unpack(self.read(4))[0]
        got = self.read(n - 4).rstrip(b"\x00").decode()
        password = auth.get(user)
        if kind == b"p" and password is not None:
            inner = hashlib.md5((password + user).encode()).hexdigest()
            if got == "md5" + hashlib.md5(inner.encode() + salt).hexdigest():
                return True
        self.request.sendall(
            error_response(PgError("28P01", f'password authentication failed for user "{user}"'), "FATAL")
        )
        return False

    # -- messages -------------------------------------------------------------------------
    def loop(self) -> None:
        skip = False  # after an error in the extended protocol: discard until Sync
        handlers: dict[bytes, Callable[[bytes], None]] = {
            b"P": self.parse,
            b"B": self.bind,
            b"D": self.describe,
            b"E": self.execute,
            b"C": self.close,
        }
        while True:
            kind = self.read(1)
            n = _I32.unpack(self.read(4))[0]
            body = self.read(n - 4)
            if kind == b"X":
                return
            if kind == b"S":
                skip = False
                self.ready()
            elif kind == b"H":
                self.flush()
            elif kind == b"Q":
                self.simple(body[:-1].decode())
            elif kind in handlers:
                if skip:
                    continue
                try:
                    handlers[kind](body)
                except Exception as e:
                    self.send(error_response(pg_error(e)))
                    skip = True
            else:
                self.send(error_response(PgError("0A000", f"unsupported message {kind!r}")))
                self.ready()

    def simple(self, sql: str) -> None:
        try:
            for result in self.session.run_simple(sql):
                if result.tag == "EMPTY":
                    self.send(msg(b"I"))
                    continue
                if result.table is not None and result.copy is None:
                    self.send(self.row_description(result, [False] * result.table.num_columns))
                self.send_rows(result, None, [False] * len(result.oids))
        except Exception as e:
            self.send(error_response(pg_error(e)))
        self.ready()

    def parse(self, body: bytes) -> None:
        name, rest = body.split(b"\x00", 1)
        sql, rest = rest.split(b"\x00", 1)
        n = _I16.unpack(rest[:2])[0]
        oids = list(struct.unpack(f"!{n}i", rest[2 : 2 + 4 * n]))
        self.statements[name.decode()] = (sql.decode(), oids)
        self.send(msg(b"1"))

    def bind(self, body: bytes) -> None:
        portal, rest = body.split(b"\x00", 1)
        stmt, rest = rest.split(b"\x00", 1)
        sql, oids = self.statements[stmt.decode()]
        pos = 0
        nf = _I16.unpack_from(rest, pos)[0]
        formats = struct.unpack_from(f"!{nf}h", rest, pos + 2)
        pos += 2 + 2 * nf
        n = _I16.unpack_from(rest, pos)[0]  # the parameter count is Bind's, not Parse's
        pos += 2
        values = []
        for i in range(n):
            ln = _I32.unpack_from(rest, pos)[0]
            pos += 4
            data = None if ln < 0 else bytes(rest[pos : pos + ln])
            pos += max(ln, 0)
            binary = (formats[i] if nf > 1 else (formats[0] if nf == 1 else 0)) == 1
            oid = oids[i] if i < len(oids) else 0
            if not oid and not binary and data and data[:1] == b"{" and i + 1 in any_params(sql):
                oid = 1009  # an untyped '{a,b}' compared with = ANY($n): PostgreSQL infers text[]
            values.append(decode_param(data, oid, binary))
        nr = _I16.unpack_from(rest, pos)[0]
        rformats = struct.unpack_from(f"!{nr}h", rest, pos + 2)
        result = self.session.execute(sql, values or None)
        ncols = len(result.oids)
        binary = [bool(rformats[i] if nr > 1 else (rformats[0] if nr == 1 else 0)) for i in range(ncols)]
        binary = [b and oid in BINARY_OIDS for b, oid in zip(binary, result.oids)]
        self.portals[portal.decode()] = [result, 0, binary]
        self.send(msg(b"2"))

    def describe(self, body: bytes) -> None:
        kind, name = body[:1], body[1:-1].decode()
        if kind == b"S":
            sql, oids = self.statements[name]
            nparams = self.count_params(sql)
            oids = (oids + [0] * nparams)[: max(nparams, len(oids))]
            self.send(msg(b"t", _I16.pack(len(oids)) + b"".join(_I32.pack(o or TEXT) for o in oids)))
            result = self.session.describe(sql, len(oids))
        elif name not in self.portals and name.lower() in self.session.cursors:  # a DECLAREd cursor
            table = self.session.cursors[name.lower()][0]
            result, binary = Result(table.slice(0, 0), "SELECT 0"), [False] * table.num_columns
        else:
            result, _, binary = self.portals[name]
        if result is None or result.table is None or result.copy is not None:
            self.send(msg(b"n"))
        else:
            self.send(self.row_description(result, binary if kind == b"P" else [False] * len(result.oids)))

    def execute(self, body: bytes) -> None:
        name = body.split(b"\x00", 1)[0].decode()
        limit = _I32.unpack(body[-4:])[0]
        portal = self.portals[name]
        result, offset, binary = portal
        if result.tag == "EMPTY":
            self.send(msg(b"I"))
            return
        portal[1] = self.send_rows(result, limit if limit > 0 else None, binary, offset)

    def close(self, body: bytes) -> None:
        (self.statements if body[:1] == b"S" else self.portals).pop(body[1:-1].decode(), None)
        self.send(msg(b"3"))

    @staticmethod
    def count_params(sql: str) -> int:
        from warehouse.pgwire.catalog import _LITERAL

        nums = [int(x) for part in _LITERAL.split(sql)[::2] for x in re.findall(r"\$(\d+)", part)]
        return max(nums, default=0)

    # -- results --------------------------------------------------------------------------
    @staticmethod
    def row_description(result: Result, binary: list[bool]) -> bytes:
        fields = []
        for f, oid, b in zip(result.table.schema, result.oids, binary):
            size = {16: 1, 21: 2, 23: 4, 20: 8, 700: 4, 701: 8, 1082: 4, 1114: 8}.get(oid, -1)
            fields.append(cstr(f.name) + struct.pack("!ihihih", 0, 0, oid, size, -1, int(b)))
        return msg(b"T", _I16.pack(len(fields)) + b"".join(fields))

    def send_rows(self, result: Result, limit: int | None, binary: list[bool], offset: int = 0) -> int:
        """Send rows from ``offset`` (at most ``limit``), then the completion; the new offset."""
        table = result.table
        if table is None:
            self.send(msg(b"C", cstr(result.tag)))
            return 0
        end = table.num_rows if limit is None else min(table.num_rows, offset + limit)
        if result.copy is not None:
            self.send_copy(result)
            return table.num_rows
        for start in range(offset, end, BATCH):
            self.send(encode_rows(table.slice(start, min(BATCH, end - start)), result.oids, binary))
        if end < table.num_rows:
            self.send(msg(b"s"))
        else:
            tag = result.tag if not result.tag.startswith("SELECT") else f"SELECT {table.num_rows}"
            self.send(msg(b"C", cstr(tag)))
        return end

    def send_copy(self, result: Result) -> None:
        table, opts = result.table, result.copy
        n = table.num_columns
        self.send(msg(b"H", b"\x00" + _I16.pack(n) + _I16.pack(0) * n))
        delim = opts["delimiter"]
        if opts["csv"]:

            def field(v):
                if v is None:
                    return ""
                if v == "" or any(c in v for c in (delim, '"', "\n", "\r")):
                    return '"' + v.replace('"', '""') + '"'
                return v
        else:

            def field(v):
                if v is None:
                    return "\\N"
                return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

        if opts["header"]:
            self.send(msg(b"d", (delim.join(field(c) for c in table.column_names) + "\n").encode()))
        for start in range(0, table.num_rows, BATCH):
            cols = text_columns(table.slice(start, BATCH), result.oids)
            lines = "".join(delim.join(map(field, row)) + "\n" for row in zip(*cols))
            self.send(msg(b"d", lines.encode()))
        self.send(msg(b"c"))
        self.send(msg(b"C", cstr(result.tag)))


class PgServer(socketserver.ThreadingTCPServer):
    """A threaded PostgreSQL-protocol server; ``new_session`` opens a client's session."""

    request_queue_size = 256  # listen backlog: bursts of clients queue instead of timing out
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        new_session: Callable[[str, str, int], Session],
        auth: dict[str, str] | None,
        idle_timeout: float | None,
    ):
        self.new_session, self.auth, self.idle_timeout = new_session, auth, idle_timeout
        self.sessions: dict[int, tuple[int, Session]] = {}
        self._pid, self._pid_lock = 1000, threading.Lock()
        super().__init__(address, Handler)

    def next_pid(self) -> int:
        with self._pid_lock:
            self._pid += 1
            return self._pid
