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
        e.model_id,
        e.step,
        e.task,
        e.ablation,
        e.src,
        e.dst,
        s.node_kind as src_kind,
        s.layer as src_layer,
        d.node_kind as dst_kind,
        d.layer as dst_layer,
        e.weight,
        e.weight_std,
        e.rel_l2,
        e.rel_l2_std,
        e.kl,
        e.kl_std,
        e.dloss,
        e.dloss_std,
        e.n_prompts
    from edges as e
    inner join nodes as s
        on
            e.model_id = s.model_id
            and e.step = s.step
            and e.task = s.task
            and e.ablation = s.ablation
            and e.src = s.node
    inner join nodes as d
        on
            e.model_id = d.model_id
            and e.step = d.step
            and e.task = d.task
            and e.ablation = d.ablation
            and e.dst = d.node
)

-- stored in (model, task, ablation, step) order: DuckDB's zone maps then let a query for a
-- few checkpoints of one model skip the rest of the table
select * from final
order by model_id, task, ablation, step, src, dst
