"""The documented SQLAlchemy URI (duckdb-engine) reads the snapshot, read-only by the URI alone."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
import sqlalchemy
from sqlalchemy import create_engine, inspect, text

from warehouse.snapshot import snapshot_path, sqlalchemy_uri


@pytest.fixture(scope="module")
def engine(built_warehouse):
    eng = create_engine(sqlalchemy_uri(built_warehouse))
    yield eng
    eng.dispose()


def test_uri_points_at_the_snapshot_read_only(built_warehouse):
    uri = sqlalchemy_uri(built_warehouse)
    assert uri.startswith("duckdb:////") and uri.endswith(".serving.duckdb?access_mode=read_only")


def test_pandas_reads_a_mart_as_duckdb_does(built_warehouse, engine):
    sql = "select model_id, tensor_name, peak_step, peak_msd from marts.fct_bifurcation order by 1, 2"
    got = pd.read_sql(sql, engine)
    engine.dispose()  # DuckDB refuses a second connection to a file open with other settings
    con = duckdb.connect(str(snapshot_path(built_warehouse)), read_only=True)
    want = con.execute(sql).df()
    con.close()
    assert len(got) == len(want) > 0
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_inspector_lists_the_public_marts(engine):
    with engine.connect() as con:
        tables = set(inspect(con).get_table_names(schema="marts"))
    assert {"dim_checkpoint", "fct_weight_density", "fct_msd", "fct_bifurcation"} <= tables


def test_writes_fail(engine):
    with engine.connect() as con, pytest.raises(sqlalchemy.exc.DBAPIError, match="read-only"):
        con.execute(text("create table marts.scratch as select 1 as a"))
