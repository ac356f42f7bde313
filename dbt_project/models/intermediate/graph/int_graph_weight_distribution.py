"""Edge-weight distribution of every graph (analysis.graph.weight_distribution): log-grid
histogram, quantiles, Gini, power-law vs lognormal tail fit by likelihood ratio.

Incremental, one graph at a time: only graphs whose edges are new or changed since the last
build are read (streamed in graph order) and recomputed; rows of changed or vanished graphs
are replaced (analysis.graph_frames.changed_graph_batches). A full refresh gives the same
table."""


def model(dbt, session):
    from analysis.graph_frames import changed_graph_batches, distribution_frame
    dbt.config(materialized="incremental", unique_key=["model_id", "step", "task", "ablation"],
               on_schema_change="append_new_columns")
    this = str(dbt.this) if dbt.is_incremental else None
    return distribution_frame(changed_graph_batches(session, dbt.ref("stg_graph_edges"), this), bins=20)
