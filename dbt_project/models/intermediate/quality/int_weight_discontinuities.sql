-- Discontinuities: a checkpoint whose tensor jumps against BOTH neighbours far beyond the
-- series' typical step-to-step change (the #206 pattern seen without hashes: a stale
-- shard re-saved, a checkpoint from another run). Statistic, per model and tensor of the
-- weights probe, on the L2 norm x at the ingested steps s:
--   an interval's change, per square root of its gap (random-walk scaling, so log-spaced
--   and linear stretches of one schedule compare):  c_j = |x_j - x_(j-1)| / sqrt(s_j - s_(j-1))
--   the series' typical change: the median of c_j over its intervals
--   a checkpoint's jump: min(c_prev, c_next) / median, counted only when x moves in
--   opposite directions on the two sides (x_i outside its neighbours' range: a spike,
--   never a trend, however steep)
-- flagged when jump_z > var('discontinuity_z', 10) and the series has at least
-- var('discontinuity_min_intervals', 4) intervals (a median of fewer says little). The first
-- and last checkpoints have one neighbour and are never flagged. A value the tensor holds
-- again at a later step (a stale copy, int_stale_tensors) is kept at its last step only, so
-- copies are reported once, as stale tensors, and do not make their genuine neighbours
-- look like spikes. Under Gaussian noise a two-sided jump_z of 10 has probability below
-- 1e-20 per checkpoint.
with stats as (
    select
        model_id,
        tensor_name,
        step,
        l2_norm,
        tensor_hash
    from {{ ref('stg_weight_stats') }}
    where l2_norm is not null
),

deduped as (
    select *
    from stats
    qualify
        tensor_hash is null
        or step = max(step) over (partition by model_id, tensor_name, tensor_hash)
),

changes as (
    select
        model_id,
        tensor_name,
        step,
        l2_norm,
        lag(step) over w as prev_step,
        lead(step) over w as next_step,
        l2_norm - lag(l2_norm) over w as d_prev,
        lead(l2_norm) over w - l2_norm as d_next
    from deduped
    window w as (partition by model_id, tensor_name order by step)
),

typical as (
    select
        model_id,
        tensor_name,
        median(abs(d_prev) / sqrt(step - prev_step)) as typical_change,
        count(*) as n_intervals
    from changes
    where d_prev is not null
    group by model_id, tensor_name
),

scored as (
    select
        c.model_id,
        c.tensor_name,
        c.step,
        c.prev_step,
        c.next_step,
        c.l2_norm,
        t.typical_change,
        least(
            abs(c.d_prev) / sqrt(c.step - c.prev_step),
            abs(c.d_next) / sqrt(c.next_step - c.step)
        ) / t.typical_change as jump_z
    from changes as c
    inner join typical as t using (model_id, tensor_name)
    where
        c.d_prev * c.d_next < 0
        and t.typical_change > 0
        and t.n_intervals >= {{ var('discontinuity_min_intervals', 4) }}
),

final as (
    select
        model_id,
        step,
        'weights' as probe,
        tensor_name as object,
        'discontinuity' as kind,
        concat(
            tensor_name, ' L2 norm ', round(l2_norm, 6), ' jumps against both neighbours (steps ',
            prev_step, ' and ', next_step, '): ', round(jump_z, 1),
            ' x the series'' median change per sqrt(step) (threshold ',
            {{ var('discontinuity_z', 10) }}, ')'
        ) as issue,
        cast(null as varchar) as failed_expectations
    from scored
    where jump_z > {{ var('discontinuity_z', 10) }}
)

select * from final
