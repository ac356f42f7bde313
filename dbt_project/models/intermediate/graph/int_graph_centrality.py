"""Node centralities of every graph, computed by NetworKit (analysis.graph.centralities):
strengths, betweenness and closeness on lengths 1 / weight, PageRank, Katz."""


def model(dbt, session):
    from analysis.graph_frames import centrality_frame
    dbt.config(materialized="table")
    edges = dbt.ref("stg_graph_edges").df()
    return centrality_frame(edges)
