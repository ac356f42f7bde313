-- tokens_seen: the tokens the model had trained on at the checkpoint, where the revision
-- name says it (OLMo's -tokens<M>B, a --revision-pattern with a tokens group: recorded at
-- ingest) or the suite does (suites below: model-id prefix -> tokens per step, Pythia's
-- 1024 sequences x 2048 tokens = 2,097,152); NULL otherwise. Reports comparing models can
-- align on it as on steps.
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
        arg_max(tokens_seen, ended_at) as named_tokens_seen,
        min(started_at) as first_ingested_at,
        max(ended_at) as last_ingested_at,
        list(distinct probe order by probe) as probes
    from runs
    group by model_id, step
),

suites as (
    select
        'EleutherAI/pythia-' as model_prefix,
        2097152 as tokens_per_step
),

with_suite as (
    select
        l.*,
        s.tokens_per_step
    from latest as l
    left join suites as s on starts_with(l.model_id, s.model_prefix)
),

final as (
    select
        model_id,
        step,
        source,
        revision,
        content_hash,
        coalesce(named_tokens_seen, tokens_per_step * step) as tokens_seen,
        row_number() over (partition by model_id order by step) - 1 as checkpoint_index,
        probes,
        first_ingested_at,
        last_ingested_at
    from with_suite
)

select * from final
