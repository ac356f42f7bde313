with source as (
    select * from {{ source('raw_params', 'eval_sets') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        dataset,
        eval_hash,
        spec,
        item,
        n_tokens,
        token_ids
    from source
)

select * from final
