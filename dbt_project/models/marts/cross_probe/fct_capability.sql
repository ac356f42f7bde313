-- The model's capability per checkpoint: its next-token loss (nats) on each named task,
-- averaged over the task's held-out prompts (the same prompts at every checkpoint of a
-- model, so a fall is a capability gained - the induction transition - not a change of
-- data). From the capability probe (stg_capability: induction R R at the graph task's
-- length and the toy's Markov text, with top-1 accuracy) where it ran on the model and
-- task; otherwise from the graph probe's clean loss on its own prompts
-- (stg_graph_prompts.clean_loss, each prompt once: it does not depend on the ablation).
-- One source per model and task, never mixed along a series; source names it.
with probe as (
    select
        model_id,
        step,
        task,
        avg(loss) as loss,
        stddev_samp(loss) as loss_std,
        avg(accuracy) as accuracy,
        count(*) as n_prompts,
        'capability' as source
    from {{ ref('stg_capability') }}
    where loss is not null and isfinite(loss)
    group by model_id, step, task
),

graph_prompts as (
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

probe_series as (
    select distinct
        model_id,
        task
    from probe
),

graph as (
    select
        g.model_id,
        g.step,
        g.task,
        avg(g.clean_loss) as loss,
        stddev_samp(g.clean_loss) as loss_std,
        cast(null as double) as accuracy,
        count(*) as n_prompts,
        'graph' as source
    from graph_prompts as g
    left join probe_series as p using (model_id, task)
    where p.model_id is null
    group by g.model_id, g.step, g.task
),

per_step as (
    select * from probe
    union all
    select * from graph
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
        loss - lag(loss) over w as loss_diff,
        accuracy,
        source
    from per_step
    window w as (partition by model_id, task order by step)
)

select * from final
