-- When perplexity drops, per model, evaluation set and method (finite values only):
-- half_drop_step is the first checkpoint where log-perplexity has fallen half-way from its
-- value at the first checkpoint to its minimum (the transition's midpoint; it does not
-- depend on how checkpoints are spaced); steepest_drop_step ends the interval between
-- consecutive checkpoints with the largest fall of log-perplexity. Both NULL when
-- perplexity never falls below its first value.
with ppl as (
    select
        model_id,
        dataset,
        method,
        step,
        ln(perplexity) as log_ppl
    from {{ ref('stg_perplexity') }}
    where perplexity is not null and isfinite(perplexity)
),

bounds as (
    select
        model_id,
        dataset,
        method,
        arg_min(log_ppl, step) as first_log_ppl,
        min(log_ppl) as min_log_ppl,
        arg_min(step, log_ppl) as min_step,
        count(*) as n_checkpoints
    from ppl
    group by model_id, dataset, method
),

diffs as (
    select
        *,
        log_ppl - lag(log_ppl) over (partition by model_id, dataset, method order by step) as log_ppl_diff
    from ppl
),

half as (
    select
        d.model_id,
        d.dataset,
        d.method,
        min(d.step) as half_drop_step
    from diffs as d
    inner join bounds as b using (model_id, dataset, method)
    where
        b.first_log_ppl > b.min_log_ppl
        and d.log_ppl <= (b.first_log_ppl + b.min_log_ppl) / 2
    group by d.model_id, d.dataset, d.method
),

steepest as (
    select
        model_id,
        dataset,
        method,
        case when min(log_ppl_diff) < 0 then arg_min(step, log_ppl_diff) end as steepest_drop_step,
        min(log_ppl_diff) as steepest_log_ppl_diff
    from diffs
    group by model_id, dataset, method
),

final as (
    select
        b.model_id,
        b.dataset,
        b.method,
        b.n_checkpoints,
        exp(b.first_log_ppl) as first_perplexity,
        exp(b.min_log_ppl) as min_perplexity,
        b.min_step,
        h.half_drop_step,
        s.steepest_drop_step,
        case when s.steepest_drop_step is not null then s.steepest_log_ppl_diff end as steepest_log_ppl_diff
    from bounds as b
    left join half as h using (model_id, dataset, method)
    left join steepest as s using (model_id, dataset, method)
)

select * from final
