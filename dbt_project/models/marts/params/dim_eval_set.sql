-- The evaluation sets behind fct_perplexity, once each: every item's token ids, keyed by
-- the set's name and content hash (the same set used by several models or checkpoints
-- appears once), so every perplexity can be recomputed from the warehouse alone.
with evals as (
    select * from {{ ref('stg_eval_sets') }}
),

final as (
    select
        dataset,
        eval_hash,
        item,
        any_value(spec) as spec,
        any_value(n_tokens) as n_tokens,
        any_value(token_ids) as token_ids,
        count(distinct model_id) as n_models
    from evals
    group by dataset, eval_hash, item
)

select * from final
