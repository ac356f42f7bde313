"""`tdw serve`: the snapshot over the PostgreSQL wire protocol, queried by real clients.

The server runs as the real CLI in a child process on a free loopback port; psycopg and the
``psql`` binary query it, and every answer is compared with the same query run directly on
the snapshot by DuckDB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from warehouse.serve_process import start_serve
from warehouse.snapshot import snapshot_path

psycopg = pytest.importorskip("psycopg", reason="psycopg is a test dependency (pip install -e .[test])")
PSQL = shutil.which("psql")
MSD_SQL = "select model_id, tensor_name, step, msd from marts.fct_msd order by 1, 2, 3"


@pytest.fixture(scope="module")
def server(built_warehouse):
    proc, port = start_serve([sys.executable, "-m", "tdw"], built_warehouse, "--timeout", "2")
    yield built_warehouse, port
    proc.terminate()
    proc.wait(timeout=10)


def direct(warehouse, sql: str) -> list[tuple]:
    con = duckdb.connect(str(snapshot_path(warehouse)), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def connect(port: int, user: str = "whoever"):
    return psycopg.connect(host="127.0.0.1", port=port, user=user, dbname="tdw", autocommit=True)


def test_psycopg_reads_the_marts(server):
    wh, port = server
    with connect(port) as con:
        rows = con.execute(MSD_SQL).fetchall()
        assert [r[0] for r in con.execute("select count(*) from fct_msd").fetchall()] == [len(rows)]
    expected = direct(wh, MSD_SQL)
    assert len(rows) == len(expected) > 0
    for got, want in zip(rows, expected):
        assert got[:3] == want[:3] and got[3] == pytest.approx(want[3], rel=1e-12)


def test_psql_client(server):
    if PSQL is None:
        pytest.skip("the psql client is not installed (apt-get install postgresql-client)")
    wh, port = server
    out = subprocess.run(
        [
            PSQL,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "analyst",
            "-d",
            "tdw",
            "-A",
            "-t",
            "-F",
            ",",
            "-c",
            "select model_id, count(*) from marts.dim_checkpoint group by 1 order by 1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )
    assert out.returncode == 0, out.stderr
    expected = direct(wh, "select model_id, count(*) from marts.dim_checkpoint group by 1 order by 1")
    assert out.stdout.strip().splitlines() == [f"{m},{n}" for m, n in expected]


@pytest.mark.parametrize(
    "statement",
    [
        "insert into marts.fct_msd (model_id) values ('x')",
        "drop table marts.fct_msd",
        "create table t as select 1",
        "copy (select 1) to '/tmp/tdw-serve-test.csv'",
        "attach '/tmp/x.duckdb'",
        "pragma version",
    ],
)
def test_writes_are_refused_and_the_session_goes_on(server, statement):
    wh, port = server
    n = direct(wh, "select count(*) from marts.fct_msd")[0][0]
    with connect(port) as con:
        with pytest.raises(psycopg.Error, match="read-only"):
            con.execute(statement)
        assert con.execute("select count(*) from marts.fct_msd").fetchone()[0] == n


def test_file_access_is_off(server):
    _, port = server
    with connect(port) as con, pytest.raises(psycopg.Error, match="(?i)disabled|permission"):
        con.execute("select * from read_csv('/etc/hostname')")


def test_malformed_and_runaway_queries_return_errors_and_the_server_keeps_serving(server):
    _, port = server
    with connect(port) as con:
        with pytest.raises(psycopg.Error, match="SQL error"):
            con.execute("selec model_id frm marts.fct_msd")
        with pytest.raises(psycopg.Error, match="timeout"):
            con.execute("select count(*) from range(1000000000000) a, range(10) b")
        assert con.execute("select 41 + 1").fetchone()[0] == 42
    with connect(port) as other:  # a fresh connection works too
        assert other.execute("select 1").fetchone()[0] == 1


def test_nulls_nested_and_decimal_values(server):
    _, port = server
    with connect(port) as con:
        row = con.execute(
            "select null as a, 1.5::decimal(5, 2) as d, [1.5, 2.0] as l, {'k': 1} as s, 'text' as t"
        ).fetchone()
    assert row[0] is None and str(row[1]) == "1.50" and row[4] == "text"
    assert [float(x) for x in row[2]] == [1.5, 2.0] and row[3].replace(" ", "") == '{"k":1}'


def test_a_new_snapshot_is_picked_up_by_new_sessions(server, tmp_path):
    wh, port = server
    with connect(port) as before:
        build_before = before.execute("select build_id from serving.snapshot").fetchone()[0]
        from warehouse.snapshot import publish

        info = publish(wh)
        # the open session keeps its snapshot; a new one sees the new build
        assert before.execute("select build_id from serving.snapshot").fetchone()[0] == build_before
    with connect(port) as after:
        assert after.execute("select build_id from serving.snapshot").fetchone()[0] == info.build_id


def test_remote_binding_needs_a_flag_and_a_password(built_warehouse):
    from ingest.errors import TdwError
    from warehouse.serve import ServeOptions, make_server

    with pytest.raises(TdwError, match="--allow-remote"):
        make_server(built_warehouse, ServeOptions(host="0.0.0.0", port=0))
    with pytest.raises(TdwError, match="password"):
        make_server(built_warehouse, ServeOptions(host="0.0.0.0", port=0, allow_remote=True))


def test_password_is_checked_when_set(built_warehouse):
    import threading

    from warehouse.serve import ServeOptions, make_server

    server = make_server(built_warehouse, ServeOptions(port=0, user="alice", password="s3cret"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="alice", password="s3cret", dbname="tdw") as con:
            assert con.execute("select 7").fetchone()[0] == 7
        with pytest.raises(psycopg.Error):
            psycopg.connect(
                host="127.0.0.1", port=port, user="alice", password="wrong", dbname="tdw", connect_timeout=10
            )
    finally:
        server.shutdown()
        server.server_close()


SQLALCHEMY_TYPES = {
    20: "BIGINT",
    23: "INTEGER",
    21: "SMALLINT",
    701: "DOUBLE_PRECISION",
    700: "REAL",
    16: "BOOLEAN",
    1043: "VARCHAR",
    25: "TEXT",
    1082: "DATE",
    1114: "TIMESTAMP",
    1184: "TIMESTAMP",
    1700: "NUMERIC",
    114: "JSON",
    17: "BYTEA",
    1186: "INTERVAL",
    2950: "UUID",
    1083: "TIME",
}


def test_catalog_tells_clients_the_marts_real_types_grain_and_descriptions(server):
    """SQLAlchemy's inspector (what Superset lists) over `postgresql+psycopg` agrees with
    DuckDB's own view of every mart: PostgreSQL types, the grain as primary key, and dbt's
    column descriptions as comments."""
    sa = pytest.importorskip("sqlalchemy")
    from warehouse.pgwire.catalog import mart_grains
    from warehouse.pgwire.types import ARRAY_OF, duckdb_oid

    wh, port = server
    engine = sa.create_engine(f"postgresql+psycopg://analyst@127.0.0.1:{port}/tdw")
    try:
        insp = sa.inspect(engine)
        tables = set(insp.get_table_names(schema="marts"))
        assert tables == {
            t for (t,) in direct(wh, "select table_name from duckdb_tables() where schema_name = 'marts'")
        }
        grains = mart_grains()
        for table in sorted(tables):
            cols = insp.get_columns(table, schema="marts")
            want = direct(
                wh,
                "select column_name, data_type, comment from duckdb_columns() "
                f"where schema_name = 'marts' and table_name = '{table}' order by column_index",
            )
            assert [c["name"] for c in cols] == [w[0] for w in want]
            for c, (_, dtype, comment) in zip(cols, want):
                oid = duckdb_oid(dtype)
                expected = "ARRAY" if oid in ARRAY_OF else SQLALCHEMY_TYPES[oid]
                assert type(c["type"]).__name__ == expected, (table, c["name"], dtype, c["type"])
                assert c.get("comment") == (comment or None)  # an empty description is none
            if table in grains:
                assert insp.get_pk_constraint(table, schema="marts")["constrained_columns"] == grains[table]
    finally:
        engine.dispose()


def test_psql_describes_a_mart(server):
    if PSQL is None:
        pytest.skip("the psql client is not installed (apt-get install postgresql-client)")
    wh, port = server
    table, n = direct(
        wh,
        "select table_name, count(comment) from duckdb_columns() where schema_name = 'marts' "
        "group by 1 order by 2 desc, 1 limit 1",
    )[0]
    out = subprocess.run(
        [PSQL, "-h", "127.0.0.1", "-p", str(port), "-U", "analyst", "-d", "tdw", "-X", "-c", rf"\d+ marts.{table}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "ERROR" not in out.stderr, out.stderr
    comments = direct(
        wh,
        "select comment from duckdb_columns() where schema_name = 'marts' "
        f"and table_name = '{table}' and comment is not null",
    )
    assert n > 0 and all(c.split("\n")[0][:30] in out.stdout for (c,) in comments)
    from warehouse.pgwire.catalog import mart_grains

    assert ("PRIMARY KEY" in out.stdout) == (table in mart_grains())
