-- The capability transition of each model and task: when the model's clean loss on the
-- graph task's held-out prompts (fct_capability) falls, per model and task.
--   transition_step   the first ingested checkpoint where the loss has fallen half-way from
--                     its first value to its minimum (the transition's midpoint), when it
--                     falls by at least var('capability_min_drop', 1.0) nats; the true
--                     crossing lies after prev_step and at or before transition_step
--   transition_status 'complete' when the loss at the last checkpoint is within 10 % of the
--                     fall of its minimum and the minimum is not the last checkpoint;
--                     'still falling at the last checkpoint' when the minimum is the last
--                     checkpoint; 'rose again after its minimum' when the loss ends more than
--                     10 % of the fall above it; 'no transition' when it never falls by the
--                     minimum drop
with loss as (
    select * from {{ ref('fct_capability') }}
),

ends as (
    select
        model_id,
        task,
        arg_min(loss, step) as first_loss,
        min(loss) as min_loss,
        arg_min(step, loss) as min_step,
        arg_max(loss, step) as last_loss,
        min(step) as first_step,
        max(step) as last_step,
        count(*) as n_checkpoints
    from loss
    group by model_id, task
),

half as (
    select
        l.model_id,
        l.task,
        min(l.step) as transition_step
    from loss as l
    inner join ends as e using (model_id, task)
    where
        e.first_loss - e.min_loss >= {{ var('capability_min_drop', 1.0) }}
        and l.loss <= (e.first_loss + e.min_loss) / 2
    group by l.model_id, l.task
),

bracketed as (
    select
        h.model_id,
        h.task,
        h.transition_step,
        max(case when l.step < h.transition_step then l.step end) as prev_step,
        min(case when l.step > h.transition_step then l.step end) as next_step
    from half as h
    inner join loss as l using (model_id, task)
    group by h.model_id, h.task, h.transition_step
),

final as (
    select
        e.model_id,
        e.task,
        b.transition_step,
        b.prev_step,
        b.next_step,
        case
            when b.transition_step is null then 'no transition'
            when e.min_step >= e.last_step then 'still falling at the last checkpoint'
            when e.last_loss - e.min_loss <= 0.1 * (e.first_loss - e.min_loss) then 'complete'
            else 'rose again after its minimum'
        end as transition_status,
        e.first_loss,
        e.min_loss,
        e.last_loss,
        e.first_step,
        e.last_step,
        e.n_checkpoints
    from ends as e
    left join bracketed as b using (model_id, task)
)

select * from final
