"""Classes 1 and 2 of issue 12: every SQL surface is read-only by construction.

Each reproduction of the hostile run is replayed against a small real warehouse and its
serving snapshot: through ``tdw sql`` (the real CLI, a child process), through the guard
the report uses, and through ``tdw serve`` with a real PostgreSQL client. Nothing may be
written, no file outside the warehouse read, and no session may change the database's
global settings for the others.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ingest.errors import TdwError
from tests.conftest import sampled
from warehouse import sqlguard
from warehouse.snapshot import connect as snapshot_connect
from warehouse.snapshot import snapshot_path

HOSTILE = [
    "EXPLAIN ANALYZE COPY (SELECT 'gone' AS x) TO '{wh}'",
    "EXPLAIN ANALYZE COPY (SELECT 'gone' AS x) TO '{snap}'",
    "EXPLAIN ANALYZE COPY (SELECT 'gone' AS x) TO '{outside}'",
    "EXPLAIN ANALYZE SET memory_limit='1KB'",
    "EXPLAIN ANALYZE SET threads=1",
    "EXPLAIN ANALYZE LOAD json",
    "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1",
    "EXPLAIN (ANALYZE) CREATE TEMP TABLE t AS SELECT 1",
    "explain   analyse ATTACH '{outside}' AS other",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SET memory_limit='1KB'",
    "SET threads=1",
    "LOAD json",
    "CREATE TEMP TABLE t AS SELECT 1",
    "ATTACH '{outside}' AS other",
    "COPY (SELECT 1) TO '{outside}'",
    "INSTALL httpfs",
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def warehouse(tmp_path) -> Path:
    wh = tmp_path / "warehouse.duckdb"
    for path in (wh, snapshot_path(wh)):
        con = duckdb.connect(str(path))
        con.execute("CREATE SCHEMA marts; CREATE TABLE marts.fct_msd AS SELECT 'm' AS model_id, 1 AS step, 0.5 AS msd")
        if path == wh:
            con.execute("CREATE SCHEMA raw; CREATE TABLE raw.ingest_runs AS SELECT 'r' AS run_id")
        con.close()
    return wh


def _fill(q: str, wh: Path) -> str:
    return q.format(wh=wh, snap=snapshot_path(wh), outside=wh.parent / "outside.csv")


@pytest.mark.parametrize("q", sampled(HOSTILE, every=4))  # two child processes a case
def test_tdw_sql_refuses_and_writes_nothing(warehouse, q):
    before = {p: _digest(p) for p in (warehouse, snapshot_path(warehouse))}
    for working in ([], ["--working"]):
        out = subprocess.run(
            [sys.executable, "-m", "tdw", "sql", _fill(q, warehouse), "--warehouse", str(warehouse), *working],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert out.returncode == 1, out.stdout + out.stderr
        assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert {p: _digest(p) for p in before} == before
    assert not (warehouse.parent / "outside.csv").exists()


@pytest.mark.parametrize("q", HOSTILE)
def test_the_connection_itself_refuses_what_the_allow_list_would_miss(warehouse, q):
    """No statement check here: DuckDB itself must refuse (read-only, no external access,
    locked settings), so a gap in the allow-list cannot write or reconfigure anything."""
    for working in (False, True):
        con = snapshot_connect(warehouse, working=working)
        try:
            try:
                sqlguard.run(con, _fill(q, warehouse), timeout=30)
            except TdwError:
                pass
            assert con.execute(
                "SELECT current_setting('memory_limit') <> '1.0 KiB', current_setting('enable_external_access')"
            ).fetchone() == (True, False)
            assert con.execute("SELECT count(*) FROM marts.fct_msd").fetchone()[0] == 1
        finally:
            con.close()
    assert not (warehouse.parent / "outside.csv").exists()
    assert (
        duckdb.connect(str(warehouse), read_only=True).execute("SELECT count(*) FROM marts.fct_msd").fetchone()[0] == 1
    )


def test_explain_analyze_is_classified_as_what_it_wraps():
    assert sqlguard.statement_kinds("EXPLAIN ANALYZE COPY (SELECT 1) TO 'x'") == ["COPY"]
    assert sqlguard.statement_kinds("explain analyze set threads=1") == ["SET"]
    assert sqlguard.statement_kinds("EXPLAIN ANALYZE SELECT 1") == ["EXPLAIN"]
    assert sqlguard.statement_kinds("EXPLAIN SELECT 1; SELECT 2") == ["EXPLAIN", "SELECT"]


@pytest.mark.parametrize("t", [float("nan"), float("inf"), 0, -1, 1e12])
def test_timeouts_must_be_finite_and_positive(t):
    with pytest.raises(TdwError, match="timeout"):
        sqlguard.check_timeout(t)


def test_sql_timeout_nan_is_refused(warehouse):
    out = subprocess.run(
        [sys.executable, "-m", "tdw", "sql", "select 1", "--timeout", "nan", "--warehouse", str(warehouse)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "timeout" in out.stderr and "Traceback" not in out.stderr
