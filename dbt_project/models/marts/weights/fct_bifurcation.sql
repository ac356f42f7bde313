-- The bifurcation step: where MSD peaks before its fall (METHODS §B).
-- Under eqs. 4-5, MSD(t) - MSD(t-1) = Var_k(w_t) + 2 Cov_k(S_{t-1}, w_t): MSD falls only
-- when the new weights turn against their running sum (Cov < -Var/2). A maximum at the
-- last ingested checkpoint is no peak: peak_status says 'no peak: still rising'.
-- Recomputed only for the models whose weights series changed (macros/incremental.sql).
{{ incremental_config(['model_id', 'tensor_name'], ['weights'], 'series') }}

with changed as (
    {{ changed_slices(['weights'], 'series') }}
),

msd as (
    select
        m.model_id,
        m.tensor_name,
        m.step,
        m.msd,
        c.source_version
    from {{ ref('int_msd') }} as m
    inner join changed as c using (model_id)
),

per_tensor as (
    select
        model_id,
        tensor_name,
        arg_max(step, msd) as peak_step,
        max(msd) as peak_msd,
        max(step) as last_step,
        arg_max(msd, step) as last_msd,
        any_value(source_version) as source_version
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
        end as peak_status,
        source_version
    from per_tensor
)

select * from final
