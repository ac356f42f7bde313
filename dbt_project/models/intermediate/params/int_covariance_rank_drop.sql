-- The covariance-rank drop of each model and tensor (the step Figure 7's derivative marks):
-- at the largest batch size, the rank averaged over seeds and over the tolerance grid
-- (one summary that does not depend on a chosen tolerance), then its first difference
-- between consecutive checkpoints; the drop step is the checkpoint that ends the interval
-- with the largest decrease. NULL when the mean rank never falls by at least
-- var('covariance_min_drop') (default 1: one eigenvalue on average over the grid), so a
-- single eigenvalue crossing one tolerance is not called a drop.
-- The same on rank_relative (eigenvalues above tolerance x the largest): an absolute
-- tolerance counts more eigenvalues as W_U's norm grows, so its rank can track the norm
-- rather than the spectrum's shape; the relative rank is free of that scale.
with ranks as (
    select * from {{ ref('int_covariance_rank') }}
),

largest_batch as (
    select
        model_id,
        tensor_name,
        max(batch_size) as batch_size
    from ranks
    group by model_id, tensor_name
),

mean_rank as (
    select
        r.model_id,
        r.tensor_name,
        r.batch_size,
        r.step,
        avg(r.rank) as mean_rank,
        avg(r.rank_relative) as mean_rank_relative
    from ranks as r
    inner join largest_batch using (model_id, tensor_name, batch_size)
    group by r.model_id, r.tensor_name, r.batch_size, r.step
),

diffs as (
    select
        *,
        mean_rank - lag(mean_rank) over w as rank_diff,
        mean_rank_relative - lag(mean_rank_relative) over w as rank_relative_diff
    from mean_rank
    window w as (partition by model_id, tensor_name order by step)
),

final as (
    select
        model_id,
        tensor_name,
        any_value(batch_size) as batch_size,
        case
            when min(rank_diff) <= -{{ var('covariance_min_drop', 1.0) }}
                then arg_min(step, rank_diff)
        end as rank_drop_step,
        min(rank_diff) as rank_drop,
        arg_min(mean_rank, step) as first_mean_rank,
        arg_max(mean_rank, step) as last_mean_rank,
        case
            when min(rank_relative_diff) <= -{{ var('covariance_min_drop', 1.0) }}
                then arg_min(step, rank_relative_diff)
        end as relative_rank_drop_step,
        min(rank_relative_diff) as relative_rank_drop,
        arg_min(mean_rank_relative, step) as first_mean_rank_relative,
        arg_max(mean_rank_relative, step) as last_mean_rank_relative
    from diffs
    group by model_id, tensor_name
)

select * from final
