with source as (
    select * from {{ source('raw_weights', 'weight_sample') }}
),

final as (
    select
        model_id,
        tensor_name,
        cast(step as bigint) as step,
        n_total,
        sample_seed,
        exact as is_exact,
        len(vals) as n_sampled,
        vals as sampled_values
    from source
)

select * from final
