"""Developmental stages from the LLC curve (Hoogland et al. 2024, "The developmental landscape
of in-context learning"): stage boundaries are the critical points of the LLC over
log-step, the checkpoints where the curve turns from rising to falling or back.

Over ingested checkpoints the curve is a sequence of noisy estimates, so a turn counts only
when it is larger than the estimates' noise: a zigzag filter walks the curve, keeps the
running extreme since the last confirmed turn, and confirms that extreme as a critical
point once the curve has moved away from it, in the other direction, by more than
``z`` standard errors of the difference (``sqrt(se_a^2 + se_b^2)``, se = llc_std /
sqrt(n_chains); 0 where a checkpoint has one chain). The first and last checkpoints are
never boundaries. Critical points do not depend on the spacing of the x axis, so log-step
and step give the same ones; log-step is how the curve is drawn. Stages are the segments
between boundaries, each labelled by the direction of the LLC over it (rising, falling;
flat when the curve never moves beyond the noise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def critical_points(llc: Sequence[float], se: Sequence[float], z: float = 2.0) -> list[int]:
    """Indices of the confirmed turning points of ``llc`` (ascending, interior only)."""
    n = len(llc)
    out: list[int] = []
    if n < 3:
        return out

    def moved(i: int, j: int) -> float:  # signed move from i to j, in noise units (inf when noise is 0)
        d = llc[j] - llc[i]
        s = z * math.hypot(se[i], se[j])
        return d / s if s > 0 else (math.inf if d > 0 else -math.inf if d < 0 else 0.0)

    direction, ext = 0, 0  # +1 rising, -1 falling, 0 not yet moved beyond the noise
    for j in range(1, n):
        if direction == 0:
            m = moved(0, j)
            if m > 1 or m < -1:
                direction, ext = (1 if m > 0 else -1), j
            continue
        if (llc[j] - llc[ext]) * direction > 0:  # a new extreme in the current direction
            ext = j
        elif moved(ext, j) * direction < -1:  # turned by more than the noise: ext is critical
            out.append(ext)
            direction, ext = -direction, j
    return [i for i in out if 0 < i < n - 1]


def llc_stages(
    steps: Sequence[int], llc: Sequence[float], se: Sequence[float], z: float = 2.0
) -> list[dict[str, object]]:
    """Stages of one model's LLC curve (ascending steps): phase 'stage_<k>_<direction>',
    phase_index, start_step, end_step (inclusive; a boundary checkpoint ends one stage, the
    next stage starts at the following checkpoint), n_checkpoints, boundary_step (the
    critical point that ends the stage; None for the last)."""
    steps = list(steps)
    if not steps:
        return []
    cuts = critical_points(llc, se, z)
    bounds = [0] + [c + 1 for c in cuts] + [len(steps)]
    out = []
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        lo, hi = (a - 1 if a > 0 else a), b - 1  # the stage's curve runs from the previous boundary
        d = llc[hi] - llc[lo]
        s = z * math.hypot(se[lo], se[hi])
        direction = "flat" if abs(d) <= s or d == 0 else "rising" if d > 0 else "falling"
        out.append(
            {
                "phase": f"stage_{k + 1}_{direction}",
                "phase_index": k + 1,
                "start_step": int(steps[a]),
                "end_step": int(steps[b - 1]),
                "n_checkpoints": b - a,
                "boundary_step": int(steps[b - 1]) if b < len(steps) else None,
            }
        )
    return out
