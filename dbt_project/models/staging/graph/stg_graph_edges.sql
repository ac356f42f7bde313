with source as (
    select * from {{ source('raw_graph', 'graph_edges') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        task,
        ablation,
        src,
        dst,
        cast(weight as double) as weight,
        cast(weight_std as double) as weight_std,
        cast(rel_l2 as double) as rel_l2,
        cast(rel_l2_std as double) as rel_l2_std,
        cast(kl as double) as kl,
        cast(kl_std as double) as kl_std,
        cast(dloss as double) as dloss,
        cast(dloss_std as double) as dloss_std,
        cast(n_prompts as integer) as n_prompts
    from source
)

select * from final
