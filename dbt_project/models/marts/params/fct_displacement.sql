-- Displacement of every ingested tensor between consecutive ingested checkpoints
-- (METHODS §B, the stationarity signal): disp = ‖w_t − w_prev‖₂, rel_disp = disp / ‖w_prev‖₂,
-- and rel_disp_per_step = rel_disp / (step − prev_step), comparable across the uneven gaps of
-- a log-then-linear checkpoint schedule. Sliceable by layer and parameter kind.
with disp as (
    select * from {{ ref('stg_displacement') }}
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
        n_nonfinite
    from disp
)

select * from final
