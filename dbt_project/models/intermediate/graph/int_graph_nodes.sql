-- Every node of every graph (model, checkpoint, task, ablation), with its kind, layer and head
-- parsed from the name ('embed', 'L{l}.H{h}', 'L{l}.MLP', 'logits'; embed is layer -1, logits
-- one past the last layer).
with edges as (
    select * from {{ ref('stg_graph_edges') }}
),

names as (
    select
        model_id,
        step,
        task,
        ablation,
        src as node
    from edges
    union
    select
        model_id,
        step,
        task,
        ablation,
        dst as node
    from edges
),

parsed as (
    select
        model_id,
        step,
        task,
        ablation,
        node,
        case
            when node = 'embed' then 'embed'
            when node = 'logits' then 'logits'
            when node like '%.MLP' then 'mlp'
            else 'head'
        end as node_kind,
        try_cast(regexp_extract(node, '^L([0-9]+)\.', 1) as integer) as layer,
        try_cast(regexp_extract(node, '\.H([0-9]+)$', 1) as integer) as head
    from names
),

final as (
    select
        model_id,
        step,
        task,
        ablation,
        node,
        node_kind,
        case
            when node_kind = 'embed' then -1
            when node_kind = 'logits' then max(layer) over (partition by model_id, step, task, ablation) + 1
            else layer
        end as layer,
        head
    from parsed
)

select * from final
