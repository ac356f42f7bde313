"""LLC stage boundaries (analysis.llc_stages): critical points of the LLC curve, counted when
the curve turns by more than the estimates' noise."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.llc_stages import critical_points, llc_stages


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=0, max_size=30, unique=True))
def test_without_noise_the_boundaries_are_the_local_extrema(values):
    x = list(values)
    extrema = [i for i in range(1, len(x) - 1) if np.sign(x[i] - x[i - 1]) * np.sign(x[i + 1] - x[i]) < 0]
    assert critical_points(x, [0.0] * len(x)) == extrema


def test_turns_within_the_noise_are_not_boundaries():
    steps = [0, 1, 2, 4, 8, 16, 32, 64]
    rise_fall = [1.0, 5.0, 9.0, 12.0, 20.0, 14.0, 8.0, 7.9]
    stages = llc_stages(steps, rise_fall, [0.5] * 8)
    assert [(s["phase"], s["start_step"], s["end_step"], s["boundary_step"]) for s in stages] == [
        ("stage_1_rising", 0, 8, 8),
        ("stage_2_falling", 16, 64, None),
    ]
    wiggle = list(10 + 0.3 * np.sin(np.arange(8)))  # moves of < 2 standard errors
    assert [s["phase"] for s in llc_stages(steps, wiggle, [0.5] * 8)] == ["stage_1_flat"]
    assert llc_stages([], [], []) == []
