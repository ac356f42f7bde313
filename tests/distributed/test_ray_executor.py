"""The Ray executor on a real Ray cluster started here: a head that runs no tasks and two
worker nodes of one CPU each (separate raylets and worker processes).

- The warehouse it fills is identical, table by table and row by row, to the local
  executor's.
- SIGKILL of the worker process in the middle of a job: Ray retries the task, the ingest
  finishes, and no job's rows or manifest success appear twice.
- Progress is reported while the tasks run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ingest.probes import get_probes
from warehouse.pipeline import ingest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one Ray cluster per test run

TDW = str(Path(sys.executable).parent / "tdw")
REVISIONS = "step0,step256,step512,step1024"
JOBS = 4 * len(get_probes(None))  # four checkpoints, every default probe (llc is opt-in)
MODEL = "toy/neox-2l"


@pytest.fixture(scope="module")
def ray_cluster():
    from ray.cluster_utils import Cluster

    store = 80 * 2**20
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, "object_store_memory": store}
    )
    nodes = [cluster.add_node(num_cpus=1, object_store_memory=store) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster.address, nodes
    cluster.shutdown()


def raw_tables(wh: Path) -> dict[str, list]:
    """Every raw table's rows in a canonical order (the manifest: one row per job outcome)."""
    con = duckdb.connect(str(wh), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='raw' "
                "AND table_name <> 'ingest_runs' ORDER BY 1"
            ).fetchall()
        ]
        out = {n: con.execute(f'SELECT * FROM raw."{n}" ORDER BY ALL').fetchall() for n in names}
        out["jobs"] = con.execute(
            "SELECT step, probe, status, params_hash, content_hash, probe_version FROM raw.ingest_runs ORDER BY ALL"
        ).fetchall()
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def local_reference(toy_suite, tmp_path_factory):
    wh = tmp_path_factory.mktemp("local") / "w.duckdb"
    result = ingest(MODEL, revisions=REVISIONS, warehouse=wh, toy_root=toy_suite, progress=False)
    assert result.ok and len(result.done) == JOBS, result.summary()
    return raw_tables(wh)


def test_ray_matches_local_executor(ray_cluster, toy_suite, local_reference, tmp_path):
    address, _ = ray_cluster
    wh = tmp_path / "w.duckdb"
    result = ingest(
        MODEL,
        revisions=REVISIONS,
        warehouse=wh,
        toy_root=toy_suite,
        progress=False,
        executor="ray",
        ray_address=address,
    )
    assert result.ok and len(result.done) == JOBS, result.summary()
    assert len({node for node, _ in result.workers}) == 2  # both worker nodes ran jobs
    got = raw_tables(wh)
    assert got.keys() == local_reference.keys()
    for name, rows in local_reference.items():
        assert got[name] == rows, f"raw.{name} differs between the local and Ray executors"
    assert sum(1 for _ in (tmp_path / "lake").glob("*/*/*/*/_job.json")) == JOBS
    # a second run finds everything in place: nothing computed, nothing loaded twice
    again = ingest(
        MODEL,
        revisions=REVISIONS,
        warehouse=wh,
        toy_root=toy_suite,
        progress=False,
        executor="ray",
        ray_address=address,
    )
    assert len(again.skipped) == JOBS and not again.done, again.summary()
    assert raw_tables(wh) == got


def test_killed_worker_is_retried_without_duplicates(ray_cluster, toy_suite, local_reference, tmp_path):
    address, _ = ray_cluster
    wh, marker = tmp_path / "w.duckdb", tmp_path / "marker"
    env = dict(os.environ, TDW_FAULT_AT="probe:1024:300", TDW_FAULT_FILE=str(marker), TDW_FAULT_ONCE="1")
    proc = subprocess.Popen(
        [
            TDW,
            "ingest",
            MODEL,
            "--toy-root",
            str(toy_suite),
            "--revisions",
            REVISIONS,
            "--warehouse",
            str(wh),
            "--executor",
            "ray",
            "--ray-address",
            address,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no worker reached the fail point"
        time.sleep(0.05)
    time.sleep(0.1)
    point, step, pid = marker.read_text().split(":")
    assert (point, int(step)) == ("probe", 1024) and int(pid) != proc.pid  # a Ray worker, not the driver
    os.kill(int(pid), signal.SIGKILL)  # mid-job: computed, not written
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert f"{JOBS} jobs loaded" in out and "0 failed" in out, out
    assert "ingest toy/neox-2l" in err and f"{JOBS}/{JOBS}" in err  # the progress bar
    got = raw_tables(wh)
    for name, rows in local_reference.items():
        assert got[name] == rows, f"raw.{name}: duplicates or missing rows after the retry"
    con = duckdb.connect(str(wh), read_only=True)
    try:
        per_job = con.execute(
            "SELECT step, probe, count(*) FROM raw.ingest_runs WHERE status='success' GROUP BY ALL HAVING count(*) <> 1"
        ).fetchall()
    finally:
        con.close()
    assert per_job == []  # each job loaded once
    assert not list((tmp_path / "lake").glob("*/*/*/.tmp-*"))  # the killed attempt left nothing


def test_progress_lines_name_the_jobs(ray_cluster, toy_suite, tmp_path):
    address, _ = ray_cluster
    proc = subprocess.run(
        [
            TDW,
            "ingest",
            MODEL,
            "--toy-root",
            str(toy_suite),
            "--revisions",
            "step0,step32",
            "--probes",
            "weights",
            "--warehouse",
            str(tmp_path / "w.duckdb"),
            "--executor",
            "ray",
            "--ray-address",
            address,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 tasks on 2 CPUs" in proc.stderr and "step32 weights" in proc.stderr
    jobs = [json.loads(p.read_text()) for p in (tmp_path / "lake").glob("weights/*/*/*/_job.json")]
    assert sorted(j["step"] for j in jobs) == [0, 32] and {j["status"] for j in jobs} == {"success"}
