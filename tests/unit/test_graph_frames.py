"""analysis.graph_frames, the functions the graph marts' dbt Python models call, against
networkx, numpy and scipy on small graphs; the streamed (record batch) input against the
grouped frame; the incremental change detection against a full recomputation, on an
in-memory DuckDB."""
from __future__ import annotations

import math

import duckdb
import networkx as nx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis import graph_frames as gf

KEYS = [("m/a", 0, "induction", "zero"), ("m/a", 10, "induction", "zero"), ("m/a", 10, "induction", "mean"),
        ("m/b", 0, "markov", "zero")]


def _graph(seed: int, n: int = 7, p: float = 0.7) -> pd.DataFrame:
    """A DAG named like the probe's: embed, heads of one layer, logits (embed -> logits always)."""
    rng = np.random.default_rng(seed)
    names = ["embed"] + [f"L0.H{i}" for i in range(n - 2)] + ["logits"]
    rows = [(names[i], names[j], float(rng.uniform(0.05, 1.9)))
            for i in range(n) for j in range(i + 1, n) if rng.random() < p or (i == 0 and j == n - 1)]
    return pd.DataFrame(rows, columns=["src", "dst", "weight"])


def _edges(keys=KEYS, seed: int = 0) -> pd.DataFrame:
    parts = [_graph(seed + i).assign(**dict(zip(gf.GRAPH, k))) for i, k in enumerate(keys)]
    return pd.concat(parts, ignore_index=True)[gf.GRAPH + ["src", "dst", "weight"]]


def _nx(g: pd.DataFrame) -> nx.DiGraph:
    d = nx.DiGraph()
    for u, v, w in zip(g["src"], g["dst"], g["weight"]):
        d.add_edge(u, v, weight=w, length=1.0 / w)
    return d


def _batches(edges: pd.DataFrame, rows: int) -> list[pa.RecordBatch]:
    t = pa.Table.from_pandas(edges.sort_values(gf.GRAPH, kind="stable"), preserve_index=False)
    return t.to_batches(max_chunksize=rows)


# --- per-graph functions against independent references -------------------------------------
def test_centrality_frame_matches_networkx_per_graph():
    edges = _edges()
    got = gf.centrality_frame(edges)
    assert list(got.columns) == ["model_id", "step", "task", "ablation", "node", *gf.CENTRALITIES]
    assert got.groupby(gf.GRAPH).ngroups == len(KEYS)
    for key, g in edges.groupby(gf.GRAPH):
        d = _nx(g)
        btw = nx.betweenness_centrality(d, weight="length", normalized=True)
        clo = nx.closeness_centrality(d.reverse(), distance="length", wf_improved=True)
        pr = nx.pagerank(d, alpha=0.85, weight="weight", tol=1e-12)
        katz = nx.katz_centrality(d, alpha=0.1, beta=1.0, weight="weight", normalized=False, tol=1e-12,
                                  max_iter=10000)
        rows = got[(got[gf.GRAPH] == pd.Series(key, index=gf.GRAPH)).all(axis=1)].set_index("node")
        assert set(rows.index) == set(d.nodes)
        for v in d.nodes:
            r = rows.loc[v]
            assert r["in_strength"] == pytest.approx(d.in_degree(v, weight="weight"))
            assert r["out_strength"] == pytest.approx(d.out_degree(v, weight="weight"))
            assert r["betweenness"] == pytest.approx(btw[v], abs=1e-9)
            assert r["closeness"] == pytest.approx(clo[v], abs=1e-9)
            assert r["pagerank"] == pytest.approx(pr[v], abs=1e-8)
            assert r["katz"] == pytest.approx(katz[v], rel=1e-8)


def test_distribution_frame_matches_numpy():
    edges = _edges()
    got = gf.distribution_frame(edges, bins=8).set_index(gf.GRAPH)
    for key, g in edges.groupby(gf.GRAPH):
        w, r = g["weight"].to_numpy(), got.loc[key]
        assert r["n_edges"] == w.size and r["mean"] == pytest.approx(w.mean()) and r["max"] == w.max()
        for q, name in zip([0.05, 0.25, 0.5, 0.75, 0.95], ["q05", "q25", "q50", "q75", "q95"]):
            assert r[name] == pytest.approx(np.quantile(w, q))
        x = np.sort(w)                                           # Gini: mean absolute difference / 2 mean
        assert r["gini"] == pytest.approx(np.abs(x[:, None] - x[None, :]).mean() / (2 * x.mean()))
        counts, _ = np.histogram(np.clip(w, 1e-6, 2.0), bins=np.logspace(-6, math.log10(2.0), 9))
        assert list(r["hist_counts"]) == counts.tolist() and len(r["hist_edges"]) == 9


def test_circuits_frame_matches_path_enumeration():
    edges = _edges()
    got = gf.circuits_frame(edges, k=3)
    for key, g in edges.groupby(gf.GRAPH):
        d = _nx(g)
        w = {(u, v): x for u, v, x in zip(g["src"], g["dst"], g["weight"])}
        paths = [p for p in nx.all_simple_paths(d, "embed", "logits") if len(p) > 2]
        strength = {tuple(p): math.prod(w[e] for e in zip(p, p[1:])) for p in paths}
        best = sorted(strength, key=lambda p: -strength[p])[:3]
        rows = got[(got[gf.GRAPH] == pd.Series(key, index=gf.GRAPH)).all(axis=1)].sort_values("path_rank")
        assert rows["path"].tolist() == [" -> ".join(p) for p in best]
        assert rows["strength"].to_numpy() == pytest.approx([strength[p] for p in best])
        assert rows["n_components"].tolist() == [len(p) - 2 for p in best]
        assert rows["min_edge_weight"].tolist() == [min(w[e] for e in zip(p, p[1:])) for p in best]


def test_stability_frame_matches_scipy():
    cent = gf.centrality_frame(_edges([("m", s, "induction", "zero") for s in (0, 10, 20)]))
    got = gf.stability_frame(cent, k=2)
    assert got[["step", "prev_step"]].values.tolist() == [[10, 0], [20, 10]]
    for _, r in got.iterrows():
        a = cent[cent["step"] == r["prev_step"]].set_index("node")
        b = cent[cent["step"] == r["step"]].set_index("node")
        common = sorted(set(a.index) & set(b.index))
        assert r["n_nodes"] == len(common)
        rho = stats.spearmanr(a.loc[common, "pagerank"], b.loc[common, "pagerank"]).statistic
        assert r["spearman_pagerank"] == pytest.approx(rho)
        top = lambda f: set(f.loc[common, "out_strength"].sort_values(ascending=False).index[:2])  # noqa: E731
        assert r["jaccard_spreaders"] == pytest.approx(len(top(a) & top(b)) / len(top(a) | top(b)))


def test_phases_frame_matches_brute_force_partition():
    steps = list(range(0, 160, 10))
    x = np.r_[np.zeros(6), np.full(5, 4.0), np.full(5, 1.5)] + np.random.default_rng(0).normal(0, 0.1, 16)
    metrics = pd.DataFrame({"model_id": "m", "task": "induction", "ablation": "zero", "step": steps, "g": x})
    got = gf.phases_frame(metrics, ["g"], penalty=0.0)
    z = (x - x.mean()) / x.std()
    sse = lambda a: float(((a - a.mean()) ** 2).sum())  # noqa: E731
    _, i, j = min((sse(z[:i]) + sse(z[i:j]) + sse(z[j:]), i, j)
                  for i in range(2, 15) for j in range(i + 2, 15))
    assert got["start_step"].tolist() == [0, steps[i], steps[j]]
    assert got["signal"].unique().tolist() == ["graph_induction_zero"]


def test_empty_inputs_give_typed_empty_frames():
    empty = _edges().head(0)
    for frame in (gf.centrality_frame(empty), gf.distribution_frame(empty), gf.circuits_frame(empty),
                  gf.centrality_frame(iter([]))):
        assert frame.empty and frame["step"].dtype == "int64"


# --- streaming: record batches in graph order give what the grouped frame gives --------------
@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60), st.permutations(range(len(KEYS))))
def test_streamed_batches_equal_the_grouped_frame(rows, order):
    edges = _edges([KEYS[i] for i in order])
    whole = dict((k, g.reset_index(drop=True)) for k, g in gf.graphs(edges))
    streamed = list(gf.graphs(_batches(edges, rows)))
    assert [k for k, _ in streamed] == sorted(whole)
    for k, g in streamed:
        pd.testing.assert_frame_equal(g[whole[k].columns].reset_index(drop=True), whole[k], check_dtype=False)
    pd.testing.assert_frame_equal(gf.circuits_frame(_batches(edges, rows)), gf.circuits_frame(edges))


# --- incremental: only changed graphs are read, and the result equals a full recomputation ----
def _store(con, name: str, frame: pd.DataFrame) -> None:
    con.register("_f", frame)
    con.execute(f"create or replace table {name} as select * from _f")
    con.unregister("_f")


def _append(con, name: str, frame: pd.DataFrame) -> None:
    con.register("_f", frame)
    con.execute(f"insert into {name} by name select * from _f")
    con.unregister("_f")


def _sorted(con, name: str, key: list[str]) -> pd.DataFrame:
    return con.sql(f"select * from {name} order by {', '.join(key)}").df()


@pytest.mark.parametrize("frame_fn,key", [(gf.distribution_frame, gf.GRAPH),
                                          (gf.centrality_frame, gf.GRAPH + ["node"]),
                                          (gf.circuits_frame, gf.GRAPH + ["path_rank"])])
def test_incremental_build_equals_full_refresh(frame_fn, key):
    con = duckdb.connect()
    _store(con, "edges", _edges())
    read = []

    def build(this):
        batches = list(gf.changed_graph_batches(con, con.table("edges"), this, batch_rows=5))
        read.append({tuple(k) for k, _ in gf.graphs(batches)})
        return frame_fn(gf.HashedBatches(batches))

    _store(con, "t", build(None))
    assert read[-1] == set(KEYS)
    nothing = build("t")                                # nothing changed: nothing read
    assert read[-1] == set() and nothing.empty and nothing[gf.HASH].dtype == "uint64"
    assert list(nothing.columns) == list(con.sql("select * from t limit 0").columns)
    # change one graph's weights, drop a second graph, add a third
    con.execute("update edges set weight = weight * 0.5 where model_id = 'm/a' and step = 10 and ablation = 'zero'")
    con.execute("delete from edges where model_id = 'm/b'")
    _append(con, "edges", _edges([("m/c", 5, "text", "zero")], seed=9))
    _append(con, "t", build("t"))
    assert read[-1] == {("m/a", 10, "induction", "zero"), ("m/c", 5, "text", "zero")}
    _store(con, "rebuilt", build(None))
    pd.testing.assert_frame_equal(_sorted(con, "t", key), _sorted(con, "rebuilt", key))


def test_a_table_from_before_edges_hash_is_rebuilt_whole():
    con = duckdb.connect()
    _store(con, "edges", _edges())
    _store(con, "t", gf.distribution_frame(_edges()))          # no edges_hash column
    batches = list(gf.changed_graph_batches(con, con.table("edges"), "t"))
    assert {k for k, _ in gf.graphs(batches)} == set(KEYS)
    assert con.execute("select count(*) from t").fetchall()[0][0] == 0


def test_edges_hash_ignores_row_order_and_sees_any_weight():
    con = duckdb.connect()
    e = _edges(KEYS[:1])
    _store(con, "a", e)
    _store(con, "b", pd.DataFrame(e.iloc[::-1].to_dict("list")))
    h = lambda t: con.execute(f"select bit_xor(hash(src, dst, weight)) from {t}").fetchall()[0][0]  # noqa: E731
    assert h("a") == h("b")
    for i in range(len(e)):
        f = e.copy()
        f.loc[i, "weight"] = np.nextafter(f.loc[i, "weight"], 3.0)
        _store(con, "c", f)
        assert h("c") != h("a")
