"""Covariance-rank probe (Nicolini et al. 2024, §4.3 and Figure 7; METHODS §B).

Draw V = [v_1 .. v_B] with columns v_b ~ N(0, I_d) (B from 16 to 64, seeded by
(seed, B, d), so every checkpoint of a model sees the same V), form X = W_U V
([vocab, B]: B vectors in token space) and its covariance over the batch dimension,

    C = Xc Xc^T / (B - 1),  Xc = X - mean over the B columns      # [vocab, vocab]

(``numpy.cov(X)``: rows are variables, columns observations). C has rank at most B - 1,
and its non-zero eigenvalues are those of the B x B Gram matrix
G = H X^T X H / (B - 1) (H = I - 11^T/B centres the columns), which is what is computed:
X^T X is accumulated over row chunks of W_U in float64, never forming C or all of X.
The B eigenvalues (descending, ≥ 0 up to rounding) are stored per (batch size, seed), so
``rank(C; tol) = #{λ > tol}`` for any tolerance is a SQL query (``fct_covariance_rank``:
0.1..1.0, the paper's range; the same count as ``numpy.linalg.matrix_rank(C, tol=tol)``).

Only W_U is read, through ``checkpoint.tensors()``; the model is never loaded. A tensor
that is not a 2-D [vocab, d] matrix is refused; one stored as [d, vocab] (its second axis
is the config's vocab_size) is transposed. Non-finite weights: the row records
``n_nonfinite`` and NULL eigenvalues, flagged downstream and kept out of the ranks.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ingest.errors import TdwError
from ingest.probes.base import Probe, Progress
from ingest.schema import TableSpec, between, finite
from ingest.sources import Checkpoint
from ingest.tensors import select_tensors

CHUNK_ROWS = 8192


def _ints(value: Any, what: str) -> list[int]:
    vals = value if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        out = [int(v) for v in vals if str(v).strip()]
    except ValueError:
        raise TdwError(f"covariance parameter {what} must be a comma-separated list of integers, "
                       f"got {value!r}") from None
    if not out:
        raise TdwError(f"covariance parameter {what} is empty")
    return out


def gaussian_batch(d: int, batch_size: int, seed: int) -> np.ndarray:
    """[d, B] standard normal, the same for every checkpoint of a given (d, B, seed)."""
    return np.random.default_rng([seed, batch_size, d]).standard_normal((d, batch_size))


def covariance_eigenvalues(w: np.ndarray, v: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Eigenvalues (descending) of cov over the batch of X = w @ v; w [vocab, d], v [d, B] -> [B]."""
    b = v.shape[1]
    gram = np.zeros((b, b))                                          # [B, B] = X^T X
    for i in range(0, w.shape[0], chunk_rows):
        x = w[i:i + chunk_rows].astype(np.float64) @ v               # [rows, B]
        gram += x.T @ x
    h = np.eye(b) - 1.0 / b                                          # [B, B] column centring
    g = h @ gram @ h / (b - 1)
    return np.clip(np.linalg.eigvalsh((g + g.T) / 2)[::-1], 0.0, None)


def rank_at(eigenvalues: np.ndarray, tol: float) -> int:
    return int(np.count_nonzero(eigenvalues > tol))


def as_unembedding(w: np.ndarray, name: str, vocab_size: int | None) -> np.ndarray:
    """W_U as [vocab, d]; a clear error when the tensor does not fit."""
    if w.ndim != 2 or min(w.shape) < 1:
        raise TdwError(f"tensor {name!r} has shape {tuple(w.shape)}: the covariance probe needs a "
                       "2-D [vocab, d] matrix")
    if vocab_size and w.shape[0] != vocab_size:
        if w.shape[1] == vocab_size:
            return w.T
        raise TdwError(f"tensor {name!r} has shape {tuple(w.shape)}, neither axis is the vocabulary "
                       f"size {vocab_size}")
    return w


class CovarianceProbe(Probe):
    name = "covariance"
    version = "1"
    defaults = {"tensors": "unembed", "batch_sizes": "16,32,48,64", "seeds": "0"}
    tables = (
        TableSpec("covariance_eigs", (
            ("model_id", "VARCHAR"), ("step", "BIGINT"), ("tensor_name", "VARCHAR"),
            ("batch_size", "INTEGER"), ("seed", "BIGINT"), ("vocab", "BIGINT"), ("d", "BIGINT"),
            ("n_nonfinite", "BIGINT"), ("trace", "DOUBLE"), ("eigenvalues", "DOUBLE[]"),
        ), ("model_id", "step", "tensor_name", "batch_size", "seed"), ("tensor_name",),
            "Eigenvalues (descending) of the batch covariance of W_U V, V ~ N(0, I_d) seeded.",
            # trace and eigenvalues are NULL when the tensor has non-finite values
            (between("batch_size", 2), between("vocab", 1), between("d", 1), between("n_nonfinite", 0),
             finite("trace", 0))),
    )

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        for b in _ints(params["batch_sizes"], "batch_sizes"):
            if b < 2:
                raise TdwError(f"covariance batch size {b} is too small (need >= 2; the paper uses 16..64)")
        _ints(params["seeds"], "seeds")
        tf = checkpoint.tensors()
        vocab = checkpoint.config().get("vocab_size")
        for name in select_tensors(tf.names(), params["tensors"]):
            shape = tf.shape(name)
            if len(shape) != 2:
                raise TdwError(f"tensor {name!r} has shape {shape}: the covariance probe needs a "
                               "2-D [vocab, d] matrix")
            if vocab and vocab not in shape:
                raise TdwError(f"tensor {name!r} has shape {shape}, neither axis is the vocabulary "
                               f"size {vocab}")

    def run(self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any],
            progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        tf = checkpoint.tensors()
        vocab = checkpoint.config().get("vocab_size")
        rows = []
        for name in select_tensors(tf.names(), params["tensors"]):
            if progress:
                progress(name)
            w = as_unembedding(tf.read(name), name, vocab)             # [vocab, d]
            bad = int(w.size - np.count_nonzero(np.isfinite(w)))
            for b in _ints(params["batch_sizes"], "batch_sizes"):
                for seed in _ints(params["seeds"], "seeds"):
                    eig = None if bad else covariance_eigenvalues(w, gaussian_batch(w.shape[1], b, seed))
                    rows.append({"model_id": checkpoint.model_id, "step": checkpoint.step,
                                 "tensor_name": name, "batch_size": b, "seed": seed,
                                 "vocab": w.shape[0], "d": w.shape[1], "n_nonfinite": bad,
                                 "trace": None if eig is None else float(eig.sum()), "eigenvalues": eig})
            del w
        return {"covariance_eigs": pd.DataFrame(rows)[list(self.tables[0].column_names)]}
