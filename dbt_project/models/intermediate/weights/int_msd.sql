-- MSD(tau) = 1/(N-1) sum_k (S_tau,k - mean_k S_tau,k)^2 with S_tau,k = sum_{t <= tau} w_t,k:
-- the sample variance over k of the cumulative sums (METHODS §B, eqs. 4-5).
-- msd_time_demeaned is the same after subtracting each parameter's mean over the ingested
-- checkpoints (time) instead: its cumulative sum is 0 at the last checkpoint for every k,
-- so it always peaks and falls to exactly 0 there — a check on how the seed's Figure 3 may
-- have been drawn, never a finding.
with samples as (
    select * from {{ ref('stg_weight_sample') }}
),

values_by_index as (
    select
        model_id,
        tensor_name,
        step,
        n_total,
        is_exact,
        unnest(sampled_values) as w,
        unnest(range(len(sampled_values))) as k
    from samples
),

demeaned as (
    select
        *,
        w - avg(w) over (partition by model_id, tensor_name, k) as w_time_demeaned
    from values_by_index
),

cumulative as (
    select
        model_id,
        tensor_name,
        step,
        n_total,
        is_exact,
        sum(w) over (
            partition by model_id, tensor_name, k
            order by step
            rows between unbounded preceding and current row
        ) as s_cum,
        sum(w_time_demeaned) over (
            partition by model_id, tensor_name, k
            order by step
            rows between unbounded preceding and current row
        ) as s_cum_time_demeaned
    from demeaned
),

final as (
    select
        model_id,
        tensor_name,
        step,
        var_samp(s_cum) as msd,
        count(*) as n_sampled,
        any_value(n_total) as n_total,
        bool_and(is_exact) as is_exact,
        var_samp(s_cum_time_demeaned) as msd_time_demeaned
    from cumulative
    group by model_id, tensor_name, step
)

select * from final
