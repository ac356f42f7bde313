with source as (
    select * from {{ source('raw_residual', 'residual_pca') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        basis,
        cast(component as integer) as component,
        cast(basis_step as bigint) as basis_step,
        explained_variance,
        explained_ratio
    from source
)

select * from final
