-- Displacement of every ingested tensor between consecutive ingested checkpoints
-- (METHODS §B, the stationarity signal): disp = ‖w_t − w_prev‖₂, rel_disp = disp / ‖w_prev‖₂,
-- and rel_disp_per_step = rel_disp / (step − prev_step), comparable across the uneven gaps of
-- a log-then-linear checkpoint schedule. Sliceable by layer and parameter kind.
{{ incremental_config(['model_id', 'tensor_name', 'step'], ['displacement']) }}

with changed as (
    {{ changed_slices(['displacement']) }}
),

disp as (
    select
        d.*,
        c.source_version
    from {{ ref('stg_displacement') }} as d
    inner join changed as c using (model_id, step)
),

final as (
    select
        model_id,
        tensor_name,
        layer,
        param_kind,
        step,
        prev_step,
        step - prev_step as step_gap,
        disp,
        rel_disp,
        rel_disp / (step - prev_step) as rel_disp_per_step,
        msd_step,
        max_abs,
        norm,
        norm_prev,
        n,
        n_nonfinite,
        source_version
    from disp
)

select * from final
