-- Training phases of every signal: one row per model, signal and phase (start_step..end_step,
-- inclusive). Union-able: each area contributes an intermediate model with model_id, signal,
-- phase, start_step and end_step, and one `union all` branch here (extras may be null).
-- Signals now: the graph's ('graph_<task>_<ablation>', change points, int_graph_phases) and
-- the residual stream's ('residual_<signal>', split at emergence, int_residual_phases) and
-- the capability's ('capability_<task>', split at the loss's half-drop step,
-- int_capability_transition: before_transition, after_transition) and the LLC's ('llc',
-- critical points of the LLC over log-step, int_llc_stages: stage_<k>_<rising|falling|flat>).
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

capability as (
    select * from {{ ref('int_capability_transition') }}
),

capability_phases as (
    select
        model_id,
        'capability_' || task as signal,
        'before_transition' as phase,
        1 as phase_index,
        first_step as start_step,
        coalesce(prev_step, last_step) as end_step,
        cast(null as bigint) as n_checkpoints,
        'split at the half-drop of the task loss (int_capability_transition)' as method
    from capability
    where transition_step is null or transition_step > first_step
    union all
    select
        model_id,
        'capability_' || task as signal,
        'after_transition' as phase,
        case when transition_step > first_step then 2 else 1 end as phase_index,
        transition_step as start_step,
        last_step as end_step,
        cast(null as bigint) as n_checkpoints,
        'split at the half-drop of the task loss (int_capability_transition)' as method
    from capability
    where transition_step is not null
),

llc_phases as (
    select
        model_id,
        signal,
        phase,
        phase_index,
        start_step,
        end_step,
        n_checkpoints,
        method
    from {{ ref('int_llc_stages') }}
),

final as (
    select * from graph_phases
    union all
    select * from residual_phases
    union all
    select * from capability_phases
    union all
    select * from llc_phases
)

select * from final
