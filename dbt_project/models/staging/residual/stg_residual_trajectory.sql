with source as (
    select * from {{ source('raw_residual', 'residual_trajectory') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        basis,
        cast(prompt_index as integer) as prompt_index,
        cast(layer as integer) as layer,
        pc1,
        pc2,
        pc3
    from source
)

select * from final
