-- Every flagged checkpoint and why: jobs whose latest attempt failed (the error the
-- manifest recorded: a bad file, a failed data-quality expectation ...; for a job the
-- quality gate failed, failed_expectations lists the expectations as a JSON array) and
-- non-finite inputs the probes met and kept out of the aggregates; checkpoints whose weights
-- are byte-identical to another step's (int_identical_checkpoints, probe 'checkpoint');
-- tensors holding the same values at non-adjacent steps (int_stale_tensors, kind
-- stale_tensor) and tensors whose norm jumps against both neighbours
-- (int_weight_discontinuities, kind discontinuity), probe 'weights', object the tensor.
with runs as (
    select * from {{ ref('stg_ingest_runs') }}
),

latest_attempt as (
    select
        model_id,
        step,
        probe,
        params_hash,
        arg_max(status, ended_at) as status,
        arg_max(error, ended_at) as error,
        arg_max(failed_expectations, ended_at) as failed_expectations
    from runs
    group by model_id, step, probe, params_hash
),

failed_jobs as (
    select
        model_id,
        step,
        probe,
        params_hash as object,
        'failed_job' as kind,
        error as issue,
        failed_expectations
    from latest_attempt
    where status = 'failed'
),

nonfinite as (
    select
        model_id,
        step,
        probe,
        object,
        'nonfinite_input' as kind,
        n_nonfinite || ' of ' || n_total || ' values: ' || issue as issue,
        cast(null as varchar) as failed_expectations
    from {{ ref('fct_params_data_quality') }}
),

-- the stale-checkpoint checks, each with fct_data_quality's columns in its order
stale_checks as (
    select
        model_id,
        step,
        probe,
        object,
        kind,
        issue,
        failed_expectations
    from (
        select * from {{ ref('int_identical_checkpoints') }}
        union all by name
        select * from {{ ref('int_stale_tensors') }}
        union all by name
        select * from {{ ref('int_weight_discontinuities') }}
    ) as checks
),

final as (
    select * from failed_jobs
    union all
    select * from nonfinite
    union all
    select * from stale_checks
)

select * from final
