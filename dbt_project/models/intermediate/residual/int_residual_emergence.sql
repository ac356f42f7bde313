-- When each residual-dynamics signal emerges during training, per model and signal.
--   threshold_step   for a signal with a threshold: the first checkpoint from which the
--                    condition (value below / above the threshold) holds at every later
--                    checkpoint; null when it fails at the last one
--   half_change_step the first checkpoint at which the signal has covered half of its
--                    change from the first to the last checkpoint (null when it does not change)
--   emergence_step   threshold_step when the signal has a threshold, else half_change_step
-- A mean crossing its threshold is not a finding: prompt noise crosses a threshold of 0
-- half the time. So the condition is judged on the bootstrap interval over prompts
-- (int_residual_bootstrap): 'above' holds when ci_low > threshold, 'below' when ci_high <
-- threshold. A signal with no interval (no per-prompt values), or whose rule is no paper
-- finding (no threshold), or that ends against the paper's direction, does not emerge:
-- emergence_step is NULL and emergence_status says why; threshold_step and
-- half_change_step still describe the series.
with signals as (
    select * from {{ ref('int_residual_signals') }}
),

bounds as (
    select * from {{ ref('int_residual_bootstrap') }}
),

-- the direction the paper reports for each signal over depth, which emergence must follow
paper as (
    select
        t.signal,
        t.paper_direction
    from (
        values
        ('lower_continuity', 'rises'),
        ('continuity_gap', 'rises'),
        ('lower_contraction', 'falls'),
        ('attractor_return', 'falls'),
        ('density_growth', 'rises'),
        ('velocity_growth', 'rises'),
        ('mutual_info', null),
        ('rotation_excess', 'rises'),
        ('shared_basis_variance', null)
    ) as t (signal, paper_direction)
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
        case e.direction
            when 'below' then b.ci_high < e.threshold
            when 'above' then b.ci_low > e.threshold
        end as holds_with_margin,
        b.ci_low is not null as has_interval,
        (s.value - e.first_value) / nullif(e.last_value - e.first_value, 0) as progress
    from signals as s
    inner join ends as e using (model_id, signal)
    left join bounds as b using (model_id, step, signal)
),

last_failure as (
    select
        model_id,
        signal,
        max(case when not holds then step end) as last_fail_step,
        max(case when not coalesce(holds_with_margin, false) then step end) as last_margin_fail_step,
        bool_and(has_interval) as has_intervals
    from judged
    group by model_id, signal
),

steps as (
    select
        j.model_id,
        j.signal,
        min(case when j.holds and j.step > coalesce(f.last_fail_step, -1) then j.step end)
            as threshold_step,
        min(case when j.progress >= 0.5 then j.step end) as half_change_step,
        min(
            case
                when j.holds_with_margin and j.step > coalesce(f.last_margin_fail_step, -1)
                    then j.step
            end
        ) as margin_step,
        any_value(f.has_intervals) as has_intervals
    from judged as j
    inner join last_failure as f using (model_id, signal)
    group by j.model_id, j.signal
),

statuses as (
    select
        e.model_id,
        e.signal,
        case
            when e.direction is null
                then 'not judged: no threshold for a paper finding (half_change_step describes it)'
            when not coalesce(s.has_intervals, false)
                then 'not judged: no per-prompt values for a bootstrap interval'
            when p.paper_direction = 'rises' and e.last_value <= e.first_value
                then 'not emerged: moves against the paper''s direction'
            when p.paper_direction = 'falls' and e.last_value >= e.first_value
                then 'not emerged: moves against the paper''s direction'
            when s.margin_step is null
                then 'not emerged: the interval does not clear the threshold at the last checkpoint'
            else 'emerged'
        end as emergence_status
    from ends as e
    inner join steps as s using (model_id, signal)
    left join paper as p using (signal)
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
        case when v.emergence_status = 'emerged' then s.margin_step end as emergence_step,
        p.paper_direction,
        case
            when e.last_value > e.first_value then 'rises'
            when e.last_value < e.first_value then 'falls'
            else 'flat'
        end as observed_direction,
        s.margin_step,
        v.emergence_status
    from ends as e
    inner join steps as s using (model_id, signal)
    inner join statuses as v using (model_id, signal)
    left join paper as p using (signal)
)

select * from final
