with source as (
    select * from {{ source('raw_residual', 'residual_unit_continuity') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        cast(layer as integer) as layer,
        cast(unit as integer) as unit,
        continuity,
        continuity_rotated,
        mutual_info
    from source
)

select * from final
