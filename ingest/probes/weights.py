"""Weight-distribution probe (METHODS §B): per checkpoint and selected tensor, the
statistics the parameter-dynamics marts need, streamed so a tensor is read once and peak
memory stays under twice its size.

Per tensor w (flattened, N values) it records
- moments: mean, std (population), skewness, excess kurtosis (normal = 0): the mean from
  float64 sums, the central moments from float32 deviations (relative error about 1e-6,
  far below any signal),
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
- ``tensor_hash``: xxh3-128 of the tensor's float32 bytes, for the stale-tensor check
  (a tensor identical at two non-adjacent steps, EleutherAI/pythia #206: dbt's
  int_stale_tensors); about 2 % of the statistics' time;
- for MSD (eqs. 4-5), a fixed random sample of indices k, shared by every checkpoint
  (seeded by the tensor name and ``sample_seed``), of ``msd_sample`` values; when the
  tensor has no more values than that, all of them, in order, and MSD is exact. dbt sums
  the sample over checkpoints in step order and takes the variance over k. With n
  sampled of N, the relative standard error of a sample variance is about
  sqrt((kappa - 1) / n * (1 - n / N)), kappa the kurtosis of the cumulative sum: for
  n = 2^18 and a Gaussian-like tensor, about 0.28%, well inside 1%.

Everything but the sample comes from one pass over the tensor, one compiled loop (numba)
over chunks of 32 k values that stay in a core's cache while read twice: per chunk a
float64 sum, then the float32 deviations from the chunk's own mean with their squares,
cubes and fourth powers summed in float64 (merged over chunks by the binomial shift to
the global mean), the near-zero count read off the magnitude bits, and each value's
histogram index, its bits shifted right arithmetically (the code for a positive value;
code - 2^20 for a negative one, so a tensor's indices span one small range), counted in
place. numpy ufuncs took a dozen passes a chunk and a float64 cast; the loop runs at a few
times the cost of one ``torch.sum`` over the tensor.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import xxhash

from ingest.probes.base import Probe, Progress
from ingest.schema import TableSpec, between, finite
from ingest.sources import Checkpoint
from ingest.tensors import DEFAULT_TENSORS, select_tensors

CHUNK = 1 << 15  # values per chunk: read twice (sum, then deviations) while in a core's L2 cache
CODE_SHIFT = 12  # float32 bits dropped: codes keep sign, exponent, 11 mantissa bits
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_KEY = ("model_id", "step", "tensor_name")
_NEG = -(1 << (31 - CODE_SHIFT))  # signed index of the first negative code (-0.0)


def _q(q: float) -> str:
    return f"q{int(round(q * 100)):02d}"


def monotone_keys(c: np.ndarray) -> np.ndarray:
    """Codes re-keyed so that key order is value order (negative keys: negative values)."""
    b = c.view(np.int32)
    return (b ^ ((b >> 31) & 0x7FFFFFFF)) >> CODE_SHIFT


def keys_to_codes(keys: np.ndarray) -> np.ndarray:
    """Inverse of the re-keying: the float32 value's top 20 bits (sign, exponent, mantissa)."""
    keys = keys.astype(np.int64)
    return np.where(keys >= 0, keys, (1 << (31 - CODE_SHIFT)) + (-1 - keys))


def code_bounds(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi] value range of each truncation bucket (float64)."""
    codes = codes.astype(np.uint32)
    v = (codes << CODE_SHIFT).view(np.float32).astype(np.float64)
    nxt = ((codes + 1) << CODE_SHIFT).view(np.float32).astype(np.float64)  # next code away from zero
    lo, hi = np.minimum(v, nxt), np.maximum(v, nxt)
    return lo, hi


def _index(v: float) -> int:
    """The signed histogram index of one float32 value: its bits shifted arithmetically, so
    positive codes keep their value and negative ones map to [_NEG, 0)."""
    return int(np.array([v], dtype=np.float32).view(np.int32)[0] >> CODE_SHIFT)


def _eps_bits(eps: float) -> int:
    """T with |w| < eps <=> (bits(w) & 0x7FFFFFFF) < T for every finite float32 w."""
    e = np.float32(eps)
    if float(e) < eps:  # eps not a float32: the next one up
        e = np.nextafter(e, np.float32(np.inf))
    return int(np.array([abs(e)], dtype=np.float32).view(np.int32)[0]) if eps > 0 else 0


@lru_cache(maxsize=1)
def _kernel():
    """The one-pass kernel, compiled on first use (numba; cached on disk next to this file)."""
    import numba

    # reassociation lets the sums vectorise; the histogram's scatter stays a plain loop
    @numba.njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract"})
    def one_pass(flat, lo, thresh, chunk, counts, sums):  # pragma: no cover - compiled
        bits = flat.view(np.int32)
        near = 0
        for r in range(sums.shape[0]):
            j = r * chunk
            c = flat[j : j + chunk]
            m = c.size
            s1 = 0.0
            for i in range(m):
                s1 += c[i]
            k = np.float32(s1 / m)
            p2 = 0.0
            p3 = 0.0
            p4 = 0.0
            for i in range(m):
                d = np.float64(c[i] - k)  # the float32 deviation, its powers in float64
                d2 = d * d
                p2 += d2
                p3 += d2 * d
                p4 += d2 * d2
            b = bits[j : j + m]
            for i in range(m):
                near += (b[i] & 0x7FFFFFFF) < thresh
            for i in range(m):
                counts[(b[i] >> CODE_SHIFT) - lo] += 1
            sums[r, 0] = m
            sums[r, 1] = s1
            sums[r, 2] = k
            sums[r, 3] = p2
            sums[r, 4] = p3
            sums[r, 5] = p4
        return near

    return one_pass


def _moments(
    flat: np.ndarray, eps: float, vmin: float, vmax: float
) -> tuple[np.ndarray, int, float, float, float, int, float]:
    """One pass over finite float32 values in cache-sized chunks (one compiled loop): per
    chunk a float64 sum, the float32 deviations from the chunk's own mean with their
    squares, cubes and fourth powers summed in float64 (merged below by the binomial shift
    to the global mean), the near-zero count from the magnitude bits, and each value's
    histogram index (its bits shifted, ``CODE_SHIFT`` dropped) counted in place.
    Returns (counts over [lo, hi], lo, M2, M3, M4, near, mean)."""
    n = flat.size
    lo = _index(vmin) if vmin > 0 else _NEG
    hi = _index(vmax) if vmax > 0 else (0 if vmax == 0 else _index(vmin))
    counts = np.zeros(hi - lo + 1, dtype=np.int64)
    sums = np.empty((-(-n // CHUNK), 6))  # n, sum, shift K, P2, P3, P4 per chunk
    thresh = min(_eps_bits(eps), 0x7FFFFFFF)
    near = int(_kernel()(np.ascontiguousarray(flat), lo, thresh, CHUNK, counts, sums))
    # merge: sum over chunks of (x - mu)^p with x - mu = (x - K_c) + (K_c - mu)
    nc, s1, kc, p2, p3, p4 = sums.T
    mean = float(s1.sum()) / n
    p1 = s1 - nc * kc  # sum of (x - K_c), from the float64 sums
    dl = kc - mean
    m2 = max(0.0, float(np.sum(p2 + 2 * dl * p1 + nc * dl**2)))  # rounding can dip below 0
    m3 = float(np.sum(p3 + 3 * dl * p2 + 3 * dl**2 * p1 + nc * dl**3))
    m4 = float(np.sum(p4 + 4 * dl * p3 + 6 * dl**2 * p2 + 4 * dl**3 * p1 + nc * dl**4))
    return counts, lo, m2, m3, m4, near, mean


def tensor_statistics(w: np.ndarray, near_zero_eps: float) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """Moments, extrema and quantiles of one tensor, plus its fine histogram as the
    non-empty (codes, counts)."""
    flat = np.asarray(w).reshape(-1)  # a plain view: memmap slicing is slow
    if flat.dtype != np.float32:
        flat = flat.astype(np.float32)
    n_all = flat.size
    vmin, vmax = (float(flat.min()), float(flat.max())) if n_all else (np.nan, np.nan)
    n_bad = 0
    if not (np.isfinite(vmin) and np.isfinite(vmax)):  # NaN propagates through min/max
        flat = flat[np.isfinite(flat)]  # rare: a copy of the finite values
        n_bad = n_all - flat.size
        vmin, vmax = (float(flat.min()), float(flat.max())) if flat.size else (np.nan, np.nan)
    n = flat.size
    stats: dict[str, float] = {"n": n_all, "n_nonfinite": n_bad}
    if n == 0:
        nan = float("nan")
        stats.update(
            mean=nan,
            std=nan,
            skewness=nan,
            kurtosis=nan,
            min=nan,
            max=nan,
            l2_norm=nan,
            frac_near_zero=nan,
            **{_q(q): nan for q in QUANTILES},
        )
        return stats, (np.zeros(0, np.int64), np.zeros(0, np.int64))
    counts, lo, s2, s3, s4, near, mean = _moments(flat, near_zero_eps, vmin, vmax)
    nz = np.flatnonzero(counts)
    hist = ((nz + lo) & ((1 << (32 - CODE_SHIFT)) - 1), counts[nz])
    var = s2 / n
    std = var**0.5
    stats.update(
        mean=mean,
        std=std,
        skewness=(s3 / n) / std**3 if std > 0 else 0.0,
        kurtosis=(s4 / n) / var**2 - 3.0 if var > 0 else 0.0,
        min=vmin,
        max=vmax,
        l2_norm=(s2 + n * mean * mean) ** 0.5,
        frac_near_zero=near / n,
    )
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


def tensor_hash(w: np.ndarray) -> str:
    """xxh3-128 of a tensor's float32 bytes (C order): equal exactly when the values are."""
    flat = np.ascontiguousarray(w, dtype=np.float32).reshape(-1)
    return xxhash.xxh3_128_hexdigest(memoryview(flat).cast("B"))


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique(x)`` by sorting (numpy's hash-based unique is ~10x slower here)."""
    x = np.sort(x)
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if x.size else x


@lru_cache(maxsize=16)
def sample_indices(n_total: int, size: int, tensor_name: str, seed: int) -> np.ndarray | None:
    """Sorted sample of indices shared by every checkpoint (None: take all of them); drawn
    once per process (read-only: every job of the model indexes with the same array)."""
    if n_total <= size:
        return None
    digest = hashlib.sha256(f"{tensor_name}:{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    # uniform without replacement in O(size) memory (Generator.choice permutes all n_total)
    picked = _sorted_unique(rng.integers(0, n_total, size=size + size // 8 + 16))
    while picked.size < size:
        picked = _sorted_unique(np.concatenate([picked, rng.integers(0, n_total, size=size)]))
    out = np.sort(rng.permutation(picked)[:size])
    out.flags.writeable = False
    return out


class WeightsProbe(Probe):
    name = "weights"
    version = "2"
    defaults = {"tensors": DEFAULT_TENSORS, "msd_sample": 1 << 18, "sample_seed": 0, "near_zero_eps": 1e-3}
    tables = (
        TableSpec(
            "weight_stats",
            (
                ("model_id", "VARCHAR"),
                ("step", "BIGINT"),
                ("tensor_name", "VARCHAR"),
                ("shape", "VARCHAR"),
                ("n", "BIGINT"),
                ("n_nonfinite", "BIGINT"),
                ("mean", "DOUBLE"),
                ("std", "DOUBLE"),
                ("skewness", "DOUBLE"),
                ("kurtosis", "DOUBLE"),
                ("min", "DOUBLE"),
                ("max", "DOUBLE"),
                ("l2_norm", "DOUBLE"),
                ("frac_near_zero", "DOUBLE"),
                ("near_zero_eps", "DOUBLE"),
                *((_q(q), "DOUBLE") for q in QUANTILES),
                ("tensor_hash", "VARCHAR"),
            ),
            _KEY,
            ("tensor_name",),
            "Moments, extrema and quantiles of one tensor at one checkpoint.",
            # moments are over the finite values (NULL when there are none)
            (
                between("n", 1),
                between("n_nonfinite", 0),
                finite("std", 0),
                finite("l2_norm", 0),
                finite("mean"),
                finite("min"),
                finite("max"),
                between("frac_near_zero", 0, 1),
            ),
        ),
        TableSpec(
            "weight_hist",
            (
                ("model_id", "VARCHAR"),
                ("step", "BIGINT"),
                ("tensor_name", "VARCHAR"),
                ("code", "INTEGER"),
                ("count", "BIGINT"),
            ),
            _KEY + ("code",),
            ("tensor_name",),
            "Histogram of the tensor's values by code (the float32 value's top 20 bits).",
            (between("code", 0, (1 << (32 - CODE_SHIFT)) - 1), between("count", 1)),
            indexed=False,  # ~50 k rows per tensor: the key index would cost most of a job's load
        ),
        TableSpec(
            "weight_sample",
            (
                ("model_id", "VARCHAR"),
                ("step", "BIGINT"),
                ("tensor_name", "VARCHAR"),
                ("n_total", "BIGINT"),
                ("sample_seed", "BIGINT"),
                ("exact", "BOOLEAN"),
                ("vals", "FLOAT[]"),
            ),
            _KEY,
            ("tensor_name",),
            "Values at a fixed sample of indices shared by all checkpoints (all values if exact).",
            (between("n_total", 1),),
        ),
    )

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        select_tensors(checkpoint.tensors().names(), params["tensors"])

    def run(
        self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any], progress: Progress | None = None
    ) -> dict[str, pd.DataFrame]:
        tf = checkpoint.tensors()
        names = select_tensors(tf.names(), params["tensors"])
        key = {"model_id": checkpoint.model_id, "step": checkpoint.step}
        stats_rows, hist_frames, sample_rows = [], [], []
        cache = context.setdefault("sample_indices", {})
        for name in names:
            w = tf.read(name)  # [*shape] float32
            if progress:
                progress(name)
            stats, (codes, counts) = tensor_statistics(w, params["near_zero_eps"])
            stats_rows.append(
                {
                    **key,
                    "tensor_name": name,
                    "shape": "x".join(map(str, w.shape)),
                    "near_zero_eps": params["near_zero_eps"],
                    **stats,
                    "tensor_hash": tensor_hash(w),
                }
            )
            hist_frames.append(
                pd.DataFrame({**key, "tensor_name": name, "code": codes.astype(np.int32), "count": counts})
            )
            if (name, w.size) not in cache:
                cache[(name, w.size)] = sample_indices(w.size, params["msd_sample"], name, params["sample_seed"])
            idx = cache[(name, w.size)]
            vals = w.reshape(-1) if idx is None else w.reshape(-1)[idx]
            sample_rows.append(
                {
                    **key,
                    "tensor_name": name,
                    "n_total": w.size,
                    "sample_seed": params["sample_seed"],
                    "exact": idx is None,
                    "vals": vals.astype(np.float32),
                }
            )
            del w
        cols = {t.name: t.column_names for t in self.tables}
        samples = pd.DataFrame(sample_rows)
        return {
            "weight_stats": pd.DataFrame(stats_rows)[cols["weight_stats"]],
            "weight_hist": pd.concat(hist_frames, ignore_index=True)[cols["weight_hist"]],
            "weight_sample": samples[cols["weight_sample"]],
        }
