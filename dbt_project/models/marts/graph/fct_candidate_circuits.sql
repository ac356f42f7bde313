-- Candidate circuits: the 5 strongest embed -> logits paths of every graph, strength = the
-- product of the edge weights along the path (exact k-best search on the DAG in NetworKit's
-- topological order; the direct embed -> logits edge is left out). Computed incrementally,
-- one graph at a time, in int_graph_circuits.
with circuits as (
    select * from {{ ref('int_graph_circuits') }}
),

final as (
    select
        model_id,
        step,
        task,
        ablation,
        path_rank,
        path,
        n_components,
        strength,
        min_edge_weight
    from circuits
)

select * from final
