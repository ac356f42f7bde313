"""Displacement probe (METHODS §B: the stationarity signal, the paper's early-stop claim).

For every selected tensor (globs and aliases, default: all of them) and checkpoint t with
a previous checkpoint p, it records

    disp     = ‖w_t − w_p‖₂                  (float64 accumulation)
    rel_disp = disp / ‖w_p‖₂                 (NULL when ‖w_p‖ = 0)
    msd_step = disp² / N                     (mean square displacement of one interval)
    max_abs  = max_k |w_t,k − w_p,k|

with p the previous step of this ingest run's sorted steps (``context``), or, for the
first step of a run, the source's previous available step (so incremental ingests and
single-revision reruns still get a row); the first checkpoint of a model gets none.
``prev_step`` is stored, since the gap between ingested checkpoints varies (log-spaced,
then linear in Pythia).

Memory: tensors are streamed one name at a time, reading the same tensor from the two
checkpoints and reducing it in chunks, so no more than two checkpoints' copies of one
tensor are held (never two whole checkpoints). Non-finite values: an element that is not
finite in either checkpoint is left out of every sum and counted in ``n_nonfinite``.
"""
from __future__ import annotations

import bisect
from typing import Any

import numpy as np
import pandas as pd

from ingest.probes.base import Probe, Progress
from ingest.schema import TableSpec, between, finite, greater
from ingest.sources import Checkpoint
from ingest.tensors import select_tensors

CHUNK = 1 << 20


def displacement(w: np.ndarray, w_prev: np.ndarray, chunk: int = CHUNK) -> dict[str, float]:
    """Norms of w − w_prev and of each, over elements finite in both; w, w_prev [*shape]."""
    a, b = w.reshape(-1), w_prev.reshape(-1)
    d2 = n2 = p2 = 0.0
    mx, n_bad = 0.0, 0
    for i in range(0, a.size, chunk):
        x, y = a[i:i + chunk].astype(np.float64), b[i:i + chunk].astype(np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.all():
            n_bad += int(ok.size - np.count_nonzero(ok))
            x, y = x[ok], y[ok]
        diff = x - y
        d2 += float(np.dot(diff, diff))
        n2 += float(np.dot(x, x))
        p2 += float(np.dot(y, y))
        if diff.size:
            mx = max(mx, float(np.abs(diff).max()))
    n = a.size - n_bad
    disp = d2 ** 0.5
    return {"n": int(a.size), "n_nonfinite": n_bad, "disp": disp, "norm": n2 ** 0.5,
            "norm_prev": p2 ** 0.5, "rel_disp": disp / p2 ** 0.5 if p2 > 0 else None,
            "msd_step": d2 / n if n else None, "max_abs": mx}


def previous_step(step: int, run_steps: list[int], available: list[int]) -> int | None:
    """The checkpoint a step is compared with: previous in this run, else previous available."""
    for pool in (sorted(run_steps), sorted(available)):
        i = bisect.bisect_left(pool, step)
        if i > 0:
            return pool[i - 1]
    return None


class DisplacementProbe(Probe):
    name = "displacement"
    version = "1"
    defaults = {"tensors": "*"}
    tables = (
        TableSpec("displacement", (
            ("model_id", "VARCHAR"), ("step", "BIGINT"), ("tensor_name", "VARCHAR"),
            ("prev_step", "BIGINT"), ("n", "BIGINT"), ("n_nonfinite", "BIGINT"),
            ("disp", "DOUBLE"), ("norm", "DOUBLE"), ("norm_prev", "DOUBLE"),
            ("rel_disp", "DOUBLE"), ("msd_step", "DOUBLE"), ("max_abs", "DOUBLE"),
        ), ("model_id", "step", "tensor_name"), ("tensor_name",),
            "Displacement of one tensor between a checkpoint and the previous ingested one.",
            # sums over the elements finite in both; rel_disp/msd_step NULL when undefined
            (greater("step", "prev_step"), between("n", 1), between("n_nonfinite", 0), finite("disp", 0),
             between("rel_disp", 0), between("msd_step", 0), between("max_abs", 0))),
    )

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        select_tensors(checkpoint.tensors().names(), params["tensors"])

    def context(self, source, steps: list[int], params: dict[str, Any]) -> dict[str, Any]:
        try:
            available = source.steps()
        except Exception:  # a source that cannot list (offline hub): this run's steps only
            available = []
        return {"source": source, "steps": sorted(steps), "available": available}

    def run(self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any],
            progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        cols = list(self.tables[0].column_names)
        source = context.get("source")
        prev = previous_step(checkpoint.step, context.get("steps", []), context.get("available", []))
        if source is None or prev is None:
            return {"displacement": pd.DataFrame(columns=cols)}
        tf, tf_prev = checkpoint.tensors(), source.checkpoint(prev).tensors()
        names_prev = set(tf_prev.names())
        rows = []
        for name in select_tensors(tf.names(), params["tensors"]):
            if name not in names_prev:
                continue
            if progress:
                progress(name)
            w, w_prev = tf.read(name), tf_prev.read(name)              # [*shape] each
            if w.shape != w_prev.shape:
                continue
            rows.append({"model_id": checkpoint.model_id, "step": checkpoint.step, "tensor_name": name,
                         "prev_step": prev, **displacement(w, w_prev)})
            del w, w_prev
        return {"displacement": pd.DataFrame(rows, columns=cols)}
