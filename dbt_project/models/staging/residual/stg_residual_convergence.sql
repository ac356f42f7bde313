with source as (
    select * from {{ source('raw_residual', 'residual_convergence') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        cast(layer as integer) as layer,
        n_pairs,
        distance_mean as pair_distance,
        distance_median as pair_distance_median,
        ratio_mean as pair_ratio,
        ratio_median as pair_ratio_median,
        frac_contracting as pair_frac_contracting,
        relative_ratio_mean as pair_relative_ratio
    from source
)

select * from final
