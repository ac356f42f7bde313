with source as (
    select * from {{ source('raw_residual', 'residual_points') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        cast(layer as integer) as layer,
        cast(block as integer) as block,
        site,
        positions,
        n_samples,
        rms_fraction,
        velocity,
        velocity_q25,
        velocity_median,
        velocity_q75,
        acceleration,
        acceleration_q25,
        acceleration_median,
        acceleration_q75,
        cos_state,
        cos_velocity,
        participation_ratio,
        participation_ratio_q25,
        participation_ratio_median,
        participation_ratio_q75,
        frac_above_rms,
        norm as norm_mean,
        norm_q25,
        norm_median,
        norm_q75,
        norm_growth,
        continuity,
        continuity_q05,
        continuity_q25,
        continuity_median,
        continuity_q75,
        continuity_q95,
        continuity_rotated,
        continuity_rotated_q05,
        continuity_rotated_q25,
        continuity_rotated_median,
        continuity_rotated_q75,
        continuity_rotated_q95,
        mutual_info
    from source
)

select * from final
