"""SIGKILL an ingest at each fail point; the warehouse keeps every earlier job whole and no
partial rows, and `tdw ingest --resume` finishes exactly the missing jobs, ending with the
same tables as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write_checkpoints

pytestmark = pytest.mark.slow  # kills ingests at every fail point and resumes them

STEPS = [0, 1, 2, 4, 8, 16]
TDW = str(Path(sys.executable).parent / "tdw")
TABLES = ("weight_stats", "weight_hist", "weight_sample")


def tables(wh: Path) -> dict:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        out = {t: con.execute(f"select * from raw.{t} order by all").fetchall() for t in TABLES}
        out["jobs"] = con.execute("select step, status from raw.ingest_runs order by step").fetchall()
        return out
    finally:
        con.close()


def start(root: Path, wh: Path, fault: str | None, marker: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, TDW_FAULT_FILE=str(marker))
    env.pop("TDW_FAULT_AT", None)
    if fault:
        env["TDW_FAULT_AT"] = fault
    return subprocess.Popen(
        [TDW, "ingest", str(root), "--probes", "weights", "--warehouse", str(wh), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "fail point never reached"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt") / "run"
    write_checkpoints(root, STEPS, {"embed_out.weight": (64, 16), "gpt_neox.embed_in.weight": (64, 16)})
    wh = tmp_path_factory.mktemp("ref") / "w.duckdb"
    proc = start(root, wh, None, wh.with_suffix(".marker"))
    assert proc.wait() == 0
    return root, tables(wh)


@pytest.mark.parametrize(
    "point, step", [("load", 0), ("load", 4), ("probe", 2), ("transaction", 8), ("transaction", 0)]
)
def test_kill_then_resume(reference, tmp_path, point, step):
    root, ref = reference
    wh, marker = tmp_path / "w.duckdb", tmp_path / "marker"
    proc = start(root, wh, f"{point}:{step}", marker)
    wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    done = [s for s in STEPS if s < step]
    if wh.exists():
        after = tables(wh)
        assert after["jobs"] == [(s, "success") for s in done]
        for t in TABLES:  # exactly the earlier jobs' rows, nothing of the killed one
            assert after[t] == [r for r in ref[t] if r[1] in done]
    else:
        assert not done

    resumed = start(root, wh, None, marker, "--resume")
    out, err = resumed.communicate()
    assert resumed.returncode == 0, err
    assert f"{len(STEPS) - len(done)} jobs loaded, {len(done)} unchanged" in out
    final = tables(wh)
    assert {t: final[t] for t in TABLES} == {t: ref[t] for t in TABLES}
    assert final["jobs"] == ref["jobs"]


def test_second_writer_is_refused_or_waits(reference, tmp_path):
    root, ref = reference
    wh, marker = tmp_path / "w.duckdb", tmp_path / "marker"
    first = start(root, wh, "probe:2", marker)  # holds the write lock, paused at step 2
    wait_for(marker, first)
    refused = start(root, wh, None, tmp_path / "m2")
    out, err = refused.communicate()
    assert refused.returncode == 1
    assert err.startswith("error: warehouse") and f"locked by process {first.pid}" in err and "--wait" in err
    waiter = start(root, wh, None, tmp_path / "m3", "--wait", "300")
    line = waiter.stderr.readline()  # it reports the holder, then waits
    assert line.startswith("waiting up to 300 s") and f"process {first.pid}" in line
    first.send_signal(signal.SIGKILL)  # the holder dies mid-batch
    first.wait()
    out, err = waiter.communicate()
    assert waiter.returncode == 0, err
    assert "4 jobs loaded, 2 unchanged" in out  # steps 0 and 1 were committed by the first
    final = tables(wh)
    assert {t: final[t] for t in TABLES} == {t: ref[t] for t in TABLES}
