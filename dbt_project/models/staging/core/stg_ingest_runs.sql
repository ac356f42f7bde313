with source as (
    select * from {{ source('raw_core', 'ingest_runs') }}
),

final as (
    select
        run_id,
        model_id,
        cast(step as bigint) as step,
        revision,
        source as source_kind,
        probe,
        probe_version,
        params,
        params_hash,
        content_hash,
        code_version,
        status,
        started_at,
        ended_at,
        rows as row_counts,
        error,
        failed_expectations,
        cast(tokens_seen as bigint) as tokens_seen
    from source
)

select * from final
