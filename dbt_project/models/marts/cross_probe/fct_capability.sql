-- The model's capability per checkpoint: its clean next-token loss (nats) on each graph
-- task's held-out prompts (stg_graph_prompts.clean_loss, the loss at the task's measured
-- positions: for induction the repeat of R R, predictable only by copying), averaged over
-- prompts. The same prompts at every checkpoint of a model, so a fall is a capability
-- gained (the induction transition), not a change of data. The clean loss does not depend
-- on the ablation; each prompt is counted once.
with prompts as (
    select
        model_id,
        step,
        task,
        prompt_index,
        avg(clean_loss) as clean_loss
    from {{ ref('stg_graph_prompts') }}
    where clean_loss is not null and isfinite(clean_loss)
    group by model_id, step, task, prompt_index
),

per_step as (
    select
        model_id,
        step,
        task,
        avg(clean_loss) as loss,
        stddev_samp(clean_loss) as loss_std,
        count(*) as n_prompts
    from prompts
    group by model_id, step, task
),

final as (
    select
        model_id,
        step,
        task,
        loss,
        loss_std,
        n_prompts,
        lag(step) over w as prev_step,
        loss - lag(loss) over w as loss_diff
    from per_step
    window w as (partition by model_id, task order by step)
)

select * from final
