-- Lineage: for every checkpoint and probe configuration, the job whose rows the marts hold
-- (the latest successful run): the checkpoint's content hash, the probe version, its
-- parameters and the code version. Any mart row keyed by (model_id, step) traces here.
with runs as (
    select * from {{ ref('stg_ingest_runs') }}
    where status = 'success'
),

final as (
    select
        model_id,
        step,
        probe,
        params_hash,
        arg_max(run_id, ended_at) as run_id,
        arg_max(content_hash, ended_at) as content_hash,
        arg_max(probe_version, ended_at) as probe_version,
        arg_max(params, ended_at) as params,
        arg_max(code_version, ended_at) as code_version,
        arg_max(source_kind, ended_at) as source,
        max(ended_at) as loaded_at,
        count(*) as n_successful_runs
    from runs
    group by model_id, step, probe, params_hash
)

select * from final
