"""The parameter probes through the real ingest path, on checkpoints with NaN and infinite
weights: the job loads, the bad values are recorded, and no aggregate becomes NaN."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from safetensors.numpy import save_file

from warehouse.pipeline import ingest


@pytest.fixture
def nan_run(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "run"
    w = rng.normal(0, 0.02, (64, 16)).astype(np.float32)
    for step in (0, 1, 2):
        folder = root / f"step{step}"
        folder.mkdir(parents=True)
        x = w + 0.01 * step
        if step == 1:
            x[3, 4], x[5, 6] = np.nan, np.inf
        save_file({"embed_out.weight": x}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"vocab_size": 64}))
    return root


def test_nonfinite_weights_are_recorded_not_spread(nan_run, tmp_path):
    wh = tmp_path / "w.duckdb"
    result = ingest(
        str(nan_run),
        warehouse=wh,
        probes="covariance,displacement",
        progress=False,
        params={"covariance": {"batch_sizes": "16"}},
    )
    assert result.ok, result.summary()
    con = duckdb.connect(str(wh), read_only=True)
    try:
        cov = con.execute(
            "select step, n_nonfinite, eigenvalues is null, trace from raw.covariance_eigs order by step"
        ).fetchall()
        assert [(s, n, null) for s, n, null, _ in cov] == [(0, 0, False), (1, 2, True), (2, 0, False)]
        assert all(np.isfinite(t) for s, _, _, t in cov if s != 1)
        disp = con.execute(
            "select step, prev_step, n_nonfinite, disp, rel_disp from raw.displacement order by step"
        ).fetchall()
        assert [(s, p, n) for s, p, n, _, _ in disp] == [(1, 0, 2), (2, 1, 2)]
        for _, _, _, d, r in disp:  # the 1022 elements finite in both moved by 0.01
            assert d == pytest.approx(0.01 * np.sqrt(64 * 16 - 2), rel=1e-4) and np.isfinite(r)
    finally:
        con.close()
