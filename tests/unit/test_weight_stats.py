"""The weight probe's statistics against straightforward numpy/scipy computations."""
import numpy as np
import pytest
from scipy import stats as st

from ingest.probes.weights import (CODE_SHIFT, QUANTILES, keys_to_codes, monotone_keys, code_bounds, histogram_quantiles, sample_indices,
                                   tensor_statistics)


@pytest.fixture
def tensor():
    rng = np.random.default_rng(1)
    # bimodal and skewed, spanning several orders of magnitude, larger than one chunk
    a = rng.normal(0.03, 0.01, 700_000)
    b = rng.standard_t(3, 600_000) * 0.02 - 0.01
    return np.concatenate([a, b]).astype(np.float32).reshape(1300, 1000)


def test_moments_match_scipy(tensor):
    """float32 deviations summed in float64: relative error ~1e-6 at most."""
    s, (codes, counts) = tensor_statistics(tensor, 1e-3)
    x = tensor.astype(np.float64).ravel()
    assert s["mean"] == pytest.approx(x.mean(), rel=1e-10)
    assert s["std"] == pytest.approx(x.std(), rel=1e-6)
    assert s["skewness"] == pytest.approx(st.skew(x), rel=1e-5)
    assert s["kurtosis"] == pytest.approx(st.kurtosis(x), rel=1e-5)
    assert s["l2_norm"] == pytest.approx(np.linalg.norm(x), rel=1e-6)
    assert (s["min"], s["max"]) == (x.min(), x.max())
    assert s["frac_near_zero"] == pytest.approx(np.mean(np.abs(x) < 1e-3), abs=1e-12)
    raw, n = np.unique(tensor.view(np.uint32) >> CODE_SHIFT, return_counts=True)
    order = np.argsort(codes)
    assert np.array_equal(codes[order], raw) and np.array_equal(counts[order], n)


def test_quantiles_within_documented_bound(tensor):
    s, _ = tensor_statistics(tensor, 1e-3)
    x = tensor.astype(np.float64).ravel()
    for q in QUANTILES:
        exact = np.quantile(x, q)
        approx = s[f"q{int(round(q * 100)):02d}"]
        # half a bucket (2^-12 of the magnitude), plus the gap between neighbouring order statistics
        assert abs(approx - exact) <= 2 ** -12 * abs(exact) + 1e-6, (q, approx, exact)


def test_code_buckets_contain_their_values():
    x = np.array([0.0, 1e-30, -1e-30, 0.015, -0.015, 3.7, -123.4, 1e-40], dtype=np.float32)
    codes = x.view(np.uint32) >> CODE_SHIFT
    lo, hi = code_bounds(codes)
    assert np.all(lo <= x.astype(np.float64)) and np.all(x.astype(np.float64) <= hi)
    assert np.all(hi - lo <= 2 ** -11 * np.abs(x.astype(np.float64)) + 1e-38)


def test_nonfinite_values_are_counted_and_excluded():
    x = np.array([1.0, 2.0, np.nan, np.inf, 3.0, -np.inf], dtype=np.float32)
    s, (_, counts) = tensor_statistics(x, 1e-3)
    assert s["n_nonfinite"] == 3 and s["n"] == 6
    assert s["mean"] == pytest.approx(2.0) and s["max"] == 3.0
    assert counts.sum() == 3
    all_bad = tensor_statistics(np.full(4, np.nan, dtype=np.float32), 1e-3)[0]
    assert np.isnan(all_bad["mean"]) and all_bad["n_nonfinite"] == 4


def test_histogram_quantiles_on_a_known_histogram():
    values = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    q = histogram_quantiles(values.view(np.uint32) >> CODE_SHIFT, np.array([1, 1, 2]), (0.0, 0.5, 1.0))
    assert q["q00"] == pytest.approx(1.0, rel=2 ** -12)
    assert q["q50"] == pytest.approx(2.0, rel=2 ** -12)
    assert q["q100"] == pytest.approx(4.0, rel=2 ** -12)


def test_monotone_keys_order_values_and_invert_to_codes():
    x = np.array([-3.5, -1e-3, -1e-30, -0.0, 0.0, 1e-30, 2e-3, 7.0], dtype=np.float32)
    keys = monotone_keys(x)
    assert np.all(np.diff(keys) >= 0)
    assert np.array_equal(keys_to_codes(keys), (x.view(np.uint32) >> CODE_SHIFT).astype(np.int64))


def test_sample_indices_are_shared_and_seeded():
    a = sample_indices(1_000_000, 1000, "lm_head.weight", 0)
    assert np.array_equal(a, sample_indices(1_000_000, 1000, "lm_head.weight", 0))
    assert not np.array_equal(a, sample_indices(1_000_000, 1000, "lm_head.weight", 1))
    assert len(np.unique(a)) == 1000 and np.all(np.diff(a) > 0)
    assert sample_indices(500, 1000, "x", 0) is None


from hypothesis import given, settings, strategies as hst  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hst.integers(1, 3000),
                  elements=hst.floats(-1e4, 1e4, width=32) | hst.sampled_from([0.0, -0.0, 1e-40, -1e-40,
                                                                              float("nan"), float("inf")])),
       hst.sampled_from([1e-3, 0.0, 1e-40, 0.5]))
def test_histogram_and_moments_match_numpy_on_any_tensor(x, eps):
    """Every finite value counted under its code (signs, zeros, subnormals, one-sided
    tensors), non-finite ones excluded, moments and the near-zero fraction as numpy says."""
    s, (codes, counts) = tensor_statistics(x, eps)
    ok = x[np.isfinite(x)]
    assert s["n"] == x.size and s["n_nonfinite"] == x.size - ok.size
    raw, n = np.unique(ok.view(np.uint32) >> CODE_SHIFT, return_counts=True)
    order = np.argsort(codes)
    assert np.array_equal(codes[order], raw) and np.array_equal(counts[order], n)
    if ok.size == 0:
        assert np.isnan(s["mean"])
        return
    y = ok.astype(np.float64)
    assert (s["min"], s["max"]) == (y.min(), y.max())
    assert s["frac_near_zero"] == np.mean(np.abs(y) < eps)
    assert s["mean"] == pytest.approx(y.mean(), rel=1e-9, abs=1e-9 * np.abs(y).max())
    # float32 squares of deviations below ~1e-19 underflow (no weight tensor is that flat)
    assert s["std"] == pytest.approx(y.std(), rel=1e-5, abs=1e-6 * np.abs(y).max() + 1e-18)
