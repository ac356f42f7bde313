"""The Parquet lake and the loader, without Ray: layout, round trip, exactly-once loading,
recovery of jobs an interrupted run left behind, and the executor's bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ingest.errors import TdwError
from tests.conftest import write_checkpoints
from warehouse import lake
from warehouse.pipeline import ingest

TDW = str(Path(sys.executable).parent / "tdw")
STEPS = [0, 1, 2, 4, 8]
SHAPES = {"embed_out.weight": (64, 16), "gpt_neox.embed_in.weight": (64, 16)}


def _job(model_id="EleutherAI/pythia-14m", step=3):
    return {
        "model_id": model_id,
        "step": step,
        "probe": "weights",
        "params_hash": "abc",
        "params": {"tensors": "unembed"},
        "probe_version": "1",
    }


def test_layout_is_hive_partitioned_and_model_ids_stay_one_component(tmp_path):
    d = lake.job_dir(tmp_path, "weights", "EleutherAI/pythia-14m", 3, "abc")
    assert d == tmp_path / "weights" / "model=EleutherAI%2Fpythia-14m" / "step=3" / "params=abc"
    evil = lake.job_dir(tmp_path, "weights", "../../../etc", 0, "abc").resolve()
    assert evil.is_relative_to(tmp_path.resolve())  # no way out of the lake


def test_round_trip_keeps_values_types_and_lists(tmp_path):
    frame = pd.DataFrame(
        {
            "model_id": ["EleutherAI/pythia-14m"] * 2,
            "step": [3, 3],
            "x": [0.1, np.nan],
            "n": pd.array([1, None], dtype="Int64"),
            "token_ids": [np.array([1, 2, 3], dtype=np.int32), np.array([4], dtype=np.int32)],
        }
    )
    path = lake.write_job(tmp_path, _job(), {"t": frame})
    meta, frames, error = lake.read_job(path)
    assert error is None and meta["status"] == "success" and meta["rows"] == {"t": 2}
    back = frames["t"]
    assert back[["model_id", "step", "x", "n"]].equals(frame[["model_id", "step", "x", "n"]])
    assert [list(v) for v in back["token_ids"]] == [[1, 2, 3], [4]]
    assert lake.complete_jobs(tmp_path) == [path]
    assert lake.complete_jobs(tmp_path, "other/model") == []


def test_rewrite_replaces_the_job_and_leaves_no_temporaries(tmp_path):
    first = lake.write_job(tmp_path, _job(), {"t": pd.DataFrame({"model_id": ["m"], "step": [3], "x": [1.0]})})
    (first.parent / ".tmp-params=abc-dead").mkdir()  # an attempt killed midway
    second = lake.write_job(tmp_path, _job(), None, error="boom")
    assert first == second and not (second / "t.parquet").exists()
    meta, frames, error = lake.read_job(second)
    assert frames is None and error == "boom" and meta["status"] == "failed"
    assert [p.name for p in second.parent.iterdir()] == ["params=abc"]


def test_truncated_lake_file_is_a_clean_error(tmp_path):
    path = lake.write_job(tmp_path, _job(), {"t": pd.DataFrame({"model_id": ["m"], "step": [3], "x": [1.0]})})
    data = (path / "t.parquet").read_bytes()
    (path / "t.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(TdwError, match="t is unreadable"):
        lake.read_job(path)


def test_unwritable_lake_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TdwError, match="not writable"):
        lake.check_writable(blocker / "lake")


def _tables(wh: Path) -> dict:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        out = {
            t: con.execute(f"SELECT * FROM raw.{t} ORDER BY ALL").fetchall()
            for t in ("weight_stats", "weight_hist", "weight_sample")
        }
        out["ok"] = con.execute(
            "SELECT step, count(*) FROM raw.ingest_runs WHERE status='success' GROUP BY step ORDER BY step"
        ).fetchall()
        return out
    finally:
        con.close()


@pytest.mark.slow  # ingests twice, through the lake and directly
def test_local_executor_through_the_lake_equals_direct_loading(tmp_path):
    root = tmp_path / "run"
    write_checkpoints(root, STEPS, SHAPES)
    direct = ingest(str(root), probes="weights", warehouse=tmp_path / "a.duckdb", progress=False)
    via = ingest(str(root), probes="weights", warehouse=tmp_path / "b.duckdb", progress=False, lake=tmp_path / "lake")
    assert direct.ok and via.ok and len(via.done) == len(STEPS)
    assert _tables(tmp_path / "a.duckdb") == _tables(tmp_path / "b.duckdb")
    again = ingest(str(root), probes="weights", warehouse=tmp_path / "b.duckdb", progress=False, lake=tmp_path / "lake")
    assert len(again.skipped) == len(STEPS) and again.recovered == 0


@pytest.mark.slow  # kills a process and resumes
def test_jobs_left_in_the_lake_by_a_killed_loader_are_loaded_once(tmp_path):
    """Kill the ingest inside the load transaction of step 4: its lake job is complete but
    not in DuckDB. The rerun loads it from the lake (no recompute) and finishes the rest."""
    root = tmp_path / "run"
    write_checkpoints(root, STEPS, SHAPES)
    ingest(str(root), probes="weights", warehouse=tmp_path / "ref.duckdb", progress=False)
    wh, marker, lk = tmp_path / "w.duckdb", tmp_path / "marker", tmp_path / "lake"
    env = dict(os.environ, TDW_FAULT_AT="transaction:4", TDW_FAULT_FILE=str(marker))
    cmd = [TDW, "ingest", str(root), "--probes", "weights", "--warehouse", str(wh), "--lake", str(lk)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(lake.complete_jobs(lk)) == 4  # steps 0, 1, 2 loaded; 4 only in the lake
    env.pop("TDW_FAULT_AT")
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 recovered from the lake" in rerun.stdout and "1 jobs loaded" in rerun.stdout, rerun.stdout
    assert _tables(wh) == _tables(tmp_path / "ref.duckdb")


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(
            ["--executor", "ray", "--ray-address", "127.0.0.1:9"],
            "Ray cluster at 127.0.0.1:9 does not answer",
            marks=pytest.mark.slow,  # starts a Ray client
        ),
        (["--executor", "ray", "--ray-address", "nonsense"], "is not host:port"),
        (["--lake", "{blocker}/lake"], "is not writable"),
        (["--device", "cuda"], "no CUDA GPU is available"),
    ],
)
def test_bad_executor_input_fails_before_any_job(tmp_path, args, message):
    root = tmp_path / "run"
    write_checkpoints(root, [0, 1], SHAPES)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    wh = tmp_path / "w.duckdb"
    args = [a.replace("{blocker}", str(blocker)) for a in args]
    proc = subprocess.run(
        [TDW, "ingest", str(root), "--probes", "weights,graph", "--warehouse", str(wh), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if args[0] == "--device":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not wh.exists()  # nothing started, nothing written


@pytest.mark.slow  # whole ingests in child processes (each imports torch and Great Expectations)
def test_load_lake_fills_another_warehouse_exactly_once(tmp_path):
    """Workers elsewhere filled a lake; `tdw load-lake` moves it into a warehouse that has
    never seen the jobs, and a second call finds them all present."""
    root = tmp_path / "run"
    write_checkpoints(root, STEPS, SHAPES)
    ingest(str(root), probes="weights", warehouse=tmp_path / "a.duckdb", progress=False, lake=tmp_path / "lake")
    cmd = [TDW, "load-lake", str(tmp_path / "lake"), "--warehouse", str(tmp_path / "c.duckdb")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert (
        first.returncode == 0 and f"{len(STEPS)} jobs loaded, 0 recorded as failed, 0 already present" in first.stdout
    ), first.stdout + first.stderr
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert f"0 jobs loaded, 0 recorded as failed, {len(STEPS)} already present" in second.stdout
    assert _tables(tmp_path / "c.duckdb") == _tables(tmp_path / "a.duckdb")
    missing = subprocess.run(
        [TDW, "load-lake", str(tmp_path / "nowhere"), "--warehouse", str(tmp_path / "d.duckdb")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: no lake at {tmp_path / 'nowhere'}"
