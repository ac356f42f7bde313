-- The training log of each model: one row per logged step and metric (loss, learning_rate,
-- grad_norm, epoch, eval_*). Every checkpoint's trainer_state.json repeats the log so far;
-- the value kept is the one from the latest checkpoint that has it (a resumed run may have
-- logged a step again).
with log as (
    select * from {{ ref('stg_training_log') }}
),

ranked as (
    select
        model_id,
        log_step,
        metric,
        value,
        checkpoint_step,
        row_number() over (
            partition by model_id, log_step, metric order by checkpoint_step desc
        ) as pick
    from log
),

final as (
    select
        model_id,
        log_step as step,
        metric,
        value,
        checkpoint_step
    from ranked
    where pick = 1
)

select * from final
