-- The bifurcation step: where MSD peaks before its fall (METHODS §B). Recomputed only for
-- the models whose weights series changed (macros/incremental.sql).
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
        source_version
    from per_tensor
)

select * from final
