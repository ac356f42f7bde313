{{ incremental_config(['model_id', 'tensor_name', 'step'], ['weights']) }}

with changed as (
    {{ changed_slices(['weights']) }}
),

stats as (
    select
        s.*,
        c.source_version
    from {{ ref('stg_weight_stats') }} as s
    inner join changed as c using (model_id, step)
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
        shape,
        source_version
    from stats
)

select * from final
