"""Weight-distribution probe (METHODS §B): per checkpoint and selected tensor, the
statistics the parameter-dynamics marts need, streamed so a tensor is read once and peak
memory stays under twice its size.

Per tensor w (flattened, N values) it records
- moments: mean, std (population), skewness, excess kurtosis (normal = 0), from float32
  deviations accumulated in float64 (relative error about 1e-6, far below any signal),
  min, max, L2 norm, the fraction with |w| < ``near_zero_eps``, the count of non-finite
  values (excluded from every statistic);
- a fine histogram on a universal grid: each float32 value truncated to its top 20 bits
  (the *code*: sign, 8 exponent bits, 11 mantissa bits), counted over all 2^20 codes (only
  non-empty codes are stored). The grid is the same for every model, tensor and
  checkpoint, so dbt re-bins it onto bin edges shared by all checkpoints of a model and
  tensor (``fct_weight_density``) without re-reading any checkpoint. A code's bucket is at
  most 2^-11 of its magnitude wide, so a value lands in the wrong shared bin only when it
  lies within that distance of an edge;
- approximate quantiles from that histogram (bucket midpoints): the error is at most half
  a bucket, i.e. within 2^-12 of the quantile's magnitude;
- for MSD (eqs. 4-5), a fixed random sample of indices k, shared by every checkpoint
  (seeded by the tensor name and ``sample_seed``), of ``msd_sample`` values; when the
  tensor has no more values than that, all of them, in order, and MSD is exact. dbt sums
  the sample over checkpoints in step order and takes the variance over k. With n
  sampled of N, the relative standard error of a sample variance is about
  sqrt((kappa - 1) / n * (1 - n / N)), kappa the kurtosis of the cumulative sum: for
  n = 2^18 and a Gaussian-like tensor, about 0.28%, well inside 1%.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from ingest.probes.base import Probe, Progress
from ingest.schema import TableSpec, between, finite
from ingest.sources import Checkpoint
from ingest.tensors import DEFAULT_TENSORS, select_tensors

CHUNK = 1 << 16                 # values per chunk: temporaries stay ~16x smaller than a 14M unembedding
CODE_SHIFT = 12                 # float32 bits dropped: codes keep sign, exponent, 11 mantissa bits
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_KEY = ("model_id", "step", "tensor_name")


def _q(q: float) -> str:
    return f"q{int(round(q * 100)):02d}"


def monotone_keys(c: np.ndarray) -> np.ndarray:
    """Codes re-keyed so that key order is value order (negative keys: negative values).
    A tensor's keys then span a narrow contiguous range, so counting them needs a small
    array rather than all 2^20 codes."""
    b = c.view(np.int32)
    return (b ^ ((b >> 31) & 0x7FFFFFFF)) >> CODE_SHIFT


def keys_to_codes(keys: np.ndarray) -> np.ndarray:
    """Inverse of the re-keying: the float32 value's top 20 bits (sign, exponent, mantissa)."""
    keys = keys.astype(np.int64)
    return np.where(keys >= 0, keys, (1 << (31 - CODE_SHIFT)) + (-1 - keys))


class KeyCounter:
    """Counts of monotone keys over a range grown as chunks arrive (memory ~ the range)."""

    def __init__(self):
        self.lo, self.counts = 0, np.zeros(0, dtype=np.int64)

    def add(self, keys: np.ndarray) -> None:
        if keys.size == 0:
            return
        lo, hi = int(keys.min()), int(keys.max())
        part = np.bincount(keys - lo, minlength=hi - lo + 1)
        if self.counts.size == 0:
            self.lo, self.counts = lo, part
            return
        new_lo, new_hi = min(lo, self.lo), max(hi, self.lo + self.counts.size - 1)
        if (new_lo, new_hi) != (self.lo, self.lo + self.counts.size - 1):
            grown = np.zeros(new_hi - new_lo + 1, dtype=np.int64)
            grown[self.lo - new_lo:self.lo - new_lo + self.counts.size] = self.counts
            self.lo, self.counts = new_lo, grown
        self.counts[lo - self.lo:lo - self.lo + part.size] += part

    def codes_and_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Non-empty buckets: (codes, counts)."""
        nz = np.flatnonzero(self.counts)
        return keys_to_codes(nz + self.lo), self.counts[nz]


def code_bounds(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi] value range of each truncation bucket (float64)."""
    codes = codes.astype(np.uint32)
    v = (codes << CODE_SHIFT).view(np.float32).astype(np.float64)
    nxt = ((codes + 1) << CODE_SHIFT).view(np.float32).astype(np.float64)  # next code away from zero
    lo, hi = np.minimum(v, nxt), np.maximum(v, nxt)
    return lo, hi


def tensor_statistics(w: np.ndarray, near_zero_eps: float
                      ) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """Moments, extrema and quantiles of one tensor, plus its fine histogram as the
    non-empty (codes, counts)."""
    flat = w.reshape(-1)
    if flat.dtype != np.float32:
        flat = flat.astype(np.float32)
    n_all = flat.size
    counter = KeyCounter()
    total, n, vmin, vmax, n_bad = 0.0, 0, np.inf, -np.inf, 0
    chunks = [flat[i:i + CHUNK] for i in range(0, n_all, CHUNK)]
    clean = []
    for c in chunks:                                   # pass 1: sums, extrema, histogram
        if not np.isfinite(c).all():
            good = c[np.isfinite(c)]
            n_bad += c.size - good.size
            c = good
        clean.append(c)
        if c.size == 0:
            continue
        total += float(np.add.reduce(c, dtype=np.float64))
        n += c.size
        vmin, vmax = min(vmin, float(c.min())), max(vmax, float(c.max()))
        counter.add(monotone_keys(c))
    stats: dict[str, float] = {"n": n_all, "n_nonfinite": n_bad}
    if n == 0:
        nan = float("nan")
        stats.update(mean=nan, std=nan, skewness=nan, kurtosis=nan, min=nan, max=nan,
                     l2_norm=nan, frac_near_zero=nan, **{_q(q): nan for q in QUANTILES})
        return stats, counter.codes_and_counts()
    mean = total / n
    s2 = s3 = s4 = 0.0
    near = 0
    mean32 = np.float32(mean)
    for c in clean:                                    # pass 2: central moments
        if c.size == 0:
            continue
        d = c - mean32                                 # float32 products, float64 sums
        d2 = d * d
        s2 += float(np.add.reduce(d2, dtype=np.float64))
        d *= d2
        s3 += float(np.add.reduce(d, dtype=np.float64))
        d2 *= d2
        s4 += float(np.add.reduce(d2, dtype=np.float64))
        near += int(np.count_nonzero(np.abs(c) < near_zero_eps))
    var = s2 / n
    std = var ** 0.5
    stats.update(
        mean=mean, std=std,
        skewness=(s3 / n) / std ** 3 if std > 0 else 0.0,
        kurtosis=(s4 / n) / var ** 2 - 3.0 if var > 0 else 0.0,
        min=vmin, max=vmax, l2_norm=(s2 + n * mean * mean) ** 0.5,
        frac_near_zero=near / n,
    )
    hist = counter.codes_and_counts()
    stats.update(histogram_quantiles(*hist, QUANTILES))
    return stats, hist


def histogram_quantiles(codes: np.ndarray, counts: np.ndarray, qs) -> dict[str, float]:
    """Quantiles (type-7 ranks) read off the code histogram at bucket midpoints."""
    lo, hi = code_bounds(codes)
    order = np.argsort(lo, kind="stable")
    mid, c = ((lo + hi) / 2)[order], counts[order]
    cum = np.cumsum(c)
    n = cum[-1]
    out = {}
    for q in qs:
        rank = q * (n - 1)
        i = int(np.searchsorted(cum, np.floor(rank) + 1))
        out[_q(q)] = float(mid[min(i, mid.size - 1)])
    return out


def sample_indices(n_total: int, size: int, tensor_name: str, seed: int) -> np.ndarray | None:
    """Sorted sample of indices shared by every checkpoint (None: take all of them)."""
    if n_total <= size:
        return None
    digest = hashlib.sha256(f"{tensor_name}:{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    # uniform without replacement in O(size) memory (Generator.choice permutes all n_total)
    picked = np.unique(rng.integers(0, n_total, size=size + size // 8 + 16))
    while picked.size < size:
        picked = np.unique(np.concatenate([picked, rng.integers(0, n_total, size=size)]))
    return np.sort(rng.permutation(picked)[:size])


class WeightsProbe(Probe):
    name = "weights"
    version = "2"
    defaults = {"tensors": DEFAULT_TENSORS, "msd_sample": 1 << 18, "sample_seed": 0,
                "near_zero_eps": 1e-3}
    tables = (
        TableSpec("weight_stats", (
            ("model_id", "VARCHAR"), ("step", "BIGINT"), ("tensor_name", "VARCHAR"),
            ("shape", "VARCHAR"), ("n", "BIGINT"), ("n_nonfinite", "BIGINT"),
            ("mean", "DOUBLE"), ("std", "DOUBLE"), ("skewness", "DOUBLE"), ("kurtosis", "DOUBLE"),
            ("min", "DOUBLE"), ("max", "DOUBLE"), ("l2_norm", "DOUBLE"),
            ("frac_near_zero", "DOUBLE"), ("near_zero_eps", "DOUBLE"),
            *((_q(q), "DOUBLE") for q in QUANTILES),
        ), _KEY, ("tensor_name",), "Moments, extrema and quantiles of one tensor at one checkpoint.",
            # moments are over the finite values (NULL when there are none)
            (between("n", 1), between("n_nonfinite", 0), finite("std", 0), finite("l2_norm", 0),
             finite("mean"), finite("min"), finite("max"), between("frac_near_zero", 0, 1))),
        TableSpec("weight_hist", (
            ("model_id", "VARCHAR"), ("step", "BIGINT"), ("tensor_name", "VARCHAR"),
            ("code", "INTEGER"), ("count", "BIGINT"),
        ), _KEY + ("code",), ("tensor_name",),
            "Histogram of the tensor's values by code (the float32 value's top 20 bits).",
            (between("code", 0, (1 << (32 - CODE_SHIFT)) - 1), between("count", 1))),
        TableSpec("weight_sample", (
            ("model_id", "VARCHAR"), ("step", "BIGINT"), ("tensor_name", "VARCHAR"),
            ("n_total", "BIGINT"), ("sample_seed", "BIGINT"), ("exact", "BOOLEAN"),
            ("vals", "FLOAT[]"),
        ), _KEY, ("tensor_name",),
            "Values at a fixed sample of indices shared by all checkpoints (all values if exact).",
            (between("n_total", 1),)),
    )

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        select_tensors(checkpoint.tensors().names(), params["tensors"])

    def run(self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any],
            progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        tf = checkpoint.tensors()
        names = select_tensors(tf.names(), params["tensors"])
        key = {"model_id": checkpoint.model_id, "step": checkpoint.step}
        stats_rows, hist_frames, sample_rows = [], [], []
        cache = context.setdefault("sample_indices", {})
        for name in names:
            w = tf.read(name)                          # [*shape] float32
            if progress:
                progress(name)
            stats, (codes, counts) = tensor_statistics(w, params["near_zero_eps"])
            stats_rows.append({**key, "tensor_name": name, "shape": "x".join(map(str, w.shape)),
                               "near_zero_eps": params["near_zero_eps"], **stats})
            hist_frames.append(pd.DataFrame({**key, "tensor_name": name, "code": codes.astype(np.int32),
                                             "count": counts}))
            if (name, w.size) not in cache:
                cache[(name, w.size)] = sample_indices(w.size, params["msd_sample"], name,
                                                       params["sample_seed"])
            idx = cache[(name, w.size)]
            vals = w.reshape(-1) if idx is None else w.reshape(-1)[idx]
            sample_rows.append({**key, "tensor_name": name, "n_total": w.size,
                                "sample_seed": params["sample_seed"], "exact": idx is None,
                                "vals": vals.astype(np.float32)})
            del w
        cols = {t.name: t.column_names for t in self.tables}
        return {
            "weight_stats": pd.DataFrame(stats_rows)[cols["weight_stats"]],
            "weight_hist": pd.concat(hist_frames, ignore_index=True)[cols["weight_hist"]],
            "weight_sample": pd.DataFrame(sample_rows)[cols["weight_sample"]],
        }
