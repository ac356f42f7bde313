-- MSD per model, tensor and checkpoint (METHODS §B, eqs. 4-5), and beside it the
-- time-demeaned variant (a check on the seed's Figure 3, not a finding: it is 0 at the
-- last checkpoint by construction). MSD(t) - MSD(t-1) = Var_k(w_t) + 2 Cov_k(S_{t-1}, w_t),
-- so MSD falls only when the weights turn against their running sum. Every row of a model
-- moves with each new checkpoint (the time mean does), so only models whose weights series
-- changed are rewritten (macros/incremental.sql).
{{ incremental_config(['model_id', 'tensor_name', 'step'], ['weights'], 'series') }}

with changed as (
    {{ changed_slices(['weights'], 'series') }}
),

msd as (
    select
        m.model_id,
        m.tensor_name,
        m.step,
        m.msd,
        m.n_sampled,
        m.n_total,
        m.is_exact,
        c.source_version
    from {{ ref('int_msd') }} as m
    inner join changed as c using (model_id)
),

demeaned as (
    select
        model_id,
        tensor_name,
        step,
        msd_time_demeaned
    from {{ ref('int_msd_time_demeaned') }}
    where model_id in (select c.model_id from changed as c)
),

final as (
    select
        m.model_id,
        m.tensor_name,
        m.step,
        m.msd,
        m.n_sampled,
        m.n_total,
        m.is_exact,
        d.msd_time_demeaned,
        m.source_version
    from msd as m
    left join demeaned as d using (model_id, tensor_name, step)
)

select * from final
