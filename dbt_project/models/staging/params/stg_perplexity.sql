with source as (
    select * from {{ source('raw_params', 'perplexity') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        dataset,
        method,
        eval_hash,
        n_items,
        n_nonfinite,
        n_tokens,
        nll_sum,
        mean_nll,
        perplexity
    from source
)

select * from final
