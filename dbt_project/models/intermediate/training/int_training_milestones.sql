-- Learning-rate and loss milestones of each model's training log (fct_training_log):
--   warmup_end_step          the first logged step after which the learning rate stops
--                            rising (its next logged value is not larger); NULL while it
--                            is still rising at the last logged step (censored)
--   lr_peak_step, lr_peak    the step of the largest learning rate (the first, on ties)
--   steepest_loss_drop_step  the step where the loss, smoothed by a centred moving mean of
--                            5 logged points (2 either side), falls fastest
--                            per step (most negative slope from the previous logged point);
--                            NULL when the smoothed loss never falls
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
        s.slope as steepest_loss_slope
    from models as m
    left join lr_milestones as l on m.model_id = l.model_id
    left join steepest as s on m.model_id = s.model_id and s.pick = 1
)

select * from final
