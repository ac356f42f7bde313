"""Frame-level wrappers of ``analysis.graph`` for the dbt Python models of the graph marts.

Each function takes the rows of a staging/intermediate model and returns the rows of one
derived model; a *graph* is one (model_id, step, task, ablation). Empty inputs give empty
frames with the declared columns and dtypes, so dbt can create the table.

At Pythia scale one graph holds up to ~1M edges (12B: 36 layers x (40 heads + MLP)) and a
suite holds 154 checkpoints x 10 sizes of them, so the per-graph functions take either a
frame (grouped here; small inputs, tests) or an iterable of Arrow record batches ordered by
the graph key, read from DuckDB (``changed_graph_batches``): then one graph at a time is in
memory, and the outputs (one row per node, graph or path) are the only thing that grows.

Incremental builds: every per-graph output row carries ``edges_hash``, an order-independent
hash of its graph's edges (``bit_xor(hash(src, dst, weight))`` in DuckDB).
``changed_graph_batches`` compares the current hashes with those stored in the model's own
table, deletes the stored rows of graphs that changed or vanished, and streams the edges of
the graphs that are new or changed; a graph whose output is empty (no embed -> logits path)
stores nothing and is recomputed each build. The result of a sequence of incremental
builds is the table a full refresh gives, row for row.

Pure functions of frames and a DuckDB connection: nothing here imports ``warehouse``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from analysis import graph as ag

GRAPH = ["model_id", "step", "task", "ablation"]
SERIES = ["model_id", "task", "ablation"]
CENTRALITIES = ["in_strength", "out_strength", "betweenness", "closeness", "pagerank", "katz"]
HASH = "edges_hash"
BATCH_ROWS = 1 << 17
Edges = "pd.DataFrame | Iterable"  # a frame, or Arrow record batches ordered by GRAPH


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def graphs(edges: Edges) -> Iterator[tuple[tuple, pd.DataFrame]]:
    """(key, edges of one graph) in key order, from a frame or from record batches (pyarrow
    RecordBatch or pandas frames) ordered by GRAPH; only one graph is held at a time."""
    if isinstance(edges, pd.DataFrame):
        for key, g in edges.groupby(GRAPH, sort=True):
            yield tuple(key), g
        return
    key, parts = None, []
    for batch in edges:
        df = batch if isinstance(batch, pd.DataFrame) else batch.to_pandas()
        if df.empty:
            continue
        k = df[GRAPH]
        change = np.ones(len(df), dtype=bool)
        change[1:] = (k.iloc[1:].to_numpy() != k.iloc[:-1].to_numpy()).any(axis=1)
        bounds = np.r_[np.flatnonzero(change), len(df)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            seg = df.iloc[a:b]
            k0 = tuple(v.item() if hasattr(v, "item") else v for v in seg.iloc[0][GRAPH])
            if k0 != key:
                if parts:
                    yield key, pd.concat(parts, ignore_index=True)
                key, parts = k0, []
            parts.append(seg)
    if parts:
        yield key, pd.concat(parts, ignore_index=True)


class HashedBatches:
    """Record batches of edges that carry ``edges_hash`` (``changed_graph_batches``): the
    outputs made of them have the column even when no graph changed, so an empty increment
    has the table's columns."""

    def __init__(self, batches: Iterable) -> None:
        self._batches = batches

    def __iter__(self) -> Iterator:
        return iter(self._batches)


def per_graph(edges: Edges, fn: Callable[[pd.DataFrame], list[dict]], cols: dict[str, str]) -> pd.DataFrame:
    """The rows ``fn`` makes of each graph, prefixed by the graph key (and followed by the
    graph's ``edges_hash`` where the input has one); typed as ``cols``."""
    rows, hashed = [], isinstance(edges, HashedBatches)
    for key, g in graphs(edges):
        tag = dict(zip(GRAPH, key))
        if HASH in g.columns:
            hashed = True
            tag[HASH] = g[HASH].iloc[0]
        rows.extend({**tag, **r} for r in fn(g))
    cols = {**cols, HASH: "uint64"} if hashed else cols
    return pd.DataFrame(rows, columns=list(cols)).astype(cols) if rows else _empty(cols)


def changed_graph_batches(
    con, edges, this: str | None, batch_rows: int = BATCH_ROWS, version: str = ""
) -> HashedBatches:
    """Arrow record batches of the edges (with ``edges_hash``) of every graph of ``edges``
    (a DuckDB relation) that ``this`` (the model's existing table; None: a full build) does
    not hold with the same hash, ordered by GRAPH. Stored rows of changed or vanished graphs
    are deleted from ``this`` first (inside dbt's transaction; all of them if ``this`` predates
    the ``edges_hash`` column, which dbt then appends: ``on_schema_change="append_new_columns"``).
    ``version`` (the model's algorithm version) enters the hash, so a change of how a model
    computes its rows recomputes every graph once. Lazy: nothing runs until the batches are
    iterated."""
    return HashedBatches(_changed(con, edges, this, batch_rows, version))


def _changed(con, edges, this: str | None, batch_rows: int, version: str = "") -> Iterator:
    src = edges.sql_query()
    keys = ", ".join(GRAPH)
    salt = f", '{version}'" if version else ""
    hashes = f"select {keys}, bit_xor(hash(src, dst, weight{salt})) as {HASH} from ({src}) group by {keys}"
    if this is not None and HASH not in {c.lower() for c in con.sql(f"select * from {this} limit 0").columns}:
        con.execute(f"delete from {this}").fetchall()  # a table from before edges_hash: rebuild every graph
        this = None
    if this is None:
        todo = hashes
    else:
        same = " and ".join(f"t.{c} = h.{c}" for c in [*GRAPH, HASH])
        con.execute(f"delete from {this} as t where not exists (select 1 from ({hashes}) as h where {same})").fetchall()
        todo = f"select * from ({hashes}) as h where not exists (select 1 from {this} as t where {same})"
    query = f"select e.*, h.{HASH} from ({src}) as e inner join ({todo}) as h using ({keys}) order by {keys}"
    reader = con.sql(query).to_arrow_reader(batch_rows)
    yield from reader


def centrality_frame(edges: Edges) -> pd.DataFrame:
    cols = {
        "model_id": "str",
        "step": "int64",
        "task": "str",
        "ablation": "str",
        "node": "str",
        **{c: "float64" for c in CENTRALITIES},
    }

    def rows(g: pd.DataFrame) -> list[dict]:
        cent = ag.centralities(g["src"].to_numpy(), g["dst"].to_numpy(), g["weight"].to_numpy())
        return [{"node": node, **c} for node, c in cent.items()]

    return per_graph(edges, rows, cols)


def distribution_frame(edges: Edges, bins: int = 20) -> pd.DataFrame:
    scalar = [
        "n_edges",
        "mean",
        "max",
        "q05",
        "q25",
        "q50",
        "q75",
        "q95",
        "gini",
        "xmin",
        "n_tail",
        "tail_index",
        "tail_index_se",
        "ks_distance",
        "lognormal_mu",
        "lognormal_sigma",
        "loglik_ratio",
        "vuong_z",
        "vuong_p",
    ]
    cols = {
        "model_id": "str",
        "step": "int64",
        "task": "str",
        "ablation": "str",
        **{c: "float64" for c in scalar},
        "hist_edges": "object",
        "hist_counts": "object",
    }
    return per_graph(edges, lambda g: [ag.weight_distribution(g["weight"].to_numpy(), bins=bins)], cols)


def stability_frame(centrality: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    measures = [f"spearman_{c}" for c in sorted(CENTRALITIES)]
    cols = {
        "model_id": "str",
        "task": "str",
        "ablation": "str",
        "step": "int64",
        "prev_step": "int64",
        "n_nodes": "int64",
        **{m: "float64" for m in measures},
        "jaccard_spreaders": "float64",
        "jaccard_gatherers": "float64",
        "top_k": "int64",
    }
    rows = []
    for key, s in centrality.groupby(SERIES, sort=True):
        by_step = {step: g.set_index("node")[CENTRALITIES].to_dict("index") for step, g in s.groupby("step", sort=True)}
        steps = sorted(by_step)
        for prev, cur in zip(steps, steps[1:]):
            r = ag.role_stability(by_step[prev], by_step[cur], k=k)
            rows.append({**dict(zip(SERIES, key)), "step": cur, "prev_step": prev, "top_k": k, **r})
    return pd.DataFrame(rows, columns=list(cols)).astype(cols) if rows else _empty(cols)


def circuits_frame(edges: Edges, k: int = 5) -> pd.DataFrame:
    cols = {
        "model_id": "str",
        "step": "int64",
        "task": "str",
        "ablation": "str",
        "path_rank": "int64",
        "path": "str",
        "n_components": "int64",
        "strength": "float64",
        "min_edge_weight": "float64",
        "per_hop_strength": "float64",
        "n_hops": "int64",
    }

    def rows(g: pd.DataFrame) -> list[dict]:
        src, dst, weight = g["src"].to_numpy(), g["dst"].to_numpy(), g["weight"].to_numpy()
        paths = ag.strongest_paths_per_hop(src, dst, weight, k=k)
        if not paths:
            return []
        w = dict(zip(zip(src, dst), weight))
        return [
            {
                "path_rank": rank,
                "path": " -> ".join(path),
                "n_components": len(path) - 2,
                "strength": strength,
                "min_edge_weight": min(w[e] for e in zip(path, path[1:])),
                "per_hop_strength": per_hop,
                "n_hops": len(path) - 1,
            }
            for rank, (path, per_hop, strength) in enumerate(paths, 1)
        ]

    return per_graph(edges, rows, cols)


def phases_frame(
    metrics: pd.DataFrame, columns: list[str], max_phases: int = 3, penalty: float = 1.0, min_size: int = 2
) -> pd.DataFrame:
    """Change-point phases per (model, task, ablation) series of the given metric columns;
    signal = 'graph_<task>_<ablation>'."""
    cols = {
        "model_id": "str",
        "signal": "str",
        "phase": "str",
        "phase_index": "int64",
        "start_step": "int64",
        "end_step": "int64",
        "n_checkpoints": "int64",
        "method": "str",
    }
    method = (
        f"optimal partition, z-scored {'+'.join(columns)}, <= {max_phases} segments, "
        f"penalty {penalty} * m * log T, min {min_size} checkpoints"
    )
    rows = []
    for (model_id, task, ablation), s in metrics.groupby(SERIES, sort=True):
        s = s.sort_values("step")
        x = s[columns].to_numpy(dtype=np.float64)
        x = np.where(np.isfinite(x), x, np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0))
        x = np.nan_to_num(x)
        for p in ag.change_point_phases(s["step"].tolist(), x, max_phases, penalty, min_size):
            rows.append({"model_id": model_id, "signal": f"graph_{task}_{ablation}", **p, "method": method})
    return pd.DataFrame(rows, columns=list(cols)).astype(cols) if rows else _empty(cols)
