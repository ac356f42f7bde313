"""``analysis.graph.change_points`` now segments with ``ruptures`` (Dynp, l2 cost); the
hand-written dynamic programme it replaced is kept here as the reference, and both must pick
the same segmentation on generated series (or, where two segmentations tie exactly, ones of
equal penalised cost)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from analysis import graph as ag


def reference_change_points(series: np.ndarray, max_segments: int = 3, penalty: float = 1.0, min_size: int = 2):
    """The exact DP ``analysis.graph.change_points`` used before ruptures (verbatim)."""
    x = np.asarray(series, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    t, m = x.shape
    sd = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    c1 = np.vstack([np.zeros(m), np.cumsum(x, axis=0)])
    c2 = np.concatenate([[0.0], np.cumsum((x**2).sum(axis=1))])

    def cost(i: int, j: int) -> float:
        s = c1[j] - c1[i]
        return float(c2[j] - c2[i] - (s @ s) / (j - i))

    best: dict = {}
    for j in range(min_size, t + 1):
        best[(1, j)] = (cost(0, j), [0])
    for k in range(2, max_segments + 1):
        for j in range(k * min_size, t + 1):
            cands = [
                (best[(k - 1, i)][0] + cost(i, j), best[(k - 1, i)][1] + [i])
                for i in range((k - 1) * min_size, j - min_size + 1)
                if (k - 1, i) in best
            ]
            if cands:
                best[(k, j)] = min(cands, key=lambda c: c[0])
    pen = penalty * m * math.log(max(t, 2))
    options = [(best[(k, t)][0] + pen * (k - 1), best[(k, t)][1]) for k in range(1, max_segments + 1) if (k, t) in best]
    return (min(options, key=lambda o: o[0])[1] if options else [0]), cost, pen


def penalised(starts: list[int], t: int, cost, pen: float) -> float:
    bounds = starts + [t]
    return sum(cost(a, b) for a, b in zip(bounds[:-1], bounds[1:])) + pen * (len(starts) - 1)


@settings(max_examples=60, deadline=None)
@given(
    data=st.integers(4, 24).flatmap(
        lambda t: st.integers(1, 3).flatmap(
            lambda m: arrays(np.float64, (t, m), elements=st.floats(-100, 100, allow_nan=False, width=32))
        )
    ),
    max_segments=st.integers(1, 4),
    penalty=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    min_size=st.integers(1, 3),
)
def test_ruptures_segmentation_equals_the_dynamic_programme(data, max_segments, penalty, min_size):
    new = ag.change_points(data, max_segments, penalty, min_size)
    old, cost, pen = reference_change_points(data, max_segments, penalty, min_size)
    t = data.shape[0]
    if new != old:  # only an exact tie may be broken differently
        assert math.isclose(penalised(new, t, cost, pen), penalised(old, t, cost, pen), rel_tol=1e-9, abs_tol=1e-9)
