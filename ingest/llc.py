"""The local learning coefficient (LLC) of one checkpoint, estimated with Timaeus's
``devinterp`` (SGLD; Lau et al. 2023, "Quantifying degeneracy in singular models via the
learning coefficient"; Hoogland et al. 2024 use it to find the developmental stages of a
small transformer). Nothing here re-implements the sampler: :func:`estimate` hands the
model, a fixed data set and the hyperparameters to ``devinterp.slt.llc.llc`` and reads its
per-chain estimates and loss traces back.

The estimator: w* is the checkpoint's weights; SGLD samples from the localized tempered
posterior exp(-nβ L(w) - γ/2 |w - w*|^2) with step size ε, minibatches of ``batch_size``
sequences; per chain, LLC = nβ (mean of the sampled minibatch losses - L(w*)), where
devinterp averages every SGLD step, burn-in included, and L(w*) is the mean loss over
``init_batches`` batches at w*. For a regular model (full-rank linear regression) the
estimate is d/2 for d parameters (``tests/unit/test_llc.py`` checks it through this
function).

Hyperparameters (:class:`Sampler`, the probe's parameters; the same for every checkpoint of
a series, or LLC values are not comparable): ``epsilon`` (ε), ``n_beta`` (nβ; 0 means
devinterp's calibration default m / log m, with m the loss terms one minibatch averages:
``batch_size`` x the predicted tokens per sequence; devinterp's own default counts sequences,
b / log b = 5.8 at batch 16, which on the toy suite lets the loss trace climb past the
uniform predictor's, log 256, within 60 steps), ``localization`` (γ),
``chains``, ``draws``, ``burnin``, ``batch_size``, ``init_batches`` (0: one pass over the
data set), ``seed``. A chain *diverged* when its loss trace holds a non-finite value (the
sampler stopped it) or rises above ``diverge_factor`` times the initial loss: its estimate
is withheld (None), never a NaN; a step size far too large does that.

Data: an [n, T] array of token ids (windows of the evaluation set); fewer windows than
``batch_size`` is a ``TdwError`` (devinterp drops incomplete batches, so there would be
nothing to sample on).
"""

from __future__ import annotations

import math
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ingest.errors import TdwError

SAMPLER_PARAMS = (
    "epsilon",
    "n_beta",
    "localization",
    "chains",
    "draws",
    "burnin",
    "batch_size",
    "init_batches",
    "seed",
    "diverge_factor",
)


@dataclass(frozen=True)
class Sampler:
    epsilon: float = 1e-3
    n_beta: float = 0.0  # 0: m / log(m), m = loss terms per minibatch
    localization: float = 300.0
    chains: int = 4
    draws: int = 40
    burnin: int = 0
    batch_size: int = 16
    init_batches: int = 0  # 0: one pass over the data set
    seed: int = 100
    diverge_factor: float = 10.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Sampler:
        kinds = {f: type(getattr(cls(), f)) for f in SAMPLER_PARAMS}
        return cls(**{f: kinds[f](params[f]) for f in SAMPLER_PARAMS if f in params})

    def nbeta(self, per_row: int = 1) -> float:
        """nβ as used: the given value, or devinterp's default m / log(m) with m the loss terms
        one minibatch averages, batch_size x ``per_row`` (predicted tokens per sequence)."""
        if self.n_beta > 0:
            return float(self.n_beta)
        m = self.batch_size * per_row
        return m / math.log(m) if m > 1 else 1.0

    def check(self, n_windows: int) -> None:
        """Refuse what cannot run, before any job: too little data for one batch, a seed that
        numpy cannot take (devinterp seeds chain c with seed + c, numpy's seed < 2^32)."""
        if self.seed + self.chains > 2**32:
            raise TdwError(f"llc: seed + chains must be at most 2^32 (numpy's seeds), got seed {self.seed}")
        if n_windows < self.batch_size:
            raise TdwError(
                f"llc: the data set has {n_windows} sequences, fewer than batch_size {self.batch_size} "
                "(lower batch_size or give more items)"
            )


@dataclass
class Estimate:
    """One checkpoint's LLC: per chain the estimate (None when the chain diverged) and its loss
    trace's summary; ``init_loss`` is L(w*)."""

    n_beta: float
    init_loss: float
    llc: list[float | None]  # [chains]
    trace_mean: list[float | None]  # [chains] mean minibatch loss over the SGLD steps
    trace_std: list[float | None]  # [chains] its standard deviation over the steps
    trace_max: list[float | None]  # [chains]
    trace_last: list[float | None]  # [chains] the last step's loss
    diverged: list[bool]  # [chains]
    reasons: list[str | None] = field(default_factory=list)  # [chains] why a chain diverged

    @property
    def ok(self) -> list[float]:
        return [v for v, d in zip(self.llc, self.diverged) if not d and v is not None]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _young_gc_and_empty_cache() -> None:
    import gc

    import torch

    gc.collect(0)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def _quiet_sampler():
    """devinterp draws a tqdm bar per chain (the ingest has its own progress bar) and runs a
    full ``gc.collect()`` before and after every chain: 1.5 s each in a process that holds
    transformers, dbt and GX (measured here), more than the chains of a toy checkpoint. While
    it samples, the bar is disabled and the collection is of the youngest generation only
    (the CUDA cache is still emptied)."""
    from functools import partial

    import devinterp.slt.sampler as sampler
    from tqdm.auto import trange

    before = sampler.trange, sampler._gc_and_empty_cache
    sampler.trange = partial(trange, disable=True)
    sampler._gc_and_empty_cache = _young_gc_and_empty_cache
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        sampler.trange, sampler._gc_and_empty_cache = before


def estimate(
    model,
    data: np.ndarray,  # [n, T] int64 token ids (or any per-row ids the loss_fn reads)
    sampler: Sampler,
    *,
    device: str = "cpu",
    loss_fn: Callable | None = None,
) -> Estimate:
    """LLC of ``model`` at its current weights on ``data`` with devinterp's SGLD. ``loss_fn``:
    devinterp's per-token loss ``(model, input_ids [b, T]) -> [b, T-1]`` (None: next-token
    cross-entropy on the model's logits)."""
    from datasets import Dataset
    from devinterp.slt.llc import llc

    data = np.asarray(data, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] < 2:
        raise TdwError(f"llc: data must be [sequences, tokens >= 2], got shape {data.shape}")
    sampler.check(data.shape[0])
    ds = Dataset.from_dict({"input_ids": data}).with_format("torch")
    nbeta = sampler.nbeta(data.shape[1] - 1)
    init_batches = sampler.init_batches or max(1, data.shape[0] // sampler.batch_size)
    with tempfile.TemporaryDirectory(prefix="tdw-llc-") as tmp, _quiet_sampler() as caught:
        res = llc(
            model,
            ds,
            {},
            lr=sampler.epsilon,
            n_beta=nbeta,
            localization=sampler.localization,
            num_chains=sampler.chains,
            num_draws=sampler.draws,
            num_burnin_steps=sampler.burnin,
            batch_size=sampler.batch_size,
            num_init_loss_batches=init_batches,
            init_seed=sampler.seed,
            device=device,
            output_path=f"{tmp}/samples.zarr",
            loss_fn=loss_fn,
        ).load()
    failed = [str(w.message) for w in caught if "Chain failed" in str(w.message)]
    init = float(res["init_loss"])
    per_chain = np.asarray(res["llc_per_chain"].values, dtype=np.float64)  # [chains]
    trace = np.asarray(res["loss_trace"].values, dtype=np.float64)  # [chains, steps]
    out = Estimate(nbeta, init, [], [], [], [], [], [], [])
    limit = sampler.diverge_factor * max(abs(init), 1e-12)
    for c in range(trace.shape[0]):
        t = trace[c]
        fin = t[np.isfinite(t)]
        reason = None
        if fin.size < t.size:
            at = int(np.flatnonzero(~np.isfinite(t))[0])
            reason = f"loss not finite from SGLD step {at} of {t.size}"
        elif fin.size and fin.max() > limit:
            at = int(np.flatnonzero(t > limit)[0])
            reason = (
                f"loss {fin.max():.3g} above {sampler.diverge_factor:g} x the initial loss {init:.3g} at SGLD step {at}"
            )
        out.diverged.append(reason is not None)
        out.reasons.append(reason)
        out.llc.append(None if reason else _finite(per_chain[c]))
        out.trace_mean.append(_finite(fin.mean()) if fin.size else None)
        out.trace_std.append(_finite(fin.std()) if fin.size else None)
        out.trace_max.append(_finite(fin.max()) if fin.size else None)
        out.trace_last.append(_finite(t[-1]))
    if failed and not any(out.diverged):  # the sampler stopped a chain we could not place
        raise TdwError(f"llc: devinterp reported {failed[0]!r} but every trace is finite")
    return out
