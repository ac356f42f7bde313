"""The residual probe's raw tables and how one checkpoint's results become their rows.

Every table is keyed by (model_id, step, ...) and a job owns its whole checkpoint
(``replace_by`` empty): rerunning a checkpoint replaces all its residual rows. ``layer``
is always the sample-point index (see ``sites``). The expectations checked before a job
commits leave NULLs alone: transitions are NULL on a model's last point, a correlation is
NULL (NaN) for a constant unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ingest.probes.residual.metrics import QUANTILES, Finalized, _qname, sample_scalars
from ingest.probes.residual.pca import Basis, trajectories
from ingest.probes.residual.sites import Layout
from ingest.prompts import PromptSet
from ingest.schema import TableSpec, between

_ID = (("model_id", "VARCHAR"), ("step", "BIGINT"))
_D = "DOUBLE"
POINT_METRICS = (
    "velocity",
    *(f"velocity_{_qname(q)}" for q in (0.25, 0.5, 0.75)),
    "acceleration",
    *(f"acceleration_{_qname(q)}" for q in (0.25, 0.5, 0.75)),
    "cos_state",
    "cos_velocity",
    "participation_ratio",
    *(f"participation_ratio_{_qname(q)}" for q in (0.25, 0.5, 0.75)),
    "frac_above_rms",
    "norm",
    *(f"norm_{_qname(q)}" for q in (0.25, 0.5, 0.75)),
    "norm_growth",
    "continuity",
    *(f"continuity_{_qname(q)}" for q in QUANTILES),
    "continuity_rotated",
    *(f"continuity_rotated_{_qname(q)}" for q in QUANTILES),
    "mutual_info",
)

TABLES = (
    TableSpec(
        "residual_points",
        _ID
        + (
            ("layer", "INTEGER"),
            ("block", "INTEGER"),
            ("site", "VARCHAR"),
            ("positions", "VARCHAR"),
            ("n_samples", "BIGINT"),
            ("rms_fraction", _D),
            *((m, _D) for m in POINT_METRICS),
        ),
        ("model_id", "step", "layer"),
        (),
        "Residual-stream metrics per sample point, summarised over samples; transitions "
        "(velocity, continuity, MI...) sit on the row of their first point.",
        (
            between("n_samples", 1),
            between("rms_fraction", 0, 1),
            between("frac_above_rms", 0, 1),
            between("participation_ratio", 0, 1),
            between("velocity", 0),
            between("norm", 0),
            between("continuity", -1, 1),
            between("mutual_info", 0),
        ),
    ),
    TableSpec(
        "residual_unit_continuity",
        _ID
        + (
            ("layer", "INTEGER"),
            ("unit", "INTEGER"),
            ("continuity", _D),
            ("continuity_rotated", _D),
            ("mutual_info", _D),
        ),
        ("model_id", "step", "layer", "unit"),
        (),
        "Per unit: Pearson r between point layer and layer+1 over samples, the same in a "
        "randomly rotated basis, and the Gaussian MI in nats.",
        (between("continuity", -1, 1), between("continuity_rotated", -1, 1), between("mutual_info", 0)),
    ),
    TableSpec(
        "residual_unit_rotations",
        _ID
        + (
            ("unit", "INTEGER"),
            ("n_samples", "BIGINT"),
            ("n_points", "INTEGER"),
            ("rotations", _D),
            ("rotations_abs", _D),
            ("rotations_perm", _D),
            ("rotations_perm_abs", _D),
        ),
        ("model_id", "step", "unit"),
        (),
        "Per unit: mean (signed, absolute) rotation count of its phase portrait over the "
        "points, and with the point order permuted (control).",
        (between("n_samples", 1), between("n_points", 1), between("rotations_abs", 0)),
    ),
    TableSpec(
        "residual_pca",
        _ID
        + (
            ("basis", "VARCHAR"),
            ("component", "INTEGER"),
            ("basis_step", "BIGINT"),
            ("explained_variance", _D),
            ("explained_ratio", _D),
        ),
        ("model_id", "step", "basis", "component"),
        (),
        "Variance of this checkpoint's states along each component of its own PCA basis "
        "or of the basis shared across checkpoints (fit at basis_step).",
        (between("component", 1), between("explained_variance", 0), between("explained_ratio", 0, 1)),
    ),
    TableSpec(
        "residual_trajectory",
        _ID
        + (
            ("basis", "VARCHAR"),
            ("prompt_index", "INTEGER"),
            ("layer", "INTEGER"),
            ("pc1", _D),
            ("pc2", _D),
            ("pc3", _D),
        ),
        ("model_id", "step", "basis", "prompt_index", "layer"),
        (),
        "Last-token trajectory coordinates on the first three components; prompt_index -1 is the mean trajectory.",
        (between("prompt_index", -1),),
    ),
    TableSpec(
        "residual_convergence",
        _ID
        + (
            ("layer", "INTEGER"),
            ("n_pairs", "INTEGER"),
            ("distance_mean", _D),
            ("distance_median", _D),
            ("ratio_mean", _D),
            ("ratio_median", _D),
            ("frac_contracting", _D),
            ("relative_ratio_mean", _D),
        ),
        ("model_id", "step", "layer"),
        (),
        "Distances between trajectories of prompt pairs at each point and their ratio from "
        "this point to the next (< 1: converging).",
        (between("n_pairs", 0), between("distance_mean", 0), between("frac_contracting", 0, 1)),
    ),
    TableSpec(
        "residual_attractor",
        _ID
        + (
            ("perturb_layer", "INTEGER"),
            ("grid_index", "INTEGER"),
            ("grid_pc1", _D),
            ("grid_pc2", _D),
            ("layer", "INTEGER"),
            ("n_prompts", "INTEGER"),
            ("distance_mean", _D),
            ("return_ratio_mean", _D),
            ("return_ratio_median", _D),
            ("relative_ratio_mean", _D),
            ("pc1_mean", _D),
            ("pc2_mean", _D),
        ),
        ("model_id", "step", "perturb_layer", "grid_index", "layer"),
        (),
        "A state moved to a PCA-plane grid point at perturb_layer: distance to the "
        "unperturbed trajectory at each later layer, relative to the initial displacement.",
        (between("n_prompts", 1), between("distance_mean", 0)),
    ),
    TableSpec(
        "residual_prompt_points",
        _ID
        + (
            ("prompt_index", "INTEGER"),
            ("layer", "INTEGER"),
            ("velocity", _D),
            ("participation_ratio", _D),
        ),
        ("model_id", "step", "prompt_index", "layer"),
        (),
        "Per prompt and sample point, at the prompt's last token: the per-sample values the "
        "emergence bootstrap resamples over prompts (velocity sits on its first point's row).",
        (between("velocity", 0), between("participation_ratio", 0, 1)),
    ),
    TableSpec(
        "residual_prompts",
        _ID
        + (
            ("prompt_index", "INTEGER"),
            ("n_tokens", "INTEGER"),
            ("token_ids", "INTEGER[]"),
            ("prompt_source", "VARCHAR"),
            ("prompt_digest", "VARCHAR"),
            ("perturbed", "BOOLEAN"),
        ),
        ("model_id", "step", "prompt_index"),
        (),
        "The prompts the residual metrics were computed on (token ids).",
        (between("n_tokens", 1),),
    ),
)
COLUMNS = {t.name: t.column_names for t in TABLES}


def _df(name: str, rows: dict) -> pd.DataFrame:
    return pd.DataFrame(rows)[COLUMNS[name]]


@dataclass(frozen=True)
class Computed:
    """What the probe computed on one checkpoint, the input of :func:`frame`."""

    layout: Layout
    prompts: PromptSet
    fin: Finalized  # the streamed per-point and per-unit statistics
    states: np.ndarray  # [prompts, points, d] last-token stream
    bases: dict[str, tuple[Basis, int]]  # "own" / "shared" -> (basis, the step it was fitted at)
    conv: dict  # attractor.pair_convergence
    runs: dict  # perturbed point -> (grid, attractor.perturbation_runs)
    perturbed: np.ndarray  # indices of the perturbed prompts


def frame(checkpoint, params: dict, c: Computed) -> dict[str, pd.DataFrame]:
    """Rows of every residual table for one checkpoint."""
    layout, ps, fin, states = c.layout, c.prompts, c.fin, c.states
    bases, conv, runs, perturbed = c.bases, c.conv, c.runs, c.perturbed
    key = {"model_id": checkpoint.model_id, "step": checkpoint.step}
    n_pts, d = layout.n_points, layout.d_model
    layers = np.arange(n_pts, dtype=np.int32)
    out = {
        "residual_points": _df(
            "residual_points",
            {
                **key,
                "layer": layers,
                "block": [p.block for p in layout.points],
                "site": [p.site for p in layout.points],
                "positions": params["positions"],
                "n_samples": fin.n_samples,
                "rms_fraction": float(params["rms_fraction"]),
                **{m: fin.points[m] for m in POINT_METRICS},
            },
        )
    }
    lu = np.repeat(np.arange(n_pts - 1, dtype=np.int32), d)
    out["residual_unit_continuity"] = _df(
        "residual_unit_continuity",
        {
            **key,
            "layer": lu,
            "unit": np.tile(np.arange(d, dtype=np.int32), n_pts - 1),
            "continuity": fin.unit_continuity.ravel(),
            "continuity_rotated": fin.unit_continuity_rotated.ravel(),
            "mutual_info": fin.unit_mi.ravel(),
        },
    )
    out["residual_unit_rotations"] = _df(
        "residual_unit_rotations",
        {
            **key,
            "unit": np.arange(d, dtype=np.int32),
            "n_samples": fin.n_samples,
            "n_points": n_pts,
            **fin.unit_rotations,
        },
    )
    pca_rows, traj = [], []
    for name, (basis, basis_step) in bases.items():
        var, ratio = (basis.explained_variance, basis.explained_ratio) if name == "own" else basis.variance_on(states)
        for c in range(len(var)):
            pca_rows.append(
                {
                    **key,
                    "basis": name,
                    "component": c + 1,
                    "basis_step": basis_step,
                    "explained_variance": var[c],
                    "explained_ratio": ratio[c],
                }
            )
        coords, mean = trajectories(states, basis)  # [prompts, points, k], [points, k]
        allc = np.concatenate([mean[None], coords])  # row 0: the mean trajectory
        pidx = np.repeat(np.arange(-1, len(coords), dtype=np.int32), n_pts)
        flat = allc.reshape(-1, allc.shape[-1])
        traj.append(
            pd.DataFrame(
                {
                    **key,
                    "basis": name,
                    "prompt_index": pidx,
                    "layer": np.tile(layers, len(allc)),
                    "pc1": flat[:, 0],
                    "pc2": flat[:, 1],
                    "pc3": flat[:, 2],
                }
            )
        )
    out["residual_pca"] = _df("residual_pca", pd.DataFrame(pca_rows).to_dict("list"))
    out["residual_trajectory"] = pd.concat(traj, ignore_index=True)[COLUMNS["residual_trajectory"]]
    out["residual_convergence"] = _df(
        "residual_convergence",
        {
            **key,
            "layer": layers,
            "n_pairs": conv["n_pairs"],
            "distance_mean": conv["distance"],
            "distance_median": conv["distance_median"],
            "ratio_mean": conv["ratio"],
            "ratio_median": conv["ratio_median"],
            "frac_contracting": conv["frac_contracting"],
            "relative_ratio_mean": conv["relative_ratio"],
        },
    )
    att = []
    for at, (grid, r) in runs.items():
        g = len(grid)
        later = layers[at:]
        gi = np.repeat(np.arange(g, dtype=np.int32), len(later))
        att.append(
            pd.DataFrame(
                {
                    **key,
                    "perturb_layer": at,
                    "grid_index": gi,
                    "grid_pc1": grid[gi, 0],
                    "grid_pc2": grid[gi, 1],
                    "layer": np.tile(later, g),
                    "n_prompts": r["n_prompts"][gi],
                    "distance_mean": r["distance"][:, at:].ravel(),
                    "return_ratio_mean": r["return_ratio"][:, at:].ravel(),
                    "return_ratio_median": r["return_ratio_median"][:, at:].ravel(),
                    "relative_ratio_mean": r["relative_ratio"][:, at:].ravel(),
                    "pc1_mean": r["pc1"][:, at:].ravel(),
                    "pc2_mean": r["pc2"][:, at:].ravel(),
                }
            )
        )
    out["residual_attractor"] = (
        pd.concat(att, ignore_index=True)[COLUMNS["residual_attractor"]]
        if att
        else pd.DataFrame(columns=COLUMNS["residual_attractor"])
    )
    per_prompt = sample_scalars(torch.from_numpy(states).float(), float(params["rms_fraction"]))
    n_prompts = states.shape[0]
    out["residual_prompt_points"] = _df(
        "residual_prompt_points",
        {
            **key,
            "prompt_index": np.repeat(np.arange(n_prompts, dtype=np.int32), n_pts),
            "layer": np.tile(layers, n_prompts),
            "velocity": per_prompt["velocity"].double().numpy().ravel(),
            "participation_ratio": per_prompt["participation_ratio"].double().numpy().ravel(),
        },
    )
    pert = set(int(i) for i in perturbed)
    out["residual_prompts"] = _df(
        "residual_prompts",
        {
            **key,
            "prompt_index": np.arange(len(ps), dtype=np.int32),
            "n_tokens": [len(p) for p in ps.prompts],
            "token_ids": [np.asarray(p, dtype=np.int32) for p in ps.prompts],
            "prompt_source": ps.source,
            "prompt_digest": ps.digest(),
            "perturbed": [i in pert for i in range(len(ps))],
        },
    )
    return out
