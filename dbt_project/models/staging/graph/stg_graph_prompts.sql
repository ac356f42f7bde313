with source as (
    select * from {{ source('raw_graph', 'graph_prompts') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        task,
        ablation,
        cast(prompt_index as integer) as prompt_index,
        seed,
        token_ids,
        len(token_ids) as n_tokens,
        cast(measure_start as integer) as measure_start,
        cast(measure_end as integer) as measure_end,
        cast(clean_loss as double) as clean_loss
    from source
)

select * from final
