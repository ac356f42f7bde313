-- The bifurcation step: where MSD peaks before its fall (METHODS §B).
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
        case when peak_msd > 0 then last_msd / peak_msd else 1.0 end as fall_ratio
    from per_tensor
)

select * from final
