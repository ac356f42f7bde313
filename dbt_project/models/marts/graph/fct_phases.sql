-- Training phases of every signal: one row per model, signal and phase (start_step..end_step,
-- inclusive). Union-able: each area contributes an intermediate model with the columns below
-- (extras may be null) and one `union all` here. Now: the graph signals (int_graph_phases).
with graph_phases as (
    select
        model_id, signal, phase, phase_index, start_step, end_step, n_checkpoints, method
    from {{ ref('int_graph_phases') }}
),

final as (
    select * from graph_phases
)

select * from final
