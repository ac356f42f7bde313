-- Candidate circuits: the 5 embed -> logits paths of every graph with the largest per-hop
-- strength (the geometric mean of the edge weights: a product favours 2-hop paths, so a
-- 3-hop circuit such as embed -> L0.H1 -> L1.H0 -> logits could never surface), with the
-- product (strength) beside it; exact k-best search per hop count on the DAG, the direct
-- embed -> logits edge left out. Computed incrementally,
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
        min_edge_weight,
        per_hop_strength,
        n_hops
    from circuits
)

select * from final
