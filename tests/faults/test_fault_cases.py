"""Fault injection: each bad checkpoint or environment gives a clear outcome (exit code,
one-line message, a failed job in the manifest where a job ran) and leaves the rest of
the warehouse as it was."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from tests.conftest import sampled, write_checkpoints
from warehouse.pipeline import ingest

TDW = str(Path(sys.executable).parent / "tdw")
SHAPES = {"embed_out.weight": (64, 16), "gpt_neox.embed_in.weight": (64, 16)}


def rows(wh: Path) -> dict:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return {
            t: con.execute(f"select * from raw.{t} order by all").fetchall()
            for t in ("weight_stats", "weight_hist", "weight_sample")
        }
    finally:
        con.close()


def runs(wh: Path) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute("select step, status, error from raw.ingest_runs order by ended_at").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """Three checkpoints ingested once for the module (an ingest costs seconds)."""
    base = tmp_path_factory.mktemp("fault-cases")
    root, wh = base / "run", base / "w.duckdb"
    write_checkpoints(root, [0, 1, 2], SHAPES)
    assert ingest(str(root), warehouse=wh, probes="weights", progress=False).ok
    return root, wh


@pytest.fixture
def setup(ingested, tmp_path):
    """A private copy of the ingested run and warehouse (same folder name: same model id)."""
    root, wh = tmp_path / "run", tmp_path / "w.duckdb"
    shutil.copytree(ingested[0], root)
    shutil.copy(ingested[1], wh)
    return root, wh


def corrupt_and_ingest(root: Path, wh: Path, step: int, corrupt) -> tuple[int, str, dict]:
    """Add checkpoint ``step``, corrupt it, ingest everything; (exit code, output, rows before)."""
    write_checkpoints(root, [step], SHAPES, seed=step)
    corrupt(root / f"step{step}")
    before = rows(wh)
    proc = subprocess.run(
        [TDW, "ingest", str(root), "--probes", "weights", "--warehouse", str(wh)], capture_output=True, text=True
    )
    return proc.returncode, proc.stdout + proc.stderr, before


def lying_header(folder: Path) -> None:
    """Rewrite the header so a tensor claims more bytes than the file holds."""
    path = folder / "model.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["embed_out.weight"]["shape"] = [640, 16]
    header["embed_out.weight"]["data_offsets"][1] += 9 * 64 * 16 * 4
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def mismatched_config(folder: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg["hidden_size"] = 32
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "name, corrupt, message",
    sampled(
        [
            (
                "truncated",
                lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-64]),
                "truncated checkpoint",
            ),
            ("lying header", lying_header, "truncated checkpoint"),
            (
                "not safetensors",
                lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 4096),
                "not a safetensors file",
            ),
            ("missing config", lambda f: (f / "config.json").unlink(), "missing config.json"),
            ("config mismatch", mismatched_config, "config.json does not match the weights"),
            ("no weights", lambda f: (f / "model.safetensors").unlink(), "no weight file"),
        ],
        every=2,
        unpack=True,
    ),
)
def test_bad_checkpoint_fails_its_job_only(setup, name, corrupt, message):
    root, wh = setup
    code, out, before = corrupt_and_ingest(root, wh, 4, corrupt)
    assert code == 1 and message in out and "Traceback" not in out, out
    assert rows(wh) == before  # nothing of step 4, nothing else changed
    last = runs(wh)[-1]
    assert last[:2] == (4, "failed") and message in last[2]


def test_nonfinite_weights_are_recorded_not_fatal(setup):
    root, wh = setup
    write_checkpoints(root, [4], SHAPES, seed=4)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(root / "step4" / "model.safetensors"))
    tensors["embed_out.weight"][0, :3] = float("nan")
    tensors["embed_out.weight"][1, 0] = float("inf")
    save_file(tensors, str(root / "step4" / "model.safetensors"))
    result = ingest(str(root), warehouse=wh, probes="weights", progress=False)
    assert result.ok
    con = duckdb.connect(str(wh), read_only=True)
    n_bad, mean = con.execute(
        "select n_nonfinite, mean from raw.weight_stats where step = 4 and tensor_name = 'lm_head.weight'"
    ).fetchone()
    con.close()
    x = tensors["embed_out.weight"].numpy()
    assert n_bad == 4 and mean == pytest.approx(float(x[np.isfinite(x)].astype(np.float64).mean()), rel=1e-9)


def test_duplicate_step_directories(setup):
    root, wh = setup
    shutil.copytree(root / "step2", root / "step002")
    proc = subprocess.run([TDW, "ingest", str(root), "--warehouse", str(wh)], capture_output=True, text=True)
    assert proc.returncode == 1 and "step 2 appears twice" in proc.stderr


def test_out_of_order_ingest_gives_the_same_tables(tmp_path):
    root = tmp_path / "run"
    write_checkpoints(root, [0, 1, 2, 4, 8], SHAPES)
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    ingest(str(root), warehouse=a, probes="weights", progress=False)
    for spec in ("step8", "step2,step4", "step0:step1"):
        ingest(str(root), revisions=spec, warehouse=b, probes="weights", progress=False)
    assert rows(a) == rows(b)


@pytest.mark.slow  # whole ingests in child processes (each imports torch and Great Expectations)
def test_disk_full_during_load_keeps_earlier_jobs(setup):
    root, wh = setup
    write_checkpoints(root, [4, 8], {"embed_out.weight": (4096, 16), "gpt_neox.embed_in.weight": (4096, 16)}, seed=9)
    before = rows(wh)
    limit = wh.stat().st_size + (64 << 10)

    def cap_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the cap fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [TDW, "ingest", str(root), "--probes", "weights", "--warehouse", str(wh)],
        capture_output=True,
        text=True,
        preexec_fn=cap_file_size,
    )
    assert proc.returncode == 1 and "error: writing step" in proc.stderr, proc.stdout + proc.stderr
    assert "earlier jobs are kept" in proc.stderr and "Traceback" not in proc.stderr
    assert rows(wh) == before
    done = ingest(str(root), warehouse=wh, probes="weights", progress=False)  # space back: resume
    assert done.ok and len(done.done) == 2
