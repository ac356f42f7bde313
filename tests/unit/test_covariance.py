"""Covariance-rank probe against numpy: matrix_rank of numpy.cov with the same tolerance."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from ingest.errors import TdwError
from ingest.probes.covariance import CovarianceProbe, as_unembedding, covariance_eigenvalues, gaussian_batch, rank_at
from ingest.sources import Checkpoint

TOLS = [round(0.1 * i, 1) for i in range(1, 11)]


def spread_unembedding(vocab: int, d: int, seed: int = 0) -> np.ndarray:
    """[vocab, d] with log-spaced singular values, so the covariance ranks vary with tolerance."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((vocab, d)))
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    sigma = np.logspace(0.3, -1.7, d)
    return ((u * sigma) @ q.T).astype(np.float32)


def checkpoint(tmp_path, tensors: dict[str, np.ndarray], vocab: int, step: int = 0) -> Checkpoint:
    folder = tmp_path / f"step{step}"
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"vocab_size": vocab}))
    return Checkpoint("test/cov", step, f"step{step}", "local", folder=folder)


@pytest.mark.parametrize("batch_size", [16, 40, 64])
def test_rank_matches_numpy_matrix_rank(batch_size):
    w = spread_unembedding(120, 40)
    v = gaussian_batch(40, batch_size, seed=3)
    eig = covariance_eigenvalues(w, v, chunk_rows=37)
    c = np.cov(w.astype(np.float64) @ v)  # [vocab, vocab], over the batch
    ranks = [rank_at(eig, t) for t in TOLS]
    assert ranks == [int(np.linalg.matrix_rank(c, tol=t)) for t in TOLS]
    assert len(set(ranks)) > 3  # the tolerances really discriminate
    top = np.sort(np.linalg.eigvalsh(c))[::-1][:batch_size]
    np.testing.assert_allclose(eig, np.clip(top, 0, None), rtol=1e-8, atol=1e-9)


def test_batch_is_seeded_and_shared():
    a, b = gaussian_batch(32, 16, 0), gaussian_batch(32, 16, 0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, gaussian_batch(32, 16, 1))
    assert not np.array_equal(a, gaussian_batch(32, 32, 0)[:, :16])


def test_transposed_and_bad_shapes():
    w = np.ones((10, 4), dtype=np.float32)
    assert as_unembedding(w.T, "x", 10).shape == (10, 4)
    with pytest.raises(TdwError, match="2-D"):
        as_unembedding(np.ones(10, dtype=np.float32), "x", 10)
    with pytest.raises(TdwError, match="vocabulary size 11"):
        as_unembedding(w, "x", 11)


def test_probe_rows_and_bad_input(tmp_path):
    w = spread_unembedding(120, 16)
    ck = checkpoint(tmp_path, {"embed_out.weight": w, "bias": np.ones(16, np.float32)}, vocab=120)
    probe = CovarianceProbe()
    params = probe.params(batch_sizes="16,32", seeds="0,1")
    probe.validate(ck, params)
    out = probe.run(ck, params, {})["covariance_eigs"]
    assert len(out) == 4 and set(out.tensor_name) == {"lm_head.weight"}
    row = out[(out.batch_size == 32) & (out.seed == 1)].iloc[0]
    expect = covariance_eigenvalues(w, gaussian_batch(16, 32, 1))
    np.testing.assert_allclose(row.eigenvalues, expect)
    assert row.trace == pytest.approx(expect.sum())
    with pytest.raises(TdwError, match="2-D"):
        probe.validate(ck, probe.params(tensors="bias"))
    with pytest.raises(TdwError, match="too small"):
        probe.validate(ck, probe.params(batch_sizes="1"))
    with pytest.raises(TdwError, match="integers"):
        probe.validate(ck, probe.params(batch_sizes="16,x"))


def test_nonfinite_weights_are_flagged_not_computed(tmp_path):
    w = spread_unembedding(64, 8)
    w[3, 2] = np.nan
    w[5, 1] = np.inf
    ck = checkpoint(tmp_path, {"embed_out.weight": w}, vocab=64)
    out = CovarianceProbe().run(ck, CovarianceProbe().params(batch_sizes="16"), {})["covariance_eigs"]
    assert out.n_nonfinite.tolist() == [2]
    assert out.eigenvalues.iloc[0] is None and out.trace.isna().all()
