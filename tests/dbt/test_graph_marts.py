"""The component-graph marts on the built toy warehouse.

Checked against independent computations: the edges recomputed from the warehouse's stored
prompts with the plain-hooks reference, the centralities recomputed with networkx, and the
toy suite's induction transition.

The induction transition metric is ``fct_graph_checkpoint.head_to_logits_dloss_max`` on
the induction task with zero ablation: the largest rise of the induction loss caused by
ablating one attention head. Before induction heads form no single head matters (about
0.002 nats on the toy suite); afterwards ablating the induction head undoes most of what
was learnt (several nats). Its rise coincides with the fall of the clean induction loss.
"""

from __future__ import annotations

import duckdb
import networkx as nx
import numpy as np
import pytest
import torch

from ingest.probes.graph.reference import reference_graph
from ingest.probes.graph.tasks import TaskBatch
from ingest.sources import open_source
from tests.conftest import TOY_MODELS
from tests.unit.test_graph_analysis import backbone_betweenness

GRAPH = "task = 'induction' and ablation = 'zero'"


@pytest.fixture(scope="module")
def con(built_warehouse):
    c = duckdb.connect(str(built_warehouse), read_only=True)
    yield c
    c.close()


def _steps(con, sql: str, model: str) -> list[int]:
    return [r[0] for r in con.execute(sql, [model]).fetchall()]


@pytest.mark.parametrize("model", TOY_MODELS)
def test_every_ingested_checkpoint_is_in_the_graph_marts(con, model):
    loaded = _steps(
        con,
        "select distinct step from raw.ingest_runs where model_id = ? and probe = 'graph' "
        "and status = 'success' order by step",
        model,
    )
    assert len(loaded) > 5
    for mart in (
        "fct_graph_edges",
        "fct_node_centrality",
        "fct_edge_weight_distribution",
        "fct_graph_checkpoint",
        "fct_candidate_circuits",
    ):
        assert (
            _steps(con, f"select distinct step from marts.{mart} where model_id = ? order by step", model) == loaded
        ), mart
    assert (
        _steps(con, "select distinct step from marts.fct_role_stability where model_id = ? order by step", model)
        == loaded[1:]
    )


def test_edges_recompute_from_the_warehouse_alone(con, toy_suite):
    """The last checkpoint's edges, recomputed by the hooked reference on the stored prompts."""
    model = TOY_MODELS[0]
    step = _steps(con, "select max(step) from marts.fct_graph_edges where model_id = ?", model)[0]
    prompts = con.execute(
        f"select token_ids, measure_start, measure_end from staging.stg_graph_prompts "
        f"where model_id = ? and step = ? and {GRAPH} order by prompt_index",
        [model, step],
    ).fetchall()
    ids = torch.tensor([p[0] for p in prompts])  # [n, T] (equal lengths)
    pos = torch.arange(ids.shape[1])
    measure = (pos >= torch.tensor([p[1] for p in prompts])[:, None]) & (
        pos < torch.tensor([p[2] for p in prompts])[:, None]
    )
    hf = open_source(model, toy_root=toy_suite).checkpoint(step).load_model()
    ref = reference_graph(hf, TaskBatch.of(ids, torch.ones_like(measure), measure), "zero", recompute_clean=False)
    rows = con.execute(
        f"select src, dst, weight, rel_l2, kl, dloss from marts.fct_graph_edges "
        f"where model_id = ? and step = ? and {GRAPH}",
        [model, step],
    ).fetchall()
    assert len(rows) > 20
    for src, dst, weight, rel_l2, kl, dloss in rows:
        r = {m: float(v.mean()) for m, v in ref[(src, dst)].items()}
        assert weight == pytest.approx(r["weight"], abs=1e-5)
        assert rel_l2 == pytest.approx(r["rel_l2"], abs=1e-5)
        if dst == "logits":
            assert kl == pytest.approx(r["kl"], abs=1e-5) and dloss == pytest.approx(r["dloss"], abs=1e-5)
        else:
            assert kl is None and dloss is None


def test_node_centrality_matches_networkx(con):
    model = TOY_MODELS[1]
    step = _steps(con, "select max(step) from marts.fct_graph_edges where model_id = ?", model)[0]
    edges = con.execute(
        f"select src, dst, weight from marts.fct_graph_edges where model_id = ? and step = ? and {GRAPH}", [model, step]
    ).fetchall()
    g = nx.DiGraph()
    for u, v, w in edges:
        g.add_edge(u, v, weight=w, length=1.0 / w)
    btw = backbone_betweenness(*zip(*edges))
    pr = nx.pagerank(g, weight="weight", tol=1e-12)
    rows = con.execute(
        f"select node, in_strength, out_strength, betweenness, pagerank from "
        f"marts.fct_node_centrality where model_id = ? and step = ? and {GRAPH}",
        [model, step],
    ).fetchall()
    assert len(rows) == g.number_of_nodes()
    for node, s_in, s_out, b, p in rows:
        assert s_in == pytest.approx(g.in_degree(node, weight="weight"))
        assert s_out == pytest.approx(g.out_degree(node, weight="weight"))
        assert b == pytest.approx(btw[node], abs=1e-9)
        assert p == pytest.approx(pr[node], abs=1e-8)


@pytest.mark.parametrize("model", TOY_MODELS)
def test_induction_transition_is_visible_in_the_graph(con, model):
    df = con.execute(
        f"select step, clean_loss, head_to_logits_dloss_max as metric from marts.fct_graph_checkpoint "
        f"where model_id = ? and {GRAPH} order by step",
        [model],
    ).df()
    loss, metric, steps = df.clean_loss.to_numpy(), df.metric.to_numpy(), df.step.to_numpy()
    assert loss[-1] < loss[0] - 1.0  # the suite learnt induction
    assert metric[0] < 0.05 and metric[-1] > 0.5 and metric[-1] > 20 * metric[0]
    # the metric rises where the loss falls: the first checkpoint past half of each change
    t_loss = steps[np.argmax(loss < (loss[0] + loss[-1]) / 2)]
    t_metric = steps[np.argmax(metric > metric[-1] / 2)]
    i_loss, i_metric = list(steps).index(t_loss), list(steps).index(t_metric)
    assert abs(i_loss - i_metric) <= 1, (t_loss, t_metric)
    # and a graph phase begins in the transition window: after the metric was still quiet
    # (< 10% of its final value), no later than the ingested checkpoint after the loss
    # transition (the data: toy/neox-3l's loss crosses half-way in (416, 512] and its graph
    # signal changes phase in (512, 608], the next interval, with every third checkpoint)
    quiet = steps[:i_loss][metric[:i_loss] < 0.1 * metric[-1]].max()
    after = steps[min(i_loss + 1, len(steps) - 1)]
    starts = [
        r[0]
        for r in con.execute(
            "select start_step from marts.fct_phases where model_id = ? and "
            "signal = 'graph_induction_zero' and phase_index > 1",
            [model],
        ).fetchall()
    ]
    assert any(quiet < s <= after for s in starts), (quiet, t_loss, after, starts)


@pytest.mark.parametrize("model", TOY_MODELS)
def test_phases_tile_the_checkpoints(con, model):
    steps = _steps(con, "select distinct step from marts.fct_graph_checkpoint where model_id = ? order by step", model)
    phases = con.execute(
        "select phase_index, start_step, end_step, n_checkpoints from marts.fct_phases "
        "where model_id = ? and signal = 'graph_induction_zero' order by phase_index",
        [model],
    ).fetchall()
    assert phases[0][1] == steps[0] and phases[-1][2] == steps[-1]
    assert sum(p[3] for p in phases) == len(steps)
    for (_, _, end, _), (_, start, _, _) in zip(phases, phases[1:]):
        assert steps.index(start) == steps.index(end) + 1


def test_candidate_circuits_are_paths_of_the_graph(con):
    model = TOY_MODELS[0]
    step = _steps(con, "select max(step) from marts.fct_candidate_circuits where model_id = ?", model)[0]
    edges = {
        (u, v): w
        for u, v, w in con.execute(
            f"select src, dst, weight from marts.fct_graph_edges where model_id = ? and step = ? and {GRAPH}",
            [model, step],
        ).fetchall()
    }
    paths = con.execute(
        f"select path_rank, path, strength, per_hop_strength from marts.fct_candidate_circuits "
        f"where model_id = ? and step = ? and {GRAPH} order by path_rank",
        [model, step],
    ).fetchall()
    assert len(paths) == 5
    per_hop = [h for *_, h in paths]
    assert per_hop == sorted(per_hop, reverse=True)
    for _, path, strength, h in paths:
        nodes = path.split(" -> ")
        assert nodes[0] == "embed" and nodes[-1] == "logits" and len(nodes) > 2
        assert strength == pytest.approx(np.prod([edges[e] for e in zip(nodes, nodes[1:])]))
        assert h == pytest.approx(strength ** (1 / (len(nodes) - 1)))


INCREMENTAL = ("int_graph_centrality", "int_graph_weight_distribution", "int_graph_circuits")
KEYS = {"int_graph_centrality": "node", "int_graph_weight_distribution": None, "int_graph_circuits": "path_rank"}


def _table(con, name: str) -> pd.DataFrame:  # noqa: F821
    key = ["model_id", "step", "task", "ablation"] + ([KEYS[name]] if KEYS[name] else [])
    return con.execute(f"select * from intermediate.{name} order by {', '.join(key)}").df()


def test_incremental_build_recomputes_only_changed_graphs_and_equals_a_full_refresh(built_warehouse, tmp_path):
    """Issue 20: the per-graph models read and recompute only graphs whose edges changed;
    graphs whose edges vanished lose their rows; a full refresh then gives identical tables."""
    import shutil

    import pandas as pd

    from warehouse.dbt import run_dbt

    wh = tmp_path / "warehouse.duckdb"
    shutil.copy(built_warehouse, wh)
    model = TOY_MODELS[0]
    c = duckdb.connect(str(wh))
    steps = _steps(c, f"select distinct step from raw.graph_edges where model_id = ? and {GRAPH} order by step", model)
    kept, changed, gone = steps[0], steps[1], steps[2]
    where = f"model_id = '{model}' and {GRAPH} and step = "
    saved = c.execute(f"select node, pagerank from intermediate.int_graph_centrality where {where}{kept}").df()
    c.execute(f"update intermediate.int_graph_centrality set pagerank = -1 where {where}{kept}")  # a marker
    before = c.execute(
        f"select xmin, gini from intermediate.int_graph_weight_distribution where {where}{changed}"
    ).fetchall()
    c.execute(f"update raw.graph_edges set weight = weight * weight where {where}{changed}")
    c.execute(f"delete from raw.graph_edges where {where}{gone}")
    c.close()
    select = ["--select", " ".join(INCREMENTAL)]
    run_dbt(wh, "run", *select)
    c = duckdb.connect(str(wh))
    assert c.execute(
        f"select min(pagerank), max(pagerank) from intermediate.int_graph_centrality where {where}{kept}"
    ).fetchall() == [(-1.0, -1.0)]  # not recomputed
    for name in INCREMENTAL:
        assert c.execute(f"select count(*) from intermediate.{name} where {where}{gone}").fetchall() == [(0,)]
    assert (
        c.execute(
            f"select xmin, gini from intermediate.int_graph_weight_distribution where {where}{changed}"
        ).fetchall()
        != before
    )  # recomputed
    for node, pr in zip(saved["node"], saved["pagerank"]):
        c.execute(
            f"update intermediate.int_graph_centrality set pagerank = ? where {where}{kept} and node = ?", [pr, node]
        )
    incremental = {name: _table(c, name) for name in INCREMENTAL}
    c.close()
    run_dbt(wh, "run", *select)  # nothing changed
    c = duckdb.connect(str(wh), read_only=True)
    for name in INCREMENTAL:
        pd.testing.assert_frame_equal(incremental[name], _table(c, name))
    c.close()
    run_dbt(wh, "run", *select, "--full-refresh")
    c = duckdb.connect(str(wh), read_only=True)
    for name in INCREMENTAL:
        pd.testing.assert_frame_equal(incremental[name], _table(c, name))
    c.close()
