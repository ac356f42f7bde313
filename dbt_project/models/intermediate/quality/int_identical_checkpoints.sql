-- Checkpoints of one model whose weight files are byte-identical (the EleutherAI/pythia
-- #205 pattern: step branches serving the final checkpoint's content): the same
-- content_hash (sha256 of the weight files' bytes; the files' ETags for hub files read by
-- ranges) recorded by successful jobs at different steps. One row per step of such a group,
-- naming the other steps; a real series never repeats its weights across steps.
with runs as (
    select * from {{ ref('stg_ingest_runs') }}
),

step_hashes as (
    select distinct
        model_id,
        step,
        content_hash
    from runs
    where status = 'success' and content_hash is not null
),

same_hash as (
    select
        a.model_id,
        a.step,
        a.content_hash,
        b.step as other_step
    from step_hashes as a
    inner join step_hashes as b
        on a.model_id = b.model_id and a.content_hash = b.content_hash and a.step <> b.step
),

final as (
    select
        model_id,
        step,
        'checkpoint' as probe,
        substr(content_hash, 1, 16) as object,
        'identical_checkpoint' as kind,
        concat(
            'weights byte-identical to step ', min(other_step), ' (', count(*),
            ' other step(s) share content hash ', substr(content_hash, 1, 12), ')'
        ) as issue,
        cast(null as varchar) as failed_expectations
    from same_hash
    group by model_id, step, content_hash
)

select * from final
