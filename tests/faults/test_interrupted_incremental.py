"""A SIGKILLed incremental build leaves the previous snapshot serving; the next one catches up.

Small synthetic checkpoints (weights only) are built, then more are ingested — one of them
in the middle of the series, so every later running sum of the MSD must be recomputed — and
`tdw build` is SIGKILLed (the CLI and its dbt child) after dbt finished n nodes, for a few
n spread over the build. Each time the snapshot readers see is byte for byte the previous
one. A build without faults then publishes tables equal to a full refresh of the same raw
rows (tests/dbt/test_incremental.py compares them), and ran only the models downstream of
the weights tables (warehouse.build_state: the state of the last successful build).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_checkpoints
from tests.dbt.test_incremental import SHAPES, assert_full_refresh_agrees
from tests.faults.test_kill_resume import wait_for
from warehouse.paths import DBT_WORKDIR
from warehouse.pipeline import ingest
from warehouse.snapshot import snapshot_path

TDW = str(Path(sys.executable).parent / "tdw")
PARAMS = {"weights": {"tensors": "unembed,embed", "msd_sample": 256}}


def tdw_build(wh: Path, fault: str | None = None, marker: Path | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("TDW_FAULT_AT", None)
    if fault:
        env.update(TDW_FAULT_AT=fault, TDW_FAULT_FILE=str(marker))
    return subprocess.Popen(
        [TDW, "build", "--warehouse", str(wh), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def n_nodes(wh: Path) -> int:
    """Nodes (models and tests) the last dbt invocation ran."""
    return len(json.loads((wh.parent / DBT_WORKDIR / "target" / "run_results.json").read_text())["results"])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_killed_incremental_build_keeps_serving_and_the_next_catches_up(tmp_path):
    root = tmp_path / "run"
    write_checkpoints(root, [0, 1, 2, 4, 8, 16], SHAPES, seed=5)
    wh = tmp_path / "w.duckdb"
    ingest(str(root), revisions="step0,step2,step8", probes="weights", warehouse=wh, progress=False, params=PARAMS)
    first = tdw_build(wh)
    assert first.wait() == 0, first.communicate()
    before = digest(snapshot_path(wh))
    n_first = n_nodes(wh)

    ingest(str(root), revisions="step4,step16", probes="weights", warehouse=wh, progress=False, params=PARAMS)
    for n in (5, 25, 45):  # early, middle and late in the build (~50 nodes: the weights models and their tests)
        marker = tmp_path / f"dbt-{n}.marker"
        proc = tdw_build(wh, f"dbt:{n}", marker)
        wait_for(marker, proc, timeout=600)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert digest(snapshot_path(wh)) == before, n
    rerun = tdw_build(wh)
    out, err = rerun.communicate()
    assert rerun.returncode == 0, out + err
    assert digest(snapshot_path(wh)) != before
    assert n_nodes(wh) < n_first / 2  # only the weights models and the manifest's readers ran
    assert_full_refresh_agrees(wh, tmp_path, nonempty=("marts.fct_msd", "marts.fct_weight_density"))
