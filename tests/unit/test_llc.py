"""The LLC estimator (ingest.llc, devinterp's SGLD) against a model whose learning coefficient
is known, and the probe's refusals. A full-rank linear regression y = w.x + noise (unit
variance) is regular: its learning coefficient is d/2 for d parameters. The model sits at
the least-squares solution (the checkpoint), the per-sample loss is the negative
log-likelihood (y - w.x)^2 / 2, and the data rows carry the sample's index in the column
devinterp calls input_ids, so the estimate runs through the very ``estimate`` the probe calls.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ingest.errors import TdwError
from ingest.llc import Sampler, estimate
from ingest.probes.llc import windows


def regression(d: int, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)  # [n, d]
    y = x @ torch.randn(d, generator=g) + torch.randn(n, generator=g)  # [n]
    model = torch.nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(x, y[:, None]).solution[:, 0][None])

    def loss_fn(m, ids):  # ids [b, 2]: the sample index, then a pad -> [b, 1]
        i = ids[:, 0]
        return 0.5 * (y[i] - m(x[i])[:, 0])[:, None] ** 2

    rows = np.stack([np.arange(n), np.zeros(n, dtype=np.int64)], axis=1)  # [n, 2]
    return model, rows, loss_fn


def test_llc_of_linear_regression_is_half_the_dimension():
    d = 50
    model, rows, loss_fn = regression(d, 1000, seed=0)
    sampler = Sampler(epsilon=1e-3, n_beta=100.0, localization=1.0, chains=2, draws=200, batch_size=100)
    est = estimate(model, rows, sampler, loss_fn=loss_fn)
    assert not any(est.diverged)
    assert np.mean(est.llc) == pytest.approx(d / 2, rel=0.2)


def test_a_step_size_far_too_large_diverges_without_nan():
    model, rows, loss_fn = regression(8, 200, seed=1)
    est = estimate(model, rows, Sampler(epsilon=10.0, n_beta=100.0, chains=2, draws=20, batch_size=50), loss_fn=loss_fn)
    assert all(est.diverged) and est.llc == [None, None] and all(est.reasons)
    assert all(v is None or np.isfinite(v) for v in est.trace_mean + est.trace_max + est.trace_last)


def test_too_little_data_for_one_batch_is_refused():
    model, rows, loss_fn = regression(4, 10, seed=2)
    with pytest.raises(TdwError, match="fewer than batch_size 16"):
        estimate(model, rows, Sampler(batch_size=16), loss_fn=loss_fn)


def test_windows_cut_items_into_equal_lengths():
    items = [np.arange(10), np.arange(7), np.arange(3)]
    assert windows(items, 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 1, 2], [3, 4, 5], [0, 1, 2]]
    assert windows(items, 0).shape == (6, 3)  # the shortest item: 3 tokens


def test_a_seed_numpy_cannot_take_is_refused():
    with pytest.raises(TdwError, match="seed"):
        Sampler(seed=2**40).check(100)
