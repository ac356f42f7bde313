"""Class 2 of issue 12 (and the server half of class 7): one client cannot brick `tdw serve`.

The real server runs in a child process on a small real snapshot; psycopg is the client.
``EXPLAIN ANALYZE SET memory_limit='1KB'`` and ``SET threads`` from one session must leave
every later session working; a burst of simultaneous connections must all be served (the
listen backlog), and an idle client must be disconnected (the idle timeout).
"""

from __future__ import annotations

import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from warehouse.serve_process import start_serve
from warehouse.snapshot import snapshot_path

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    wh = tmp_path_factory.mktemp("serve") / "warehouse.duckdb"
    con = duckdb.connect(str(snapshot_path(wh)))
    con.execute("CREATE SCHEMA marts; CREATE TABLE marts.fct_msd AS SELECT range AS step FROM range(100)")
    con.close()
    proc, port = start_serve([sys.executable, "-m", "tdw"], wh, "--timeout", "5", "--idle-timeout", "2")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def _count(port: int) -> int:
    with psycopg.connect(
        host="127.0.0.1", port=port, user="x", dbname="tdw", autocommit=True, connect_timeout=20
    ) as con:
        return con.execute("select count(*) from marts.fct_msd").fetchone()[0]


@pytest.mark.parametrize(
    "statement",
    [
        "EXPLAIN ANALYZE SET memory_limit='1KB'",
        "SET memory_limit='1KB'",
        "EXPLAIN ANALYZE SET threads=1",
        "SET threads=1",
        "RESET memory_limit",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/tdw-h12-x.csv'",
        "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1",
        "select * from read_text('/etc/passwd')",
    ],
)
def test_one_client_cannot_change_the_server_for_others(server, statement):
    with psycopg.connect(host="127.0.0.1", port=server, user="x", dbname="tdw", autocommit=True) as con:
        try:
            con.execute(statement)
        except psycopg.Error:
            pass
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] not in ("1.0 KiB", "1KB", "0 bytes")
    assert _count(server) == 100


def test_a_burst_of_connections_is_served(server):
    with ThreadPoolExecutor(max_workers=64) as pool:
        counts = list(pool.map(lambda _: _count(server), range(200)))
    assert counts == [100] * 200


def test_idle_clients_are_disconnected(server):
    s = socket.create_connection(("127.0.0.1", server), timeout=10)
    t0 = time.monotonic()
    assert s.recv(1) == b""  # the server closes the idle socket
    assert 1.5 < time.monotonic() - t0 < 8
    s.close()
    assert _count(server) == 100
