-- The local learning coefficient per checkpoint (the llc probe: devinterp's SGLD on a fixed
-- data set): the mean and standard deviation over the chains that did not diverge, with
-- the job's hyperparameter hash (LLC values compare only within one hash), nβ, the data
-- set's hash, and a flag when a chain diverged. llc_mean is NULL when no chain is left
-- (a job whose every chain diverged fails and has no row here), never NaN.
with llc as (
    select * from {{ ref('stg_llc') }}
),

runs as (
    select
        model_id,
        step,
        arg_max(params_hash, ended_at) as params_hash
    from {{ ref('stg_ingest_runs') }}
    where probe = 'llc' and status = 'success'
    group by model_id, step
),

final as (
    select
        l.model_id,
        l.step,
        l.dataset,
        ln(l.step + 1) as log_step,
        case when isfinite(l.llc_mean) then l.llc_mean end as llc_mean,
        case when isfinite(l.llc_std) then l.llc_std end as llc_std,
        case
            when isfinite(l.llc_std) and l.n_chains > l.n_diverged
                then l.llc_std / sqrt(l.n_chains - l.n_diverged)
        end as llc_se,
        l.n_chains,
        l.n_diverged,
        l.n_diverged > 0 as diverged,
        r.params_hash,
        l.n_beta,
        l.init_loss,
        l.data_hash,
        l.n_sequences,
        l.seq_len
    from llc as l
    left join runs as r using (model_id, step)
)

select * from final
