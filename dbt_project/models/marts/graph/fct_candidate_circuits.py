"""Candidate circuits: the 5 strongest embed -> logits paths of every graph, strength = the
product of the edge weights along the path (exact k-best search on the DAG in NetworKit's
topological order; the direct embed -> logits edge is left out)."""


def model(dbt, session):
    from analysis.graph_frames import circuits_frame
    dbt.config(materialized="table")
    edges = dbt.ref("stg_graph_edges").df()
    return circuits_frame(edges, k=5)
