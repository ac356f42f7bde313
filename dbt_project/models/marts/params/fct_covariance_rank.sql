-- Covariance rank of the unembedding (Nicolini et al. 2024, §4.3, Figure 7) per model,
-- checkpoint, batch size and tolerance on the grid 0.1 .. 1.0: rank(C; tol) = the number
-- of eigenvalues of C = cov over the batch of W_U V (V ~ N(0, I_d), B columns, seeded and
-- shared by every checkpoint) above tol. With several seeds, rank is their mean and
-- rank_min / rank_max their range. rank_diff is the first difference over checkpoints
-- (Figure 7's right column); rank_diff_per_step divides it by the step gap. rank_relative
-- counts eigenvalues above tol x the largest (scale-free: the absolute rank also grows
-- with W_U's norm) and rank_relative_diff is its first difference. Any other
-- tolerance is a query on stg_covariance_eigs.eigenvalues.
{{ incremental_config(['model_id', 'step', 'batch_size', 'tolerance', 'tensor_name'], ['covariance'], 'series') }}

with changed as (
    {{ changed_slices(['covariance'], 'series') }}
),

ranks as (
    select
        r.*,
        c.source_version as series_version
    from {{ ref('int_covariance_rank') }} as r
    inner join changed as c using (model_id)
),

over_seeds as (
    select
        model_id,
        step,
        tensor_name,
        batch_size,
        tolerance,
        avg(rank) as rank,
        min(rank) as rank_min,
        max(rank) as rank_max,
        avg(rank_relative) as rank_relative,
        count(*) as n_seeds,
        any_value(series_version) as series_version
    from ranks
    group by model_id, step, tensor_name, batch_size, tolerance
),

with_prev as (
    select
        *,
        lag(step) over w as prev_step,
        rank - lag(rank) over w as rank_diff,
        rank_relative - lag(rank_relative) over w as rank_relative_diff
    from over_seeds
    window w as (partition by model_id, tensor_name, batch_size, tolerance order by step)
),

final as (
    select
        model_id,
        step,
        batch_size,
        tolerance,
        rank,
        tensor_name,
        rank_min,
        rank_max,
        rank_relative,
        n_seeds,
        prev_step,
        rank_diff,
        rank_diff / (step - prev_step) as rank_diff_per_step,
        rank_relative_diff,
        series_version as source_version
    from with_prev
)

select * from final
