with source as (
    select * from {{ source('raw_residual', 'residual_prompts') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        cast(prompt_index as integer) as prompt_index,
        n_tokens,
        token_ids,
        prompt_source,
        prompt_digest,
        perturbed
    from source
)

select * from final
