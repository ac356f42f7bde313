with stats as (
    select * from {{ ref('stg_weight_stats') }}
),

final as (
    select
        model_id,
        tensor_name,
        layer,
        param_kind,
        step,
        mean,
        std,
        skewness,
        kurtosis,
        l2_norm,
        min_value,
        max_value,
        frac_near_zero,
        near_zero_eps,
        q01,
        q05,
        q25,
        q50,
        q75,
        q95,
        q99,
        n,
        n_nonfinite,
        shape
    from stats
)

select * from final
