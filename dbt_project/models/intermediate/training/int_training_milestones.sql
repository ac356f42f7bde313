-- Learning-rate and loss milestones of each model's training log (fct_training_log):
--   warmup_end_step          the first logged step after which the learning rate stops
--                            rising (its next logged value is not larger); NULL while it
--                            is still rising at the last logged step (censored)
--   lr_peak_step, lr_peak    the step of the largest learning rate (the first, on ties)
--   steepest_loss_drop_step  the step where the loss, smoothed by a centred moving mean of
--                            5 logged points (2 either side), falls fastest
--                            per step (most negative slope from the previous logged point);
--                            NULL when the smoothed loss never falls
--   plateau_start_step       the first loss plateau: a logged point is flat when the smoothed
--                            loss over the window of var('plateau_window', 10) logged points
--                            starting there varies by at most var('plateau_tolerance', 0.01)
--                            of its mean ((max - min) <= tolerance * |mean|); a plateau is a
--                            run of consecutive flat points. It starts at its first flat
--                            point, so it began after plateau_start_prev_step (the previous
--                            logged step, NULL when it is the first) and at or before
--                            plateau_start_step; plateau_end_step is the last logged step
--                            of its last window. n_loss_plateaus counts the runs. A log
--                            shorter than the window has no plateau (NULL, 0).
with log as (
    select * from {{ ref('fct_training_log') }}
),

lr as (
    select
        model_id,
        step,
        value as lr,
        lead(value) over (partition by model_id order by step) as next_lr,
        row_number() over (partition by model_id order by value desc, step asc) as peak_rank
    from log
    where metric = 'learning_rate'
),

lr_milestones as (
    select
        model_id,
        min(case when next_lr <= lr then step end) as warmup_end_step,
        max(case when peak_rank = 1 then step end) as lr_peak_step,
        max(case when peak_rank = 1 then lr end) as lr_peak
    from lr
    group by model_id
),

loss as (
    select
        model_id,
        step,
        avg(value) over (
            partition by model_id order by step
            rows between 2 preceding and 2 following
        ) as smoothed
    from log
    where metric = 'loss'
),

loss_windows as (
    select
        model_id,
        step,
        lag(step) over (partition by model_id order by step) as prev_step,
        count(*) over win as win_n,
        max(step) over win as win_end,
        max(smoothed) over win - min(smoothed) over win as win_range,
        avg(smoothed) over win as win_mean
    from loss
    window win as (
        partition by model_id order by step
        rows between current row and {{ (var('plateau_window', 10) | int(10)) - 1 }} following
    )
),

flat as (
    select
        *,
        coalesce(
            win_n = {{ var('plateau_window', 10) }}
            and win_range <= {{ var('plateau_tolerance', 0.01) }} * abs(win_mean),
            false
        ) as is_flat
    from loss_windows
),

flat_after as (
    select
        *,
        lag(is_flat) over (partition by model_id order by step) as prev_flat
    from flat
),

plateau_runs as (
    select
        *,
        sum(case when is_flat and not coalesce(prev_flat, false) then 1 else 0 end) over (
            partition by model_id order by step
        ) as plateau_index
    from flat_after
),

plateaus as (
    select
        model_id,
        plateau_index,
        min(step) as start_step,
        max(case when not coalesce(prev_flat, false) then prev_step end) as start_prev_step,
        max(win_end) as end_step
    from plateau_runs
    where is_flat
    group by model_id, plateau_index
),

first_plateau as (
    select
        model_id,
        max(case when plateau_index = 1 then start_step end) as plateau_start_step,
        max(case when plateau_index = 1 then start_prev_step end) as plateau_start_prev_step,
        max(case when plateau_index = 1 then end_step end) as plateau_end_step,
        count(*) as n_loss_plateaus
    from plateaus
    group by model_id
),

slopes as (
    select
        model_id,
        step,
        (smoothed - lag(smoothed) over (partition by model_id order by step))
        / (step - lag(step) over (partition by model_id order by step)) as slope
    from loss
),

steepest as (
    select
        model_id,
        step,
        slope,
        row_number() over (partition by model_id order by slope asc, step asc) as pick
    from slopes
    where slope < 0
),

models as (
    select distinct model_id from log
),

final as (
    select
        m.model_id,
        l.warmup_end_step,
        l.lr_peak_step,
        l.lr_peak,
        s.step as steepest_loss_drop_step,
        s.slope as steepest_loss_slope,
        p.plateau_start_step,
        p.plateau_start_prev_step,
        p.plateau_end_step,
        coalesce(p.n_loss_plateaus, 0) as n_loss_plateaus
    from models as m
    left join lr_milestones as l on m.model_id = l.model_id
    left join steepest as s on m.model_id = s.model_id and s.pick = 1
    left join first_plateau as p on m.model_id = p.model_id
)

select * from final
