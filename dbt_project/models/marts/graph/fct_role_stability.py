"""Role stability between consecutive checkpoints of each model, task and ablation:
Spearman correlation of every centrality over the common nodes, and the Jaccard overlap of
the top-5 spreaders (out-strength) and gatherers (in-strength) (analysis.graph.role_stability)."""


def model(dbt, session):
    from analysis.graph_frames import stability_frame

    dbt.config(materialized="table")
    centrality = dbt.ref("int_graph_centrality").df()
    return stability_frame(centrality, k=5)
