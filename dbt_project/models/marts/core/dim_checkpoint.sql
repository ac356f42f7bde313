with runs as (
    select * from {{ ref('stg_ingest_runs') }}
    where status = 'success'
),

latest as (
    select
        model_id,
        step,
        arg_max(source_kind, ended_at) as source,
        arg_max(revision, ended_at) as revision,
        arg_max(content_hash, ended_at) as content_hash,
        min(started_at) as first_ingested_at,
        max(ended_at) as last_ingested_at,
        list(distinct probe order by probe) as probes
    from runs
    group by model_id, step
),

final as (
    select
        model_id,
        step,
        source,
        revision,
        content_hash,
        row_number() over (partition by model_id order by step) - 1 as checkpoint_index,
        probes,
        first_ingested_at,
        last_ingested_at
    from latest
)

select * from final
