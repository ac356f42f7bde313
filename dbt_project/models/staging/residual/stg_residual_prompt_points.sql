with source as (
    select * from {{ source('raw_residual', 'residual_prompt_points') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        cast(prompt_index as integer) as prompt_index,
        cast(layer as integer) as layer,
        velocity,
        participation_ratio
    from source
)

select * from final
