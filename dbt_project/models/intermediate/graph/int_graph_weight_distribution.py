"""Edge-weight distribution of every graph (analysis.graph.weight_distribution): log-grid
histogram, quantiles, Gini, power-law vs lognormal tail fit by likelihood ratio."""


def model(dbt, session):
    from analysis.graph_frames import distribution_frame
    dbt.config(materialized="table")
    edges = dbt.ref("stg_graph_edges").df()
    return distribution_frame(edges, bins=20)
