-- The bifurcation step: where MSD peaks before its fall (METHODS §B).
-- Under eqs. 4-5, MSD(t) - MSD(t-1) = Var_k(w_t) + 2 Cov_k(S_{t-1}, w_t): MSD falls only
-- when the new weights turn against their running sum (Cov < -Var/2). A maximum at the
-- last ingested checkpoint is no peak: peak_status says 'no peak: still rising'.
with msd as (
    select * from {{ ref('int_msd') }}
),

per_tensor as (
    select
        model_id,
        tensor_name,
        arg_max(step, msd) as peak_step,
        max(msd) as peak_msd,
        max(step) as last_step,
        arg_max(msd, step) as last_msd
    from msd
    group by model_id, tensor_name
),

final as (
    select
        model_id,
        tensor_name,
        peak_step,
        peak_msd,
        last_step,
        case when peak_msd > 0 then last_msd / peak_msd else 1.0 end as fall_ratio,
        case
            when peak_step >= last_step then 'no peak: still rising'
            when peak_msd > 0 and last_msd / peak_msd >= {{ var('msd_censor_fall_ratio', 0.99) }}
                then 'no fall: fall_ratio >= {{ var('msd_censor_fall_ratio', 0.99) }}'
            else 'peak'
        end as peak_status
    from per_tensor
)

select * from final
