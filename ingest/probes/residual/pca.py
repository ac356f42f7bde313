"""Reduced trajectories: PCA of the residual stream over all (input, sample point) states.

Per checkpoint, the last-token states h_l(i) ([inputs, points, d]) are stacked into an
[inputs * points, d] matrix, centred on its mean, and decomposed by a thin SVD (numpy,
float64). The first k (3) right singular vectors are the components; the explained
variance of component j is s_j^2 / (N - 1) and its ratio s_j^2 / sum(s^2). A state's
coordinates are (h - mean) @ components.T. Signs are fixed so that each component's
largest-magnitude loading is positive (SVD signs are otherwise arbitrary).

Components fit per checkpoint rotate and flip over training, so trajectories are also
projected onto a *shared* basis: the PCA of the final checkpoint's states for the same
prompts (``Basis`` from ``fit``). Its explained-variance ratio on another checkpoint is
the fraction of that checkpoint's total variance the shared components capture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Basis:
    mean: np.ndarray  # [d]
    components: np.ndarray  # [k, d] orthonormal rows
    explained_variance: np.ndarray  # [k] on the data it was fit on
    explained_ratio: np.ndarray  # [k]

    def project(self, states: np.ndarray) -> np.ndarray:
        """[..., d] -> [..., k] coordinates."""
        return (np.asarray(states, dtype=np.float64) - self.mean) @ self.components.T

    def variance_on(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Variance along each component of other states, and its share of their total."""
        x = np.asarray(states, dtype=np.float64).reshape(-1, self.mean.shape[0])
        xc = x - x.mean(0)
        proj = xc @ self.components.T  # [N, k]
        denom = max(x.shape[0] - 1, 1)
        var = (proj**2).sum(0) / denom
        total = (xc**2).sum() / denom
        return var, var / total if total > 0 else np.full_like(var, np.nan)


def fit(states: np.ndarray, k: int = 3) -> Basis:
    """PCA of states [..., d] (all leading axes are samples) by numpy SVD."""
    x = np.asarray(states, dtype=np.float64).reshape(-1, states.shape[-1])  # [N, d]
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k_eff = min(k, vt.shape[0])
    comps = vt[:k_eff].copy()
    flip = np.sign(comps[np.arange(k_eff), np.abs(comps).argmax(1)])
    comps *= np.where(flip == 0, 1, flip)[:, None]
    var = s**2 / max(x.shape[0] - 1, 1)
    total = var.sum()
    ratio = var[:k_eff] / total if total > 0 else np.full(k_eff, np.nan)
    if k_eff < k:  # fewer samples than components
        pad = k - k_eff
        comps = np.vstack([comps, np.zeros((pad, x.shape[1]))])
        var = np.concatenate([var, np.zeros(pad)])
        ratio = np.concatenate([ratio, np.full(pad, np.nan)])
    return Basis(mean, comps, var[:k], ratio[:k])


def trajectories(states: np.ndarray, basis: Basis) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of each input's trajectory and of the mean trajectory.

    states [inputs, points, d] -> ([inputs, points, k], [points, k]); the mean trajectory
    is the mean of the inputs' coordinates (= the projection of the mean state).
    """
    coords = basis.project(states)
    return coords, coords.mean(0)
