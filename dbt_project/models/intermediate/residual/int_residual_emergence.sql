-- When each residual-dynamics signal emerges during training, per model and signal.
--   threshold_step   for a signal with a threshold: the first checkpoint from which the
--                    condition (value below / above the threshold) holds at every later
--                    checkpoint; null when it fails at the last one
--   half_change_step the first checkpoint at which the signal has covered half of its
--                    change from the first to the last checkpoint (null when it does not change)
--   emergence_step   threshold_step when the signal has a threshold, else half_change_step
with signals as (
    select * from {{ ref('int_residual_signals') }}
),

ends as (
    select
        model_id,
        signal,
        min(step) as first_step,
        max(step) as last_step,
        count(*) as n_checkpoints,
        arg_min(value, step) as first_value,
        arg_max(value, step) as last_value,
        any_value(threshold) as threshold,
        any_value(direction) as direction
    from signals
    group by model_id, signal
),

judged as (
    select
        s.model_id,
        s.signal,
        s.step,
        case e.direction
            when 'below' then s.value < e.threshold
            when 'above' then s.value > e.threshold
        end as holds,
        (s.value - e.first_value) / nullif(e.last_value - e.first_value, 0) as progress
    from signals as s
    inner join ends as e using (model_id, signal)
),

last_failure as (
    select
        model_id,
        signal,
        max(case when not holds then step end) as last_fail_step
    from judged
    group by model_id, signal
),

steps as (
    select
        j.model_id,
        j.signal,
        min(case when j.holds and j.step > coalesce(f.last_fail_step, -1) then j.step end)
            as threshold_step,
        min(case when j.progress >= 0.5 then j.step end) as half_change_step
    from judged as j
    inner join last_failure as f using (model_id, signal)
    group by j.model_id, j.signal
),

final as (
    select
        e.model_id,
        e.signal,
        e.first_step,
        e.last_step,
        e.n_checkpoints,
        e.first_value,
        e.last_value,
        e.threshold,
        e.direction,
        s.threshold_step,
        s.half_change_step,
        case when e.direction is not null then 'threshold' else 'half_change' end as emergence_rule,
        case when e.direction is not null then s.threshold_step else s.half_change_step end
            as emergence_step
    from ends as e
    inner join steps as s using (model_id, signal)
)

select * from final
