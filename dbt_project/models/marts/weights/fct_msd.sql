-- MSD per model, tensor and checkpoint (METHODS §B, eqs. 4-5), and beside it the
-- time-demeaned variant (a check on the seed's Figure 3, not a finding: it is 0 at the
-- last checkpoint by construction). MSD(t) - MSD(t-1) = Var_k(w_t) + 2 Cov_k(S_{t-1}, w_t),
-- so MSD falls only when the weights turn against their running sum.
with msd as (
    select * from {{ ref('int_msd') }}
),

final as (
    select
        model_id,
        tensor_name,
        step,
        msd,
        n_sampled,
        n_total,
        is_exact,
        msd_time_demeaned
    from msd
)

select * from final
