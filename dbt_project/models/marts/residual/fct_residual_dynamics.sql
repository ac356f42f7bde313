-- Residual-stream dynamics per model, checkpoint and sample point (METHODS §C), the
-- contract mart: continuity (mean per-unit Pearson r from this point to the next),
-- velocity and acceleration (mean norms of v_l = h_{l+1} - h_l and v_{l+1} - v_l), density
-- (mean participation ratio), then the rest: quantiles, the rotation control, cosines,
-- norms, mutual information and the convergence of prompt pairs from this point to the next.
{{ incremental_config(['model_id', 'step', 'layer'], ['residual']) }}

with changed as (
    {{ changed_slices(['residual']) }}
),

points as (
    select
        p.*,
        c.source_version
    from {{ ref('stg_residual_points') }} as p
    inner join changed as c using (model_id, step)
),

pairs as (
    select p.*
    from {{ ref('stg_residual_convergence') }} as p
    inner join changed using (model_id, step)
),

depth as (
    select
        model_id,
        step,
        max(layer) as last_layer
    from points
    group by model_id, step
),

final as (
    select
        p.model_id,
        p.step,
        p.layer,
        p.continuity,
        p.velocity,
        p.acceleration,
        p.participation_ratio as density,
        p.block,
        p.site,
        d.last_layer + 1 as n_points,
        p.layer / nullif(d.last_layer, 0)::double as depth_fraction,
        p.positions,
        p.n_samples,
        p.continuity_q05,
        p.continuity_q25,
        p.continuity_median,
        p.continuity_q75,
        p.continuity_q95,
        p.continuity_rotated,
        p.continuity_rotated_median,
        p.continuity - p.continuity_rotated as continuity_gap,
        p.velocity_median,
        p.velocity_q25,
        p.velocity_q75,
        p.acceleration_median,
        p.cos_state,
        p.cos_velocity,
        p.participation_ratio_median,
        p.frac_above_rms,
        p.rms_fraction,
        p.norm_mean,
        p.norm_median,
        p.norm_growth,
        p.mutual_info,
        c.n_pairs,
        c.pair_distance,
        c.pair_ratio,
        c.pair_ratio_median,
        c.pair_relative_ratio,
        c.pair_frac_contracting,
        p.source_version
    from points as p
    inner join depth as d using (model_id, step)
    left join pairs as c using (model_id, step, layer)
)

select * from final
