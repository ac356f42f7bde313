-- The component causal graph: one row per edge of every model, checkpoint, task and ablation
-- type, with both endpoints' kind and layer.
with edges as (
    select * from {{ ref('stg_graph_edges') }}
),

nodes as (
    select * from {{ ref('int_graph_nodes') }}
),

final as (
    select
        e.model_id, e.step, e.task, e.ablation, e.src, e.dst,
        s.node_kind as src_kind, s.layer as src_layer,
        d.node_kind as dst_kind, d.layer as dst_layer,
        e.weight, e.weight_std, e.rel_l2, e.rel_l2_std, e.kl, e.kl_std, e.dloss, e.dloss_std,
        e.n_prompts
    from edges as e
    inner join nodes as s on s.model_id = e.model_id and s.step = e.step and s.task = e.task
        and s.ablation = e.ablation and s.node = e.src
    inner join nodes as d on d.model_id = e.model_id and d.step = e.step and d.task = e.task
        and d.ablation = e.ablation and d.node = e.dst
)

-- stored in (model, task, ablation, step) order: DuckDB's zone maps then let a query for a
-- few checkpoints of one model skip the rest of the table
select * from final
order by model_id, task, ablation, step, src, dst
