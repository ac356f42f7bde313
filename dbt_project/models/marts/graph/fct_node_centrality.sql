-- Node roles per checkpoint: gatherers (in-strength), spreaders (out-strength), gatekeepers
-- (betweenness on lengths -log(w / w_max) over the backbone of edges >= 5 % of the largest),
-- closeness (lengths 1 / weight, outgoing), PageRank and Katz
-- (on weights), with each node's rank among the graph's nodes by out- and in-strength.
with centrality as (
    select * from {{ ref('int_graph_centrality') }}
),

nodes as (
    select * from {{ ref('int_graph_nodes') }}
),

final as (
    select
        c.model_id,
        c.step,
        c.task,
        c.ablation,
        c.node,
        n.node_kind,
        n.layer,
        n.head,
        c.in_strength,
        c.out_strength,
        c.betweenness,
        c.closeness,
        c.pagerank,
        c.katz,
        rank() over (partition by c.model_id, c.step, c.task, c.ablation order by c.out_strength desc)
            as spreader_rank,
        rank() over (partition by c.model_id, c.step, c.task, c.ablation order by c.in_strength desc)
            as gatherer_rank
    from centrality as c
    inner join nodes as n using (model_id, step, task, ablation, node)
)

select * from final
