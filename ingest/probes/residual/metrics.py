"""Per-sample-point residual-stream metrics (METHODS §C), streamed batch by batch.

A *sample* is one input's stream: the last token of a prompt, or (option ``all``) every
position of every prompt. ``StreamStats.update(states)`` takes one batch of samples
``[n, points, d_model]`` and keeps only sums and per-sample scalars, so capturing all
layers never holds more than one batch's activations. ``finalize()`` returns:

- per point l (the ``layer`` column) and sample i, with h = h_l(i):
  - velocity v_l = h_{l+1} - h_l and acceleration a_l = v_{l+1} - v_l (L2 norms; rows
    l without an l+1 / l+2 are NaN), cos(h_l, h_{l+1}) and cos(v_l, v_{l+1});
  - density: participation ratio PR = ||h||_1^2 / (d ||h||_2^2), in [1/d, 1] (1 = all
    units equal in magnitude: dense), and the fraction of units with |h_u| above
    ``rms_fraction`` x RMS(h), RMS(h) = ||h||_2 / sqrt(d);
  - ||h_l|| and the norm growth ||h_{l+1}|| / ||h_l||;
  each summarised over samples (mean, median, quartiles);
- per point l and unit u: continuity, the Pearson correlation over samples of h_l[u] and
  h_{l+1}[u], from streamed sums of values shifted by the first batch's mean (float32
  within a chunk of at most 1024 samples, accumulated in float64: r to ~1e-6); the same after a fixed random
  rotation Q of the basis (h -> h Q, Q Haar-orthogonal, seeded), the control for a
  non-privileged basis; and the mutual information between h_l[u] and h_{l+1}[u] under a
  bivariate Gaussian model, I = -1/2 ln(1 - rho^2) nats (the Gaussian estimator: exact for
  jointly Gaussian units, a lower bound on the MI of any pair with that correlation,
  and the same streamed sums suffice). The point's MI is the mean over units;
- per unit u: the rotation count of its phase portrait over the points, averaged over
  samples (signed and absolute), and the same with the point order permuted (seeded;
  the control). ``rotation_counts`` says how.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def random_rotation(d: int, seed: int) -> torch.Tensor:
    """[d, d] Haar-distributed orthogonal matrix (QR of a Gaussian, signs fixed)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    return (q * torch.sign(torch.diagonal(r))).float()


def layer_permutations(n_points: int, n: int, seed: int) -> torch.Tensor:
    """[n, points] seeded permutations of the point order (the rotation-count control)."""
    rng = np.random.default_rng(seed)
    return torch.as_tensor(
        np.stack([rng.permutation(n_points) for _ in range(n)]) if n else np.zeros((0, n_points), dtype=np.int64)
    )


def wrap_angle(theta: torch.Tensor) -> torch.Tensor:
    """Angles wrapped to (-pi, pi]."""
    return math.pi - torch.remainder(math.pi - theta, 2 * math.pi)


def layer_gradient(a: torch.Tensor) -> torch.Tensor:
    """np.gradient along axis 1 (central differences inside, one-sided at the ends).

    a [n, points, d] -> [n, points, d]; needs points >= 2.
    """
    g = torch.empty_like(a)
    g[:, 1:-1] = (a[:, 2:] - a[:, :-2]) / 2
    g[:, 0] = a[:, 1] - a[:, 0]
    g[:, -1] = a[:, -1] - a[:, -2]
    return g


def rotation_counts(a: torch.Tensor) -> torch.Tensor:
    """Rotation count of each unit's phase portrait, per sample.

    a [n, points, d] -> R [n, d]. The portrait of unit u is x_l = a_l - a_0 against
    y_l = grad(a)_l - grad(a)_0 (gradient along the point axis); theta_l is the angle of
    its step (x_{l+1} - x_l, y_{l+1} - y_l); R = (1 / 2 pi) sum_l wrap(theta_{l+1} - theta_l),
    each turn wrapped to (-pi, pi]. The offsets a_0, grad_0 cancel in the steps.
    """
    if a.shape[1] < 3:
        return torch.zeros(a.shape[0], a.shape[2], dtype=a.dtype)
    dx = a[:, 1:] - a[:, :-1]  # [n, points-1, d]
    g = layer_gradient(a)
    dy = g[:, 1:] - g[:, :-1]
    theta = torch.atan2(dy, dx)
    return wrap_angle(theta[:, 1:] - theta[:, :-1]).sum(dim=1) / (2 * math.pi)


def _cos(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cosine along the last axis; NaN where either vector is zero."""
    den = x.norm(dim=-1) * y.norm(dim=-1)
    return torch.where(den > 0, (x * y).sum(-1) / den.clamp_min(1e-30), torch.full_like(den, float("nan")))


def sample_scalars(h: torch.Tensor, rms_fraction: float) -> dict[str, torch.Tensor]:
    """Per-sample scalars of one batch. h [n, points, d] -> each [n, points] (NaN-padded)."""
    n, p, d = h.shape
    nan = torch.full((n, 1), float("nan"))
    v = h[:, 1:] - h[:, :-1]  # [n, points-1, d]
    acc = v[:, 1:] - v[:, :-1]  # [n, points-2, d]
    l2 = h.norm(dim=-1)  # [n, points]
    l1 = h.abs().sum(-1)
    rms = l2 / math.sqrt(d)
    pad = lambda x, k: torch.cat([x] + [nan] * k, dim=1)  # noqa: E731
    return {
        "velocity": pad(v.norm(dim=-1), 1),
        "acceleration": pad(acc.norm(dim=-1), 2),
        "cos_state": pad(_cos(h[:, :-1], h[:, 1:]), 1),
        "cos_velocity": pad(_cos(v[:, :-1], v[:, 1:]), 2),
        "participation_ratio": torch.where(
            l2 > 0, l1**2 / (d * l2**2).clamp_min(1e-30), torch.full_like(l2, float("nan"))
        ),
        "frac_above_rms": (h.abs() > rms_fraction * rms[..., None]).float().mean(-1),
        "norm": l2,
        "norm_growth": pad(
            torch.where(
                l2[:, :-1] > 0, l2[:, 1:] / l2[:, :-1].clamp_min(1e-30), torch.full_like(l2[:, 1:], float("nan"))
            ),
            1,
        ),
    }


class PairSums:
    """Streamed sums for the per-unit Pearson correlation of consecutive points."""

    def __init__(self, n_points: int, d: int):
        self.n = 0
        self.shift: torch.Tensor | None = None  # [points, d] (first batch's mean)
        self.s1 = torch.zeros(n_points, d, dtype=torch.float64)
        self.s2 = torch.zeros(n_points, d, dtype=torch.float64)
        self.s12 = torch.zeros(n_points - 1, d, dtype=torch.float64)

    def update(self, h: torch.Tensor) -> None:
        """h [n, points, d] float32; a chunk's sums in float32, accumulated in float64."""
        if self.shift is None:  # shifted sums: no cancellation
            self.shift = h.double().mean(0).float()
        x = h - self.shift
        self.n += x.shape[0]
        self.s1 += x.sum(0).double()
        self.s2 += (x * x).sum(0).double()
        self.s12 += (x[:, :-1] * x[:, 1:]).sum(0).double()

    def correlation(self) -> np.ndarray:
        """[points-1, d] Pearson r of unit u between point l and l+1 (NaN: a constant unit)."""
        n = self.n
        m = self.s1 / n
        var = self.s2 / n - m * m  # [points, d]
        cov = self.s12 / n - m[:-1] * m[1:]
        den = torch.sqrt(var[:-1].clamp_min(0) * var[1:].clamp_min(0))
        tiny = 1e-12 * torch.maximum(var[:-1].abs(), var[1:].abs()).clamp_min(1e-300)
        r = torch.where(den > tiny, cov / den.clamp_min(1e-300), torch.full_like(den, float("nan")))
        return r.clamp(-1, 1).numpy()


def gaussian_mi(r: np.ndarray) -> np.ndarray:
    """Mutual information (nats) of a bivariate Gaussian with correlation r."""
    r2 = np.minimum(np.asarray(r, dtype=np.float64) ** 2, 1 - 1e-12)
    return -0.5 * np.log1p(-r2)


@dataclass
class Finalized:
    points: dict[str, np.ndarray]  # column -> [points]
    unit_continuity: np.ndarray  # [points-1, d]
    unit_continuity_rotated: np.ndarray  # [points-1, d]
    unit_mi: np.ndarray  # [points-1, d]
    unit_rotations: dict[str, np.ndarray]  # column -> [d]
    n_samples: int


class StreamStats:
    """Streaming accumulator of every per-point metric over batches of samples."""

    def __init__(self, n_points: int, d: int, rotation: torch.Tensor, permutations: torch.Tensor, rms_fraction: float):
        self.n_points, self.d = n_points, d
        self.rotation = rotation  # [d, d]
        self.permutations = permutations  # [n_perm, points]
        self.rms_fraction = rms_fraction
        self.plain = PairSums(n_points, d)
        self.rotated = PairSums(n_points, d)
        self.scalars: dict[str, list[torch.Tensor]] = {}
        self.rot = torch.zeros(d, dtype=torch.float64)
        self.rot_abs = torch.zeros(d, dtype=torch.float64)
        self.perm = torch.zeros(d, dtype=torch.float64)
        self.perm_abs = torch.zeros(d, dtype=torch.float64)

    def update(self, h: torch.Tensor, chunk: int = 1024) -> None:
        """One batch of samples: h [n, points, d], in chunks (bounds the float64 temporaries)."""
        for s in range(0, h.shape[0], chunk):
            self._update(h[s : s + chunk].float())

    def _update(self, h: torch.Tensor) -> None:
        self.plain.update(h)
        self.rotated.update(h @ self.rotation)  # [n, points, d] in the rotated basis
        for k, v in sample_scalars(h, self.rms_fraction).items():
            self.scalars.setdefault(k, []).append(v)
        r = rotation_counts(h).double()  # [n, d]
        self.rot += r.sum(0)
        self.rot_abs += r.abs().sum(0)
        for perm in self.permutations:
            rp = rotation_counts(h[:, perm]).double()
            self.perm += rp.sum(0) / len(self.permutations)
            self.perm_abs += rp.abs().sum(0) / len(self.permutations)

    def finalize(self) -> Finalized:
        n = self.plain.n
        if n == 0:
            raise ValueError("no samples")
        cont = self.plain.correlation()  # [points-1, d]
        cont_rot = self.rotated.correlation()
        mi = gaussian_mi(cont)
        cols: dict[str, np.ndarray] = {}
        for k, parts in self.scalars.items():
            x = torch.cat(parts).numpy().astype(np.float64)  # [n, points]
            cols[k] = _nanmean(x)
            if k in ("velocity", "acceleration", "participation_ratio", "norm"):
                for q in (0.25, 0.5, 0.75):
                    cols[f"{k}_{_qname(q)}"] = _nanquantile(x, q)
        pad = np.full((1,), np.nan)
        for name, u in (("continuity", cont), ("continuity_rotated", cont_rot)):
            cols[name] = np.concatenate([_nanmean(u.T), pad])
            for q in QUANTILES:
                cols[f"{name}_{_qname(q)}"] = np.concatenate([_nanquantile(u.T, q), pad])
        cols["mutual_info"] = np.concatenate([_nanmean(np.where(np.isnan(cont), np.nan, mi).T), pad])
        units = {
            "rotations": (self.rot / n).numpy(),
            "rotations_abs": (self.rot_abs / n).numpy(),
            "rotations_perm": (self.perm / n).numpy(),
            "rotations_perm_abs": (self.perm_abs / n).numpy(),
        }
        if len(self.permutations) == 0:
            units["rotations_perm"] = units["rotations_perm_abs"] = np.full(self.d, np.nan)
        return Finalized(cols, cont, cont_rot, np.where(np.isnan(cont), np.nan, mi), units, n)


def _qname(q: float) -> str:
    return "median" if q == 0.5 else f"q{int(round(q * 100)):02d}"


def _nanmean(x: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN ([n, k] -> [k]); NaN where a column is all NaN."""
    ok = ~np.isnan(x)
    cnt = ok.sum(0)
    s = np.where(ok, x, 0).sum(0)
    return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)


def _nanquantile(x: np.ndarray, q: float) -> np.ndarray:
    out = np.full(x.shape[1], np.nan)
    for j in range(x.shape[1]):
        col = x[:, j][~np.isnan(x[:, j])]
        if col.size:
            out[j] = np.quantile(col, q)
    return out
