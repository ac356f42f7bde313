-- A bootstrap over prompts of the residual signals that are means over prompts, so that
-- emergence is judged on a confidence interval and not on a noisy mean crossing its
-- threshold. Per model, checkpoint and signal, from each prompt's last-token values
-- (stg_residual_prompt_points):
--   density_growth   mean over prompts of PR(last point) − PR(point 0)
--   velocity_growth  mean velocity of the last transition / mean velocity of the first
-- var('residual_bootstrap_draws') resamples (default 400) of the prompts with replacement,
-- drawn by a hash of (draw, position, model, step, var('residual_bootstrap_seed')) so a
-- rebuild gives the same interval; ci_low / ci_high are the var('residual_bootstrap_alpha')
-- / 2 and 1 − alpha / 2 quantiles (default alpha 0.05) of the resampled statistic.
-- Signals summarised per unit or per prompt pair (continuity, contraction, attractor,
-- rotations) have no per-prompt value here, so they get no interval.
with samples as (
    select * from {{ ref('stg_residual_prompt_points') }}
),

depth as (
    select
        model_id,
        step,
        max(layer) as n_transitions
    from samples
    group by model_id, step
),

per_prompt as (
    select
        s.model_id,
        s.step,
        s.prompt_index,
        (
            max(case when s.layer = d.n_transitions then s.participation_ratio end)
            - max(case when s.layer = 0 then s.participation_ratio end)
        ) as density_growth,
        max(case when s.layer = d.n_transitions - 1 then s.velocity end) as velocity_last,
        max(case when s.layer = 0 then s.velocity end) as velocity_first
    from samples as s
    inner join depth as d using (model_id, step)
    group by s.model_id, s.step, s.prompt_index
),

numbered as (
    select
        *,
        row_number() over (partition by model_id, step order by prompt_index) - 1 as prompt_slot,
        count(*) over (partition by model_id, step) as n_prompts
    from per_prompt
),

sizes as (
    select distinct
        model_id,
        step,
        n_prompts
    from numbered
),

slots as (
    select unnest(range(max(n_prompts))) as slot
    from sizes
),

draws as (
    select
        z.model_id,
        z.step,
        b.draw,
        hash(
            b.draw, j.slot, z.model_id, z.step, {{ var('residual_bootstrap_seed', 0) }}
        ) % z.n_prompts as prompt_slot
    from sizes as z
    cross join range({{ var('residual_bootstrap_draws', 400) }}) as b (draw)
    inner join slots as j on z.n_prompts > j.slot
),

resampled as (
    select
        d.model_id,
        d.step,
        d.draw,
        avg(n.density_growth) as density_growth,
        avg(n.velocity_last) / nullif(avg(n.velocity_first), 0) as velocity_growth
    from draws as d
    inner join numbered as n using (model_id, step, prompt_slot)
    group by d.model_id, d.step, d.draw
),

long as (
    unpivot resampled
    on density_growth, velocity_growth
    into name signal value value
),

final as (
    select
        l.model_id,
        l.step,
        l.signal,
        quantile_cont(l.value, {{ var('residual_bootstrap_alpha', 0.05) }} / 2) as ci_low,
        quantile_cont(l.value, 1 - {{ var('residual_bootstrap_alpha', 0.05) }} / 2) as ci_high,
        count(*) as n_draws,
        any_value(z.n_prompts) as n_prompts
    from long as l
    inner join sizes as z using (model_id, step)
    where isfinite(l.value)
    group by l.model_id, l.step, l.signal
)

select * from final
