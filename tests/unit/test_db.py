"""Idempotent, atomic job loads and the manifest, on in-memory DuckDB."""

import duckdb
import pandas as pd
import pytest

from ingest.errors import TdwError
from ingest.schema import TableSpec
from warehouse import db

SPEC = TableSpec(
    "t",
    (("model_id", "VARCHAR"), ("step", "BIGINT"), ("tensor_name", "VARCHAR"), ("v", "DOUBLE")),
    ("model_id", "step", "tensor_name"),
    ("tensor_name",),
)


def job(step=1, content="h1", version="1", params="p"):
    return {
        "model_id": "m",
        "step": step,
        "probe": "x",
        "probe_version": version,
        "params": {},
        "params_hash": params,
        "content_hash": content,
        "source": "local",
        "revision": f"step{step}",
        "code_version": "test",
        "started_at": pd.Timestamp.now(tz="UTC"),
    }


def frame(step, names, value):
    return pd.DataFrame({"model_id": "m", "step": step, "tensor_name": names, "v": value})


@pytest.fixture
def con():
    c = duckdb.connect()
    db.ensure_tables(c, [SPEC])
    return c


def rows(con):
    return con.execute("select * from raw.t order by all").fetchall()


def test_reload_replaces_the_job_slice(con):
    db.load_job(con, [SPEC], {"t": frame(1, ["a", "b"], 1.0)}, job())
    db.load_job(con, [SPEC], {"t": frame(2, ["a"], 5.0)}, job(2))
    first = rows(con)
    db.load_job(con, [SPEC], {"t": frame(1, ["a", "b"], 1.0)}, job())
    assert rows(con) == first
    db.load_job(con, [SPEC], {"t": frame(1, ["a"], 2.0)}, job())  # only tensor a's slice is replaced
    assert rows(con) == [("m", 1, "a", 2.0), ("m", 1, "b", 1.0), ("m", 2, "a", 5.0)]


def test_failed_load_leaves_nothing(con):
    db.load_job(con, [SPEC], {"t": frame(1, ["a"], 1.0)}, job())
    before = rows(con), con.execute("select count(*) from raw.ingest_runs").fetchone()
    bad = frame(1, ["a", "a"], 9.0)  # violates the natural key mid-transaction (gate skipped)
    with pytest.raises(duckdb.Error):
        db.load_job(con, [SPEC], {"t": bad}, job(), expectations={})
    assert (rows(con), con.execute("select count(*) from raw.ingest_runs").fetchone()) == before


def test_quality_gate_fails_the_job_before_the_transaction(con):
    from warehouse.quality import QualityError

    db.load_job(con, [SPEC], {"t": frame(1, ["a"], 1.0)}, job())
    before = rows(con), con.execute("select count(*) from raw.ingest_runs").fetchall()
    # no registered probe "x": the TableSpec's own expectations (key unique and not NULL)
    with pytest.raises(QualityError) as err:
        db.load_job(con, [SPEC], {"t": frame(1, ["a", "a"], 9.0)}, job())
    assert err.value.expectations == ["t: expect_compound_key_to_be_unique(model_id, step, tensor_name)"]
    with pytest.raises(QualityError, match=r"expect_columns_to_not_be_null\(tensor_name\)"):
        db.load_job(con, [SPEC], {"t": frame(1, ["a", None], 9.0)}, job())
    assert (rows(con), con.execute("select count(*) from raw.ingest_runs").fetchall()) == before
    db.record_failure(con, job(), err.value)  # the exception: its list is kept
    db.record_failure(con, job(2), "plain message")  # a string still works
    got = con.execute(
        "select step, error, failed_expectations from raw.ingest_runs where status = 'failed' order by step"
    ).fetchall()
    assert got[0][1] == str(err.value) and "\n" not in got[0][1]
    assert got[0][2] == '["t: expect_compound_key_to_be_unique(model_id, step, tensor_name)"]'
    assert got[1][1:] == ("plain message", None)


def test_already_done_tracks_content_version_and_params(con):
    assert not db.already_done(con, job())
    db.load_job(con, [SPEC], {"t": frame(1, ["a"], 1.0)}, job())
    assert db.already_done(con, job())
    assert not db.already_done(con, job(content="h2"))
    assert not db.already_done(con, job(version="2"))
    assert not db.already_done(con, job(params="q"))
    db.record_failure(con, job(), "boom")  # a later failure does not hide the last success
    assert db.already_done(con, job())
    status = con.execute("select status, error from raw.ingest_runs order by ended_at").fetchall()
    assert status == [("success", None), ("failed", "boom")]


def test_undeclared_table_is_refused(con):
    with pytest.raises(TdwError, match="undeclared"):
        db.load_job(con, [SPEC], {"nope": frame(1, ["a"], 1.0)}, job())


def test_not_a_duckdb_file(tmp_path):
    p = tmp_path / "notes.duckdb"
    p.write_text("hello, this is a text file and not a database")
    with pytest.raises(TdwError, match="not a DuckDB file"):
        db.connect(p)
    with pytest.raises(TdwError, match="directory"):
        db.connect(tmp_path)


BULKY = TableSpec(
    "h",
    (("model_id", "VARCHAR"), ("step", "BIGINT"), ("tensor_name", "VARCHAR"), ("vals", "FLOAT[]")),
    ("model_id", "step", "tensor_name"),
    ("tensor_name",),
    indexed=False,
)


def test_an_unindexed_table_loses_an_older_primary_key_and_keeps_its_rows_and_slices():
    """A table created with its key index by an older version is rebuilt without it, rows
    unchanged; reloads still replace their slices (no index to catch a repeat), and a list
    column arrives as the values it was given."""
    from dataclasses import replace

    import numpy as np

    c = duckdb.connect()
    db.ensure_tables(c, [replace(BULKY, indexed=True)])
    c.execute("insert into raw.h values ('m', 1, 'a', [1.5, 2.5])")
    db.ensure_tables(c, [BULKY])
    pk = "select count(*) from duckdb_constraints() where table_name = 'h' and constraint_type = 'PRIMARY KEY'"
    assert c.execute(pk).fetchone()[0] == 0
    assert c.execute("select * from raw.h").fetchall() == [("m", 1, "a", [1.5, 2.5])]
    vals = np.arange(5, dtype=np.float32)
    f = pd.DataFrame({"model_id": "m", "step": 1, "tensor_name": ["a", "b"], "vals": [vals, vals[:2]]})
    for _ in range(2):
        db.load_job(c, [BULKY], {"h": f}, job(), expectations={})
    assert c.execute("select tensor_name, vals from raw.h order by 1").fetchall() == [
        ("a", [0.0, 1.0, 2.0, 3.0, 4.0]),
        ("b", [0.0, 1.0]),
    ]
