with source as (
    select * from {{ source('raw_residual', 'residual_unit_rotations') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        cast(unit as integer) as unit,
        n_samples,
        n_points,
        rotations,
        rotations_abs,
        rotations_perm,
        rotations_perm_abs
    from source
)

select * from final
