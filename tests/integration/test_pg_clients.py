"""`tdw serve` against what real PostgreSQL clients send: psycopg 3 (bound, prepared and
binary parameters, server-side cursors, COPY, cancel, SQLSTATEs), psycopg2, psql's catalog
commands, SQLAlchemy's inspector and pandas over ``postgresql+psycopg``, and pgjdbc (the
driver of DBeaver, Metabase and Tableau) when a JDK and Debian's ``libpostgresql-jdbc-java``
are installed.

A small snapshot with a declared primary key and dbt-style column comments is built here
(seconds, no training), served by the real CLI in a child process; answers are compared
with DuckDB run directly on the same file.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from warehouse.serve_process import start_serve
from warehouse.snapshot import snapshot_path, sqlalchemy_uri

psycopg = pytest.importorskip("psycopg")
PSQL = shutil.which("psql")
N = 5000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    wh = tmp_path_factory.mktemp("pgclients") / "warehouse.duckdb"
    con = duckdb.connect(str(snapshot_path(wh)))
    con.execute(f"""
        CREATE SCHEMA marts;
        CREATE TABLE marts.fct_msd (model_id VARCHAR, tensor_name VARCHAR, step BIGINT, msd DOUBLE,
                                    n INTEGER, ok BOOLEAN, ts TIMESTAMP);
        INSERT INTO marts.fct_msd SELECT 'toy/neox-2l', 't' || (range % 3), range, range / 7.0, range::INT,
               range % 2 = 0, TIMESTAMP '2026-01-01' + INTERVAL (range) MINUTE FROM range({N});
        COMMENT ON COLUMN marts.fct_msd.msd IS 'mean squared displacement';
        COMMENT ON TABLE marts.fct_msd IS 'one row per model, tensor and step';
        CREATE TABLE marts.keyed (k INTEGER PRIMARY KEY, v VARCHAR);
        INSERT INTO marts.keyed VALUES (1, '5'), (2, '2026-12-05');""")
    con.close()
    proc, port = start_serve([sys.executable, "-m", "tdw"], wh, "--timeout", "3")
    yield wh, port
    proc.terminate()
    proc.wait(timeout=10)


def direct(wh, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(snapshot_path(wh)), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def connect(port: int, **kw):
    kw = {"host": "127.0.0.1", "port": port, "user": "analyst", "dbname": "tdw", "autocommit": True, **kw}
    return psycopg.connect(**kw)


def test_bound_parameters_are_bound_as_sent(server):
    wh, port = server
    with connect(port) as con:
        got = con.execute(
            "select step, msd from marts.fct_msd where model_id = %s and step < %s order by step", ["toy/neox-2l", 5]
        ).fetchall()
        # a string that looks like a date or a number stays a string
        assert con.execute("select %s as a, %s as b", ["5", "2026-12-05"]).fetchone() == ("5", "2026-12-05")
        assert con.execute("select k from marts.keyed where v = %s", ["2026-12-05"]).fetchall() == [(2,)]
        for v in ("5", "6"):  # server-side prepared statement, executed twice
            assert con.execute("select k from marts.keyed where v = %s", [v], prepare=True).fetchall() == (
                [(1,)] if v == "5" else []
            )
        assert con.execute("select %b::int + 1, %b * 2", [41, 1.25]).fetchone() == (42, 2.5)
        row = (
            con.cursor(binary=True)
            .execute("select 1::int, 2.5::double, true, 'x', date '2026-01-02', timestamp '2026-01-01 00:00:01'")
            .fetchone()
        )
    assert row[:4] == (1, 2.5, True, "x") and str(row[4]) == "2026-01-02" and str(row[5]) == "2026-01-01 00:00:01"
    assert got == direct(wh, "select step, msd from marts.fct_msd where step < 5 order by step")


@pytest.mark.parametrize(
    "sql, state",
    [
        ("insert into marts.keyed values (3, 'x')", "25006"),
        ("drop table marts.keyed", "25006"),
        ("copy marts.keyed to '/tmp/tdw-pg-clients.csv'", "25006"),
        ("selec 1", "42601"),
        ("select * from marts.nope", "42P01"),
        ("select nope from marts.keyed", "42703"),
        ("select count(*) from range(1000000000000) a, range(10) b", "57014"),
    ],
)
def test_errors_carry_a_sqlstate_and_keep_the_session(server, sql, state):
    _, port = server
    with connect(port) as con:
        with pytest.raises(psycopg.Error) as err:
            con.execute(sql)
        assert err.value.sqlstate == state
        assert con.execute("select count(*) from marts.keyed").fetchone() == (2,)
    assert not os.path.exists("/tmp/tdw-pg-clients.csv")


def test_a_cancel_request_interrupts_the_running_statement(server):
    _, port = server
    with connect(port) as con:
        threading.Timer(0.3, con.cancel).start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            con.execute("select count(*) from range(1000000000000) a, range(10) b")
        assert time.monotonic() - t0 < 2.5  # well before the 3 s timeout
        assert con.execute("select 1").fetchone() == (1,)


def test_what_clients_send_on_connect(server):
    _, port = server
    with connect(port) as con:
        assert con.execute("show time zone").fetchone() == ("UTC",)
        assert con.execute("show server_version").fetchone()[0].startswith("15")
        assert con.execute("select current_setting('server_version_num')").fetchone() == ("150000",)
        pid, db, version = con.execute("select pg_backend_pid(), current_database(), version()").fetchone()
        assert pid == con.info.backend_pid and db == "tdw" and version.startswith("PostgreSQL 15")
        for sql in (
            "SAVEPOINT a",
            "RELEASE a",
            "ROLLBACK TO a",
            "DISCARD ALL",
            "LISTEN x",
            "UNLISTEN *",
            "SET application_name = 'x'",
            "BEGIN",
            "COMMIT",
        ):
            con.execute(sql)


def test_server_side_cursors_page_through_the_result_once(server):
    wh, port = server
    with connect(port, autocommit=False) as con:
        cur = con.cursor("paged")
        cur.itersize = 700
        cur.execute("select step from marts.fct_msd order by step")
        assert [r[0] for r in cur] == list(range(N))


def test_copy_to_stdout_csv_and_text(server):
    wh, port = server
    with connect(port) as con:
        with con.cursor().copy(
            "COPY (select k, v, null as z from marts.keyed order by k) TO STDOUT WITH (FORMAT csv, HEADER)"
        ) as copy:
            csv = b"".join(bytes(b) for b in copy).decode()
        with con.cursor().copy("COPY (select k, v, null as z from marts.keyed order by k) TO STDOUT") as copy:
            text = b"".join(bytes(b) for b in copy).decode()
    assert csv == "k,v,z\n1,5,\n2,2026-12-05,\n"
    assert text == "1\t5\t\\N\n2\t2026-12-05\t\\N\n"


def test_psycopg2(server):
    psycopg2 = pytest.importorskip("psycopg2")
    _, port = server
    con = psycopg2.connect(host="127.0.0.1", port=port, user="analyst", dbname="tdw")
    try:
        cur = con.cursor()
        cur.execute("select k from marts.keyed where v = %s", ("5",))
        assert cur.fetchall() == [(1,)]
        cur.execute("select count(*) from marts.fct_msd where step >= %(s)s", {"s": N - 10})
        assert cur.fetchone() == (10,)
    finally:
        con.close()


def psql(port: int, command: str, dbname: str = "tdw") -> str:
    if PSQL is None:
        pytest.skip("psql is not installed (apt-get install postgresql-client)")
    out = subprocess.run(
        [PSQL, "-h", "127.0.0.1", "-p", str(port), "-U", "analyst", "-d", dbname, "-X", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )
    assert out.returncode == 0 and "ERROR" not in out.stderr, out.stderr
    return out.stdout


def test_psql_catalog_commands(server, tmp_path):
    _, port = server
    assert "marts" in psql(port, r"\dn")
    tables = psql(port, r"\dt marts.*")
    assert "fct_msd" in tables and "keyed" in tables
    d = psql(port, r"\d+ marts.fct_msd")
    for col, typ in (
        ("msd", "double precision"),
        ("step", "bigint"),
        ("n", "integer"),
        ("ok", "boolean"),
        ("ts", "timestamp without time zone"),
        ("model_id", "character varying"),
    ):
        assert any(
            line.split("|")[0].strip() == col and line.split("|")[1].strip() == typ
            for line in d.splitlines()
            if "|" in line
        ), (col, typ, d)
    assert "mean squared displacement" in d
    assert "PRIMARY KEY" in psql(port, r"\d marts.keyed")
    out = tmp_path / "keyed.csv"
    psql(port, rf"\copy (select * from marts.keyed order by k) to '{out}' csv header")
    assert out.read_text() == "k,v\n1,5\n2,2026-12-05\n"


def test_pg_database_names_the_database_the_client_connected_to(server):
    _, port = server
    for db in ("tdw", "research's"):
        with connect(port, dbname=db) as con:
            assert con.execute("select datname, current_database() from pg_catalog.pg_database").fetchall() == [
                (db, db)
            ]
    rows = [ln.split("|") for ln in psql(port, r"\l", dbname="research").splitlines() if "|" in ln]
    assert [r[0].strip() for r in rows[1:]] == ["research"] and rows[1][2].strip() == "UTF8"


@pytest.mark.parametrize("dialect", ["postgresql+psycopg", "postgresql+psycopg2", "duckdb"])
def test_sqlalchemy_inspect_and_pandas(server, dialect):
    """The three SQLAlchemy paths a notebook or Superset takes: psycopg 3 and psycopg2 to
    `tdw serve`, and duckdb-engine on the snapshot (the URI `tdw publish` prints), which needs
    the pinned SQLAlchemy 2.0.44 (2.0.45+ reflection queries pg_collation, which DuckDB lacks)."""
    sa = pytest.importorskip("sqlalchemy")
    pd = pytest.importorskip("pandas")
    wh, port = server
    pg = dialect != "duckdb"
    uri = f"{dialect}://analyst@127.0.0.1:{port}/tdw" if pg else sqlalchemy_uri(wh)
    engine = sa.create_engine(uri)
    try:
        insp = sa.inspect(engine)
        assert set(insp.get_table_names(schema="marts")) == {"fct_msd", "keyed"}
        cols = {c["name"]: c for c in insp.get_columns("fct_msd", schema="marts")}
        assert {k: c["type"].python_type for k, c in cols.items()} == {
            "model_id": str,
            "tensor_name": str,
            "step": int,
            "msd": float,
            "n": int,
            "ok": bool,
            "ts": datetime.datetime,
        }
        assert isinstance(cols["step"]["type"], sa.BigInteger) and not isinstance(cols["n"]["type"], sa.BigInteger)
        assert cols["msd"]["comment"] == "mean squared displacement"
        if pg:  # PostgreSQL's own type names, and the primary key (duckdb-engine reflects none)
            assert "marts" in insp.get_schema_names()
            assert type(cols["msd"]["type"]).__name__ == "DOUBLE_PRECISION"
            assert insp.get_pk_constraint("keyed", schema="marts")["constrained_columns"] == ["k"]
        df = pd.read_sql_table("fct_msd", engine, schema="marts")
        assert len(df) == N and df["msd"].dtype == "float64" and df["ts"].dtype.kind == "M"
        assert df.sort_values("step")["msd"].tolist() == [s / 7.0 for s in range(N)]
        got = pd.read_sql(sa.text("select k from marts.keyed where v = :v"), engine, params={"v": "5"})
        assert got["k"].tolist() == [1]
    finally:
        engine.dispose()  # duckdb-engine's pooled connection would keep the file open in this process


JAVA = shutil.which("java")
PGJDBC = "/usr/share/java/postgresql.jar"  # Debian's libpostgresql-jdbc-java


def test_pgjdbc_does_what_dbeaver_does_on_connect(server):
    if JAVA is None or not os.path.exists(PGJDBC):
        pytest.skip("a JDK and pgjdbc are needed (apt-get install default-jdk-headless libpostgresql-jdbc-java)")
    _, port = server
    src = os.path.join(os.path.dirname(__file__), "clients", "JdbcCheck.java")
    out = subprocess.run([JAVA, "-cp", PGJDBC, src, str(port)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "schema marts" in lines
    assert "table fct_msd TABLE one row per model, tensor and step" in lines
    assert [ln for ln in lines if ln.startswith("column ")] == [
        "column model_id varchar 12 null",
        "column tensor_name varchar 12 null",
        "column step int8 -5 null",
        "column msd float8 8 mean squared displacement",
        "column n int4 4 null",
        "column ok bool -7 null",
        "column ts timestamp 93 null",
    ]
    assert "pk k 1" in lines
    assert int(next(ln for ln in lines if ln.startswith("typeinfo")).split()[1]) > 10
    assert "prepared 5 1" in lines and "prepared 2026-12-05 2" in lines
    assert f"fetched {N} {N * (N - 1) // 2}" in lines  # setFetchSize pages through the result once


def test_node_postgres(server):
    node = shutil.which("node")
    root = (
        subprocess.run(["npm", "root", "-g"], capture_output=True, text=True).stdout.strip()
        if shutil.which("npm")
        else ""
    )
    if node is None or not os.path.isdir(os.path.join(root, "pg")):
        pytest.skip("node and the npm package pg are needed (npm install -g pg@8.16.3)")
    _, port = server
    src = os.path.join(os.path.dirname(__file__), "clients", "node_pg_check.js")
    out = subprocess.run(
        [node, src, str(port)], capture_output=True, text=True, timeout=60, env={**os.environ, "NODE_PATH": root}
    )
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {
        "bound": [{"k": 2}],
        "echo": [{"a": "5", "b": 42}],
        "prepared": [[{"k": 1}], []],
        "write": "25006",
        "after": [{"n": 2}],
    }


def test_pgcli_starts_and_completes(server):
    """What pgcli runs at start to build its completions (schemas, tables, columns, views,
    types, functions, foreign keys, search path), then a query."""
    pgexecute = pytest.importorskip("pgcli.pgexecute", reason="pgcli is a test dependency")
    _, port = server
    e = pgexecute.PGExecute("tdw", "analyst", None, "127.0.0.1", port, None)
    try:
        assert "marts" in list(e.schemata())
        assert ("marts", "fct_msd") in [t[:2] for t in e.tables()]
        cols = {c[2]: c[3] for c in e.table_columns() if c[1] == "fct_msd"}
        assert cols["msd"] == "double precision" and cols["step"] == "bigint"
        for meta in (e.views, e.datatypes, e.functions, e.foreignkeys, e.search_path):
            list(meta())
        title, cur, headers, *_ = next(iter(e.run("select k, v from marts.keyed order by k")))
        assert headers == ["k", "v"] and list(cur) == [(1, "5"), (2, "2026-12-05")]
    finally:
        e.conn.close()
