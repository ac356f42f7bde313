"""Displacement probe against numpy norms, on checkpoints written as safetensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from ingest.probes.displacement import DisplacementProbe, displacement, previous_step
from ingest.sources import LocalSource


def test_displacement_matches_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 7)).astype(np.float32)
    b = a + 0.1 * rng.standard_normal(a.shape).astype(np.float32)
    d = displacement(b, a, chunk=128)
    ref = np.linalg.norm(b.astype(np.float64) - a)
    assert d["disp"] == pytest.approx(ref, rel=1e-12)
    assert d["rel_disp"] == pytest.approx(ref / np.linalg.norm(a.astype(np.float64)), rel=1e-12)
    assert d["msd_step"] == pytest.approx(ref**2 / a.size, rel=1e-12)
    assert d["max_abs"] == pytest.approx(np.abs(b.astype(np.float64) - a).max())
    assert d["n_nonfinite"] == 0


def test_nonfinite_elements_are_left_out():
    a = np.arange(10, dtype=np.float32)
    b = a + 1
    b[2], a[7] = np.nan, np.inf
    d = displacement(b, a)
    assert d["n_nonfinite"] == 2
    assert d["disp"] == pytest.approx(np.sqrt(8.0)) and np.isfinite(d["norm"])
    assert displacement(np.zeros(3, np.float32), np.zeros(3, np.float32))["rel_disp"] is None


def test_previous_step():
    assert previous_step(8, [0, 4, 8], [0, 1, 2, 4, 8]) == 4  # previous ingested, not available
    assert previous_step(8, [8, 16], [0, 4, 8, 16]) == 4  # first of a run: previous available
    assert previous_step(0, [0, 4], [0, 4]) is None


def test_probe_streams_over_checkpoints(tmp_path):
    rng = np.random.default_rng(1)
    steps = [0, 2, 4]
    ws = {
        s: {
            "a.weight": rng.standard_normal((6, 5)).astype(np.float32),
            "b.bias": rng.standard_normal(5).astype(np.float32),
        }
        for s in steps
    }
    for s in steps:
        (tmp_path / f"step{s}").mkdir()
        save_file(ws[s], str(tmp_path / f"step{s}" / "model.safetensors"))
        (tmp_path / f"step{s}" / "config.json").write_text(json.dumps({"vocab_size": 6}))
    src = LocalSource(tmp_path, "test/disp")
    probe = DisplacementProbe()
    params = probe.params()
    ctx = probe.context(src, [0, 4], params)  # step 2 not ingested
    assert probe.run(src.checkpoint(0), params, ctx)["displacement"].empty
    out = probe.run(src.checkpoint(4), params, ctx)["displacement"].set_index("tensor_name")
    assert set(out.index) == {"a.weight", "b.bias"} and (out.prev_step == 0).all()
    ref = np.linalg.norm(ws[4]["a.weight"].astype(np.float64) - ws[0]["a.weight"])
    assert out.loc["a.weight", "disp"] == pytest.approx(ref)
    only = probe.run(src.checkpoint(4), probe.params(tensors="b.*"), ctx)["displacement"]
    assert only.tensor_name.tolist() == ["b.bias"]
