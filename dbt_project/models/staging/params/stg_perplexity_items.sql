with source as (
    select * from {{ source('raw_params', 'perplexity_items') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        dataset,
        method,
        item,
        prefix_len,
        n_tokens,
        nll_sum,
        generated as generated_ids
    from source
)

select * from final
