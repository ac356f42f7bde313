"""Node centralities of every graph, computed by NetworKit (analysis.graph.centralities):
strengths, betweenness and closeness on lengths 1 / weight, PageRank, Katz.

Incremental, one graph at a time: only graphs whose edges are new or changed since the last
build are read (streamed in graph order) and recomputed; rows of changed or vanished graphs
are replaced (analysis.graph_frames.changed_graph_batches). A full refresh gives the same
table."""


def model(dbt, session):
    from analysis.graph_frames import centrality_frame, changed_graph_batches
    dbt.config(materialized="incremental", unique_key=["model_id", "step", "task", "ablation", "node"],
               on_schema_change="append_new_columns")
    this = str(dbt.this) if dbt.is_incremental else None
    return centrality_frame(changed_graph_batches(session, dbt.ref("stg_graph_edges"), this))
