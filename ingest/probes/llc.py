"""The ``llc`` probe: the local learning coefficient of every checkpoint (``ingest.llc``,
devinterp's SGLD), whose critical points over log-step are the developmental stages of
Hoogland et al. 2024 (``marts.fct_llc``, signal ``llc`` in ``marts.fct_phases``).

Data: the perplexity probe's evaluation set (``ingest.evalsets``: the toy corpus's held-out
Markov text for the toy suite, by default with more items than perplexity uses; a file
otherwise), cut into windows of ``seq_len`` tokens (0: the shortest item's length), the
same windows for every checkpoint. Hyperparameters are the job's parameters (see
``ingest.llc.Sampler``), so the params hash that ``fct_llc`` carries tells comparable
series apart. Defaults (ε 1e-3, nβ = m / log m with m = 16 x 63 predicted tokens per
batch, i.e. 146, γ 300, 4 chains of 40 draws, no burn-in, batch 16 of 64 tokens) were set
on the toy suite (a few runs on trained checkpoints, not a search): with them the loss traces
level off early (the localization alone relaxes in 2 / (εγ) ≈ 7 steps; each chain's last
loss lies within a few percent of its mean) and no chain diverges; with devinterp's sequence-count nβ (5.8) or
γ 100 the traces were still climbing at 60 steps. The values are localized, tempered
quantities, comparable along a series at fixed hyperparameters, not absolute. They cost
4 x 40 forward+backward passes plus one forward pass over the data per chain for L(w*)
(``benchmarks/bench_llc.py``). ``llc`` is opt-in (``--probes llc`` or ``all``); ``tdw demo``
runs it with the other model probes.

Tables: ``raw.llc`` (one row per checkpoint: the mean and standard deviation over the
chains that did not diverge, nβ used, the data's hash) and
``raw.llc_chains`` (per chain: the estimate, NULL when it diverged, the reason, the loss
trace's mean, spread, maximum and last value). A job whose every chain diverged is a failed
job with a one-line reason; too little data for one batch is refused before any job.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from ingest import devices
from ingest.errors import TdwError
from ingest.evalsets import eval_set_for
from ingest.llc import SAMPLER_PARAMS, Sampler, estimate
from ingest.probes.base import Probe, Progress, TableSpec, between, finite, not_null
from ingest.probes.perplexity import torch_threads
from ingest.sources import Checkpoint

SUMMARY = TableSpec(
    "llc",
    (
        ("model_id", "VARCHAR"),
        ("step", "BIGINT"),
        ("dataset", "VARCHAR"),
        ("data_hash", "VARCHAR"),
        ("n_sequences", "INTEGER"),
        ("seq_len", "INTEGER"),
        ("n_beta", "DOUBLE"),
        ("init_loss", "DOUBLE"),
        ("n_chains", "INTEGER"),
        ("n_diverged", "INTEGER"),
        ("llc_mean", "DOUBLE"),
        ("llc_std", "DOUBLE"),
    ),
    ("model_id", "step", "dataset"),
    ("dataset",),
    "The checkpoint's LLC: mean and standard deviation over the chains that did not diverge "
    "(NULL when none is left; std NULL with one chain), nβ used, L(w*) on the data.",
    (
        not_null("n_beta", "init_loss", "n_chains", "n_diverged"),
        finite("init_loss"),
        finite("llc_mean"),
        finite("llc_std", 0),
        between("n_chains", 1),
        between("n_diverged", 0),
        between("n_beta", 0, strict=True),
    ),
)
CHAINS = TableSpec(
    "llc_chains",
    (
        ("model_id", "VARCHAR"),
        ("step", "BIGINT"),
        ("dataset", "VARCHAR"),
        ("chain", "INTEGER"),
        ("llc", "DOUBLE"),
        ("diverged", "BOOLEAN"),
        ("reason", "VARCHAR"),
        ("loss_mean", "DOUBLE"),
        ("loss_std", "DOUBLE"),
        ("loss_max", "DOUBLE"),
        ("loss_last", "DOUBLE"),
    ),
    ("model_id", "step", "dataset", "chain"),
    ("dataset",),
    "Per SGLD chain: its LLC estimate (NULL when it diverged, with the reason) and its loss "
    "trace's mean, standard deviation, maximum (finite steps) and last value.",
    (
        not_null("diverged"),
        between("chain", 0),
        finite("llc"),
        finite("loss_mean"),
        finite("loss_std", 0),
        finite("loss_max"),
        finite("loss_last"),
    ),
)


def windows(items, seq_len: int) -> np.ndarray:
    """[n, seq_len] consecutive windows of every item (0: the shortest item's length);
    shorter remainders are dropped."""
    items = [np.asarray(x, dtype=np.int64) for x in items]
    t = int(seq_len) or min(x.size for x in items)
    rows = [x[i : i + t] for x in items for i in range(0, x.size - t + 1, t)]
    return np.stack(rows) if rows else np.zeros((0, t), dtype=np.int64)


def data_hash(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype="<i8").tobytes()).hexdigest()[:16]


class LLCProbe(Probe):
    name = "llc"
    version = "1"
    runs_model = True
    opt_in = True  # chains x draws forward+backward passes per checkpoint: run when named
    defaults = {
        "eval_set": "toy",
        "dataset": "",
        "n_items": 256,
        "item_len": 0,
        "eval_seed": 20240,
        "max_items": 0,
        "seq_len": 0,
        "epsilon": 1e-3,
        "n_beta": 0.0,
        "localization": 300.0,
        "chains": 4,
        "draws": 40,
        "burnin": 0,
        "batch_size": 16,
        "init_batches": 0,
        "seed": 100,
        "diverge_factor": 10.0,
        "device": "auto",
        "dtype": "float32",
        "cpu_threads": 1,
    }
    tables = (SUMMARY, CHAINS)

    def _data(self, checkpoint: Checkpoint, params: dict[str, Any]) -> tuple[str, np.ndarray]:
        es = eval_set_for(checkpoint, params)
        x = windows(es.items, int(params["seq_len"]))
        if x.shape[1] < 2:
            raise TdwError(f"llc: sequences of {x.shape[1]} token(s) have nothing to predict (seq_len >= 2)")
        return es.name, x

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        if str(params["batch_size"]) == "auto":
            raise TdwError("llc batch_size must be a number (nβ and the estimate depend on it)")
        devices.resolve_device(str(params["device"]))
        devices.torch_dtype(str(params["dtype"]))
        _, x = self._data(checkpoint, params)
        Sampler.from_params(params).check(x.shape[0])

    def context(self, source, steps: list[int], params: dict[str, Any]) -> dict[str, Any]:
        return {"data": self._data(source.checkpoint(steps[0]), params)} if steps else {}

    def run(
        self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any], progress: Progress | None = None
    ) -> dict[str, pd.DataFrame]:
        name, x = context.get("data") or self._data(checkpoint, params)
        sampler = Sampler.from_params(params)
        with torch_threads(int(params["cpu_threads"])):
            model = devices.load(checkpoint, params)
            if progress:
                progress(f"llc: {sampler.chains} chains x {sampler.draws + sampler.burnin} SGLD steps")
            est = estimate(model, x, sampler, device=str(devices.device_of(model)))
            del model
        key = {"model_id": checkpoint.model_id, "step": checkpoint.step, "dataset": name}
        if all(est.diverged):
            raise TdwError(
                f"llc: SGLD diverged in all {sampler.chains} chains ({est.reasons[0]}); "
                f"lower epsilon (now {sampler.epsilon:g}) or raise localization"
            )
        ok = est.ok
        summary = {
            **key,
            "data_hash": data_hash(x),
            "n_sequences": int(x.shape[0]),
            "seq_len": int(x.shape[1]),
            "n_beta": est.n_beta,
            "init_loss": est.init_loss,
            "n_chains": sampler.chains,
            "n_diverged": int(sum(est.diverged)),
            "llc_mean": float(np.mean(ok)) if ok else None,
            "llc_std": float(np.std(ok, ddof=1)) if len(ok) > 1 else None,
        }
        chains = pd.DataFrame(
            {
                **{k: [v] * sampler.chains for k, v in key.items()},
                "chain": np.arange(sampler.chains, dtype=np.int32),
                "llc": pd.array(est.llc, dtype="Float64"),
                "diverged": est.diverged,
                "reason": pd.array(est.reasons, dtype="string"),
                "loss_mean": pd.array(est.trace_mean, dtype="Float64"),
                "loss_std": pd.array(est.trace_std, dtype="Float64"),
                "loss_max": pd.array(est.trace_max, dtype="Float64"),
                "loss_last": pd.array(est.trace_last, dtype="Float64"),
            }
        )
        return {SUMMARY.name: pd.DataFrame([summary])[SUMMARY.column_names], CHAINS.name: chains[CHAINS.column_names]}


assert set(SAMPLER_PARAMS) <= set(LLCProbe.defaults)
