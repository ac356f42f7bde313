"""Frame-level wrappers of ``analysis.graph`` for the dbt Python models of the graph marts.

Each function takes the rows of a staging/intermediate model as a pandas frame and returns
the rows of one derived model; a *graph* is one (model_id, step, task, ablation). Empty
inputs give empty frames with the declared columns and dtypes, so dbt can create the table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import graph as ag

GRAPH = ["model_id", "step", "task", "ablation"]
SERIES = ["model_id", "task", "ablation"]
CENTRALITIES = ["in_strength", "out_strength", "betweenness", "closeness", "pagerank", "katz"]


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def centrality_frame(edges: pd.DataFrame) -> pd.DataFrame:
    cols = {"model_id": "str", "step": "int64", "task": "str", "ablation": "str", "node": "str",
            **{c: "float64" for c in CENTRALITIES}}
    rows = []
    for key, g in edges.groupby(GRAPH, sort=True):
        for node, c in ag.centralities(g["src"].tolist(), g["dst"].tolist(), g["weight"].tolist()).items():
            rows.append({**dict(zip(GRAPH, key)), "node": node, **c})
    return pd.DataFrame(rows, columns=list(cols)).astype(cols) if rows else _empty(cols)


def distribution_frame(edges: pd.DataFrame, bins: int = 20) -> pd.DataFrame:
    scalar = ["n_edges", "mean", "max", "q05", "q25", "q50", "q75", "q95", "gini", "xmin", "n_tail",
              "tail_index", "lognormal_mu", "lognormal_sigma", "loglik_ratio", "vuong_z", "vuong_p"]
    cols = {"model_id": "str", "step": "int64", "task": "str", "ablation": "str",
            **{c: "float64" for c in scalar}, "hist_edges": "object", "hist_counts": "object"}
    rows = []
    for key, g in edges.groupby(GRAPH, sort=True):
        rows.append({**dict(zip(GRAPH, key)), **ag.weight_distribution(g["weight"].to_numpy(), bins=bins)})
    return pd.DataFrame(rows, columns=list(cols)).astype(cols) if rows else _empty(cols)


def stability_frame(centrality: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    measures = [f"spearman_{c}" for c in sorted(CENTRALITIES)]
    cols = {"model_id": "str", "task": "str", "ablation": "str", "step": "int64", "prev_step": "int64",
            "n_nodes": "int64", **{m: "float64" for m in measures}, "jaccard_spreaders": "float64",
            "jaccard_gatherers": "float64", "top_k": "int64"}
    rows = []
    for key, s in centrality.groupby(SERIES, sort=True):
        by_step = {step: g.set_index("node")[CENTRALITIES].to_dict("index")
                   for step, g in s.groupby("step", sort=True)}
        steps = sorted(by_step)
        for prev, cur in zip(steps, steps[1:]):
            r = ag.role_stability(by_step[prev], by_step[cur], k=k)
            rows.append({**dict(zip(SERIES, key)), "step": cur, "prev_step": prev, "top_k": k, **r})
    return pd.DataFrame(rows, columns=list(cols)).astype(cols) if rows else _empty(cols)


def circuits_frame(edges: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    cols = {"model_id": "str", "step": "int64", "task": "str", "ablation": "str", "path_rank": "int64",
            "path": "str", "n_components": "int64", "strength": "float64", "min_edge_weight": "float64"}
    rows = []
    for key, g in edges.groupby(GRAPH, sort=True):
        w = dict(zip(zip(g["src"], g["dst"]), g["weight"]))
        for rank, (path, strength) in enumerate(ag.strongest_paths(g["src"].tolist(), g["dst"].tolist(),
                                                                   g["weight"].tolist(), k=k), 1):
            rows.append({**dict(zip(GRAPH, key)), "path_rank": rank, "path": " -> ".join(path),
                         "n_components": len(path) - 2, "strength": strength,
                         "min_edge_weight": min(w[e] for e in zip(path, path[1:]))})
    return pd.DataFrame(rows, columns=list(cols)).astype(cols) if rows else _empty(cols)


def phases_frame(metrics: pd.DataFrame, columns: list[str], max_phases: int = 3,
                 penalty: float = 1.0, min_size: int = 2) -> pd.DataFrame:
    """Change-point phases per (model, task, ablation) series of the given metric columns;
    signal = 'graph_<task>_<ablation>'."""
    cols = {"model_id": "str", "signal": "str", "phase": "str", "phase_index": "int64",
            "start_step": "int64", "end_step": "int64", "n_checkpoints": "int64", "method": "str"}
    method = (f"optimal partition, z-scored {'+'.join(columns)}, <= {max_phases} segments, "
              f"penalty {penalty} * m * log T, min {min_size} checkpoints")
    rows = []
    for (model_id, task, ablation), s in metrics.groupby(SERIES, sort=True):
        s = s.sort_values("step")
        x = s[columns].to_numpy(dtype=np.float64)
        x = np.where(np.isfinite(x), x, np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0))
        x = np.nan_to_num(x)
        for p in ag.change_point_phases(s["step"].tolist(), x, max_phases, penalty, min_size):
            rows.append({"model_id": model_id, "signal": f"graph_{task}_{ablation}", **p, "method": method})
    return pd.DataFrame(rows, columns=list(cols)).astype(cols) if rows else _empty(cols)
