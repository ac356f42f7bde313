"""Readers never block writers and never see half a build.

A reader process opens the serving snapshot in a tight loop while this process ingests a
new model into (a copy of) the toy warehouse and rebuilds the marts. Every read must succeed and must see
one whole build: the row count of every table equals what ``serving.tables`` recorded at
publish time, and the models of ``dim_checkpoint``, ``fct_msd`` and ``fct_weight_density``
agree. Before the rebuild the reader sees the first build; afterwards, the second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import duckdb
import pytest

from ingest.errors import TdwError
from tests.conftest import TOY_MODELS, write_checkpoints
from warehouse import snapshot
from warehouse.dbt import build
from warehouse.pipeline import ingest
from warehouse.sql import query

SHAPES = {"embed_out.weight": (64, 16), "gpt_neox.embed_in.weight": (64, 16)}

READER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import duckdb
    snap, stop, log = Path(sys.argv[1]), Path(sys.argv[2]), open(sys.argv[3], "w")
    rec = {}
    # stop once told to AND a read has seen the build named in the stop file
    while not (stop.exists() and rec.get("build") == stop.read_text()):
        rec = {}
        try:
            con = duckdb.connect(str(snap), read_only=True)
            try:
                rec["build"] = con.execute("select build_id from serving.snapshot").fetchone()[0]
                rec["bad_counts"] = [t for t, n in con.execute("select * from serving.tables").fetchall()
                                     if con.execute(f"select count(*) from {t}").fetchone()[0] != n]
                rec["models"] = [sorted(r[0] for r in con.execute(
                    f"select distinct model_id from marts.{t}").fetchall())
                    for t in ("dim_checkpoint", "fct_msd", "fct_weight_density")]
            finally:
                con.close()
        except Exception as e:  # a failed read is what the test looks for
            rec["error"] = f"{type(e).__name__}: {e}"
        log.write(json.dumps(rec) + "\\n")
        log.flush()
""")


@pytest.fixture(scope="module")
def first_build(built_warehouse, tmp_path_factory):
    """A private copy of the session's built toy warehouse, its snapshot published."""
    tmp = tmp_path_factory.mktemp("snapshot")
    write_checkpoints(tmp / "beta", [0, 1, 2, 4, 8], SHAPES, seed=1)
    wh = tmp / "warehouse.duckdb"
    shutil.copyfile(built_warehouse, wh)
    snapshot.publish(wh)
    return tmp, wh


@pytest.mark.slow
def test_readers_see_whole_builds_while_ingest_and_build_run(first_build):
    tmp, wh = first_build
    snap = snapshot.snapshot_path(wh)
    first = duckdb.connect(str(snap), read_only=True)
    first_id = first.execute("select build_id from serving.snapshot").fetchone()[0]
    first.close()
    stop, log = tmp / "stop", tmp / "reads.jsonl"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(snap), str(stop), str(log)])
    try:
        # the writer is never blocked by the reader: ingest and build open the working file read-write
        assert ingest(str(tmp / "beta"), probes="weights", warehouse=wh, progress=False).ok
        build(wh, select="+marts.core +marts.weights")
        con = duckdb.connect(str(snap), read_only=True)
        second_id = con.execute("select build_id from serving.snapshot").fetchone()[0]
        con.close()
    finally:
        stop.write_text(locals().get("second_id", first_id))
        reader.wait(timeout=60)
    reads = [json.loads(line) for line in log.read_text().splitlines()]
    builds = [r.get("build") for r in reads]
    assert len(reads) > 20, "the reader barely ran"
    assert [r for r in reads if "error" in r] == []
    assert [r for r in reads if r["bad_counts"]] == []
    for r in reads:
        assert r["models"][0] == r["models"][1] == r["models"][2], r
    last_id = builds[-1]
    assert last_id == second_id
    expected = {first_id: sorted(TOY_MODELS), last_id: sorted([*TOY_MODELS, "local/beta"])}
    assert builds[0] == first_id and last_id != first_id
    assert set(builds) == {first_id, last_id}
    # reads switch once, from the first build to the second, and never go back
    switch = builds.index(last_id)
    assert builds[switch:] == [last_id] * (len(builds) - switch)
    for r in reads:
        assert r["models"][0] == expected[r["build"]]
    assert not list(tmp.glob(".*.tmp*")), "a temporary snapshot file was left behind"


def test_sql_reads_the_snapshot_and_working_on_request(first_build):
    _, wh = first_build
    assert "raw" not in set(query(wh, "select schema_name from information_schema.schemata")["schema_name"])
    runs = query(wh, "select count(*) as n from raw.ingest_runs", working=True)
    assert runs["n"][0] >= 1
    with pytest.raises(TdwError, match="SQL error"):
        query(wh, "select * from raw.ingest_runs")


def test_timeout_interrupts_a_runaway_query(first_build):
    _, wh = first_build
    with pytest.raises(TdwError, match="timeout"):
        query(wh, "select count(*) from range(1000000000000) a, range(10) b", timeout=0.3)
    assert query(wh, "select 1 as x", timeout=5)["x"][0] == 1


def test_publish_refuses_a_non_warehouse(tmp_path):
    bad = tmp_path / "not.duckdb"
    bad.write_text("hello, this is not a database")
    with pytest.raises(TdwError, match="not a DuckDB file"):
        snapshot.publish(bad)
    with pytest.raises(TdwError, match="no warehouse"):
        snapshot.publish(tmp_path / "missing.duckdb")
