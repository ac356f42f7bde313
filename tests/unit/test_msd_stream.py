"""analysis.msd: the streamed MSD (a carried running sum) equals the from-scratch formula,
and ragged samples behave as the SQL window did (a step's variance over the indices present)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.msd import msd_series, msd_time_demeaned


def reference(rows: list[np.ndarray]) -> list[float]:
    """Per step: var (ddof 1) over the indices present of the running sums of each index."""
    out, sums = [], {}
    for w in rows:
        for k, v in enumerate(w):
            sums[k] = sums.get(k, 0.0) + v
        out.append(np.var([sums[k] for k in range(len(w))], ddof=1))
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 8), st.integers(1, 7), st.integers(0, 2**16), st.booleans())
def test_streamed_msd_equals_the_formula(n_steps, split, seed, ragged):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, n_steps) if ragged else np.full(n_steps, 6)
    rows = [rng.normal(size=n) for n in lengths]
    w = np.full((n_steps, lengths.max()), np.nan)
    for i, r in enumerate(rows):
        w[i, : len(r)] = r
    whole, n, _ = msd_series(w)
    np.testing.assert_allclose(whole, reference(rows), rtol=1e-12)
    assert n.tolist() == lengths.tolist()
    cut = min(split, n_steps - 1)
    first, _, carry = msd_series(w[:cut])
    rest, _, last = msd_series(w[cut:], carry)
    np.testing.assert_allclose(np.r_[first, rest], whole, rtol=1e-12)
    np.testing.assert_allclose(last, np.nansum(w, axis=0), rtol=1e-12, atol=1e-12)


def test_time_demeaned_ends_at_zero():
    w = np.random.default_rng(0).normal(size=(6, 50))
    got = msd_time_demeaned(w)
    cum = np.cumsum(w - w.mean(0), axis=0)
    np.testing.assert_allclose(got[:-1], cum.var(axis=1, ddof=1)[:-1], rtol=1e-12)
    assert abs(got[-1]) < 1e-20
