with source as (
    select * from {{ source('raw_weights', 'weight_stats') }}
),

final as (
    select
        model_id,
        tensor_name,
        {{ tensor_layer('tensor_name') }} as layer,
        {{ tensor_kind('tensor_name') }} as param_kind,
        cast(step as bigint) as step,
        shape,
        n,
        n_nonfinite,
        mean,
        std,
        skewness,
        kurtosis,
        min as min_value,
        max as max_value,
        l2_norm,
        frac_near_zero,
        near_zero_eps,
        q01, q05, q25, q50, q75, q95, q99,
        {{ column_or_null(source('raw_weights', 'weight_stats'), 'tensor_hash', 'varchar') }} as tensor_hash
    from source
)

select * from final
