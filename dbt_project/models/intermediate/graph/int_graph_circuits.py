"""Candidate circuits of every graph: the 5 strongest embed -> logits paths, strength = the
product of the edge weights along the path (analysis.graph.strongest_paths: exact k-best
search on the DAG in NetworKit's topological order; the direct embed -> logits edge is left
out). The mart fct_candidate_circuits selects its public columns from here.

Incremental, one graph at a time: only graphs whose edges are new or changed since the last
build are read (streamed in graph order) and recomputed; rows of changed or vanished graphs
are replaced (analysis.graph_frames.changed_graph_batches). A full refresh gives the same
table."""


def model(dbt, session):
    from analysis.graph_frames import changed_graph_batches, circuits_frame
    dbt.config(materialized="incremental", unique_key=["model_id", "step", "task", "ablation", "path_rank"],
               on_schema_change="append_new_columns")
    this = str(dbt.this) if dbt.is_incremental else None
    return circuits_frame(changed_graph_batches(session, dbt.ref("stg_graph_edges"), this), k=5)
