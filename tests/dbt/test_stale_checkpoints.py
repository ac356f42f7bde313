"""Stale checkpoints, the EleutherAI/pythia #205 pattern: step folders serving another
step's weights byte for byte. They are flagged in fct_data_quality (naming the other step)
and fail `tdw check` unless --stale-as-warnings; genuine steps are not flagged."""

from __future__ import annotations

import shutil
import subprocess
import sys

import duckdb
import pytest

from tests.faults.tinymodel import make_suite

pytestmark = pytest.mark.slow  # ingests and builds the marts with dbt in child processes

TDW = [sys.executable, "-c", "from tdw.cli import main; main()"]


def test_byte_identical_steps_are_flagged_and_fail_check(tmp_path):
    run = make_suite(tmp_path / "run", steps=range(6))
    for stale in (3, 4):  # steps 3 and 4 serve step 5's content
        shutil.rmtree(run / f"step{stale}")
        shutil.copytree(run / "step5", run / f"step{stale}")
    wh = tmp_path / "wh" / "w.duckdb"
    for args in (["ingest", str(run), "--probes", "weights"], ["build"]):
        proc = subprocess.run(TDW + args + ["--warehouse", str(wh)], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    con = duckdb.connect(str(wh), read_only=True)
    flags = con.execute(
        "SELECT step, issue FROM marts.fct_data_quality WHERE kind = 'identical_checkpoint' ORDER BY step"
    ).fetchall()
    other = con.execute("SELECT count(*) FROM marts.fct_data_quality WHERE kind <> 'identical_checkpoint'").fetchone()
    con.close()
    assert [s for s, _ in flags] == [3, 4, 5] and other == (0,)
    assert flags[0][1].startswith("weights byte-identical to step 4 (2 other step(s)")
    assert flags[2][1].startswith("weights byte-identical to step 3 (2 other step(s)")
    failed = subprocess.run(TDW + ["check", "--warehouse", str(wh)], capture_output=True, text=True, timeout=900)
    assert failed.returncode == 1 and "identical_checkpoint" in failed.stdout
    warned = subprocess.run(
        TDW + ["check", "--stale-as-warnings", "--warehouse", str(wh)], capture_output=True, text=True, timeout=900
    )
    assert warned.returncode == 0 and "identical_checkpoint" in warned.stdout, warned.stdout
