-- Bimodality of each tensor's value distribution per checkpoint: Sarle's bimodality
-- coefficient from the exact moments of the weights probe,
--   BC = (g^2 + 1) / (k + 3 (n - 1)^2 / ((n - 2)(n - 3)))
-- with g the skewness, k the excess kurtosis and n the number of finite values. BC is 1/3
-- for a Gaussian, 5/9 for a uniform distribution, and tends to 1 for two separated point
-- masses; BC > 5/9 is the usual sign of bimodality (the paper's "bifurcation" turns W_U's
-- density bimodal). Checkpoints whose moments are not finite are left out (they are
-- flagged in fct_params_data_quality). Sliceable by layer and parameter kind.
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
    where isfinite(s.skewness) and isfinite(s.kurtosis) and s.n - s.n_nonfinite > 3
),

moments as (
    select
        model_id,
        tensor_name,
        layer,
        param_kind,
        step,
        n - n_nonfinite as n_finite,
        skewness,
        kurtosis,
        source_version
    from stats
),

coefficients as (
    select
        *,
        (skewness * skewness + 1)
        / (kurtosis + 3.0 * pow(n_finite - 1, 2) / ((n_finite - 2) * (n_finite - 3)))
            as bimodality_coefficient
    from moments
),

final as (
    select
        * exclude (source_version),
        bimodality_coefficient > 5.0 / 9 as is_bimodal,
        source_version
    from coefficients
)

select * from final
