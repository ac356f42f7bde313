-- The residual-dynamics phases for fct_phases: per model and signal ('residual_' + the
-- signal of int_residual_emergence), 'before_emergence' from the first checkpoint to the
-- last one before the emergence step, and 'after_emergence' from the emergence step to the
-- last checkpoint. A signal that never emerges has only 'before_emergence'; one that holds
-- from the first checkpoint has only 'after_emergence'.
with emergence as (
    select * from {{ ref('int_residual_emergence') }}
),

signals as (
    select * from {{ ref('int_residual_signals') }}
),

before_end as (
    select
        e.model_id,
        e.signal,
        max(s.step) as end_step
    from emergence as e
    inner join signals as s using (model_id, signal)
    where e.emergence_step is null or s.step < e.emergence_step
    group by e.model_id, e.signal
),

phases as (
    select
        e.model_id,
        e.signal,
        'before_emergence' as phase,
        e.first_step as start_step,
        b.end_step
    from emergence as e
    inner join before_end as b using (model_id, signal)
    union all
    select
        model_id,
        signal,
        'after_emergence' as phase,
        emergence_step as start_step,
        last_step as end_step
    from emergence
    where emergence_step is not null
),

final as (
    select
        model_id,
        'residual_' || signal as signal,
        phase,
        cast(start_step as bigint) as start_step,
        cast(end_step as bigint) as end_step
    from phases
)

select * from final
