"""Phases of the graph over training, per model, task and ablation (signal
'graph_<task>_<ablation>'): change points of the z-scored series of mean edge weight,
edge-weight Gini and total KL into logits (analysis.graph.change_point_phases: exact
optimal partition into at most three constant-mean segments, BIC-like penalty), named
exploration, consolidation, refinement in order."""

METRICS = ["mean_weight", "gini", "logits_kl_total"]


def model(dbt, session):
    from analysis.graph_frames import phases_frame

    dbt.config(materialized="table")
    metrics = dbt.ref("int_graph_checkpoint_metrics").df()
    return phases_frame(metrics, METRICS, max_phases=3, penalty=1.0, min_size=2)
