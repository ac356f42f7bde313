"""Attractor-like dynamics: do later layers pull a displaced state back?

Perturbation (METHODS §C): at a block-input point k, the last-token state h_k of a
prompt is moved to another point of the checkpoint's PCA plane, keeping its component
outside the plane:

    h'_k = h_k + (g_1 - c_1) e_1 + (g_2 - c_2) e_2,   c_j = (h_k - mean) . e_j,

for every point g of a regular ``grid`` x ``grid`` lattice spanning the prompts' (PC1, PC2)
coordinates at k (widened by ``margin`` on each side); the remaining blocks then run on
h'_k (``sites.run_perturbed``: the prompts' prefixes run once into a KV cache, valid for
every edit of the last token under causal attention, so a perturbation costs one token).
For every later point m >= k it records the distance to the
unperturbed trajectory d_m = ||h'_m - h_m||, the return ratio d_m / d_k (< 1: the
trajectory came back toward the unperturbed one), the relative return ratio
(d_m / ||h_m||) / (d_k / ||h_k||), which discounts the stream's norm growth, and the
perturbed trajectory's mean PC1/PC2 coordinates (a flow field over the plane). Grid points
closer to the state than 1e-6 ||h_k|| give no ratio (NaN).

Convergence of different inputs: for seeded pairs (i, j) of prompts, D_l = ||h_l(i) -
h_l(j)|| at every point and its ratio D_{l+1} / D_l (< 1: the trajectories converge), also
relative to the mean state norm at each point. A pair with D_l = 0 (e.g. the same last token
at the embedding point) has no ratio at l and is left out of that point's ratio summaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ingest.probes.residual.pca import Basis
from ingest.probes.residual.sites import Layout, prefix_caches, run_perturbed


def plane_grid(coords: np.ndarray, n: int, margin: float = 0.1) -> np.ndarray:
    """[n*n, 2] lattice over the bounding box of coords [inputs, 2], widened by margin."""
    lo, hi = coords.min(0), coords.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    lo, hi = lo - margin * span, hi + margin * span
    a, b = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n), indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1)


def moved_states(h: np.ndarray, basis: Basis, grid: np.ndarray) -> np.ndarray:
    """h [inputs, d] moved to every grid point: [inputs, grid, d]."""
    e = basis.components[:2]  # [2, d]
    c = basis.project(h)[:, :2]  # [inputs, 2]
    delta = (grid[None, :, :] - c[:, None, :]) @ e  # [inputs, grid, d]
    return h[:, None, :] + delta


@dataclass(frozen=True)
class Baseline:
    """The unperturbed prompts a perturbation starts from: their ids, their last-token
    stream [inputs, points, d] and their ``prefix_caches`` (computed once, shared by every
    perturbed point)."""

    prompts: list[np.ndarray]
    states: np.ndarray
    caches: list

    @classmethod
    def of(cls, base, prompts: list[np.ndarray], states: np.ndarray) -> Baseline:
        """base: the plain (not nnsight-wrapped) base model that fills the caches."""
        return cls(prompts, states, prefix_caches(base, prompts))


def perturbation_runs(
    traced, layout: Layout, baseline: Baseline, basis: Basis, at: int, grid: np.ndarray
) -> dict[str, np.ndarray]:
    """Run every (prompt, grid point) perturbation at point ``at``.

    traced: the nnsight-wrapped base model. Only the last token of each prompt runs, on
    the baseline's prefix caches.
    Returns arrays [grid, points] (NaN before ``at``) averaged over prompts: distance,
    return_ratio (mean and median), relative_ratio, pc1, pc2; and n_prompts.
    """
    prompts, states = baseline.prompts, baseline.states
    n_in, n_pts, d = states.shape
    g = grid.shape[0]
    moved = moved_states(states[:, at], basis, grid)  # [inputs, grid, d]
    out = np.empty((n_in, g, n_pts, d), dtype=np.float64)
    for idx, cache in baseline.caches:
        last = torch.as_tensor([int(prompts[i][-1]) for i in idx])
        new = torch.as_tensor(moved[idx].reshape(-1, d), dtype=torch.float32)
        res = run_perturbed(traced, layout, last, cache, g, at, new)  # [group * grid, points, d]
        out[idx] = res.numpy().reshape(len(idx), g, n_pts, d)
    dist = np.linalg.norm(out - states[:, None], axis=-1)  # [inputs, grid, points]
    norm = np.linalg.norm(states, axis=-1)[:, None, :]  # [inputs, 1, points]
    d0 = dist[..., at : at + 1]
    ok = d0 > 1e-6 * norm[..., at : at + 1]
    ratio = np.where(ok, dist / np.where(ok, d0, 1), np.nan)
    rel = np.where(ok, (dist / norm) / np.where(ok, d0 / norm[..., at : at + 1], 1), np.nan)
    coords = basis.project(out)  # [inputs, grid, points, k]
    before = np.arange(n_pts) < at
    res = {
        "distance": dist.mean(0),
        "return_ratio": _nan(np.nanmean, ratio),
        "return_ratio_median": _nan(np.nanmedian, ratio),
        "relative_ratio": _nan(np.nanmean, rel),
        "pc1": coords[..., 0].mean(0),
        "pc2": coords[..., 1].mean(0),
    }
    for v in res.values():
        v[:, before] = np.nan
    res["n_prompts"] = ok[..., 0].sum(0)  # [grid]
    return res


def _nan(f, x: np.ndarray) -> np.ndarray:
    """f over axis 0 ignoring NaN, NaN (no warning) where every value is NaN."""
    out = np.full(x.shape[1:], np.nan)
    have = ~np.all(np.isnan(x), axis=0)
    if have.any():
        out[have] = f(x[:, have], axis=0)
    return out


def seeded_pairs(n_inputs: int, n_pairs: int, seed: int) -> np.ndarray:
    """[m, 2] distinct pairs i < j: all of them when there are at most n_pairs, else a sample."""
    iu = np.stack(np.triu_indices(n_inputs, k=1), axis=1)
    if len(iu) <= n_pairs:
        return iu
    rng = np.random.default_rng(seed)
    return iu[np.sort(rng.choice(len(iu), size=n_pairs, replace=False))]


def pair_convergence(states: np.ndarray, pairs: np.ndarray) -> dict[str, np.ndarray]:
    """Distances between the trajectories of prompt pairs, per point.

    states [inputs, points, d], pairs [m, 2] -> arrays [points] (ratios NaN at the last
    point): distance mean and median, ratio D_{l+1}/D_l mean and median, the fraction of
    pairs with ratio < 1, and the mean relative ratio (distances over the mean norm).
    """
    n_pts = states.shape[1]
    nan1 = np.full(1, np.nan)
    if len(pairs) == 0:
        empty = np.full(n_pts, np.nan)
        return {
            k: empty.copy()
            for k in ("distance", "distance_median", "ratio", "ratio_median", "frac_contracting", "relative_ratio")
        } | {"n_pairs": 0}
    dist = np.linalg.norm(states[pairs[:, 0]] - states[pairs[:, 1]], axis=-1)  # [m, points]
    scale = np.linalg.norm(states, axis=-1).mean(0)  # [points]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = dist[:, 1:] / dist[:, :-1]  # [m, points-1]
        rel = ratio * (scale[:-1] / scale[1:])
    ratio = np.where(np.isfinite(ratio), ratio, np.nan)
    rel = np.where(np.isfinite(rel), rel, np.nan)
    return {
        "distance": dist.mean(0),
        "distance_median": np.median(dist, 0),
        "ratio": np.concatenate([_nan(np.nanmean, ratio), nan1]),
        "ratio_median": np.concatenate([_nan(np.nanmedian, ratio), nan1]),
        "frac_contracting": np.concatenate([_nan(np.nanmean, np.where(np.isnan(ratio), np.nan, ratio < 1)), nan1]),
        "relative_ratio": np.concatenate([_nan(np.nanmean, rel), nan1]),
        "n_pairs": len(pairs),
    }
