-- Training phases of every signal: one row per model, signal and phase (start_step..end_step,
-- inclusive). Union-able: each area contributes an intermediate model with model_id, signal,
-- phase, start_step and end_step, and one `union all` branch here (extras may be null).
-- Signals now: the graph's ('graph_<task>_<ablation>', change points, int_graph_phases) and
-- the residual stream's ('residual_<signal>', split at emergence, int_residual_phases).
with graph_phases as (
    select
        model_id,
        signal,
        phase,
        phase_index,
        start_step,
        end_step,
        n_checkpoints,
        method
    from {{ ref('int_graph_phases') }}
),

residual_phases as (
    select
        model_id,
        signal,
        phase,
        row_number() over (partition by model_id, signal order by start_step) as phase_index,
        start_step,
        end_step,
        cast(null as bigint) as n_checkpoints,
        'split at the emergence step (int_residual_emergence)' as method
    from {{ ref('int_residual_phases') }}
),

final as (
    select * from graph_phases
    union all
    select * from residual_phases
)

select * from final
