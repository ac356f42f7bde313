with source as (
    select * from {{ source('raw_params', 'covariance_eigs') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        tensor_name,
        batch_size,
        seed,
        vocab,
        d,
        n_nonfinite,
        trace,
        eigenvalues
    from source
)

select * from final
