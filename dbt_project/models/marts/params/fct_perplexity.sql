-- Perplexity per model, checkpoint, evaluation set and method (METHODS §B, eq. 6):
-- forward (teacher-forced, token-weighted over all items) and causal_unmasking (the
-- perplexity of the model's own greedy completions of every prefix, Figure 6).
-- mean_item_perplexity is the mean over items (forward) or over (item, prefix) rows
-- (causal_unmasking) of each one's own perplexity. Items with non-finite NLL never enter
-- either figure (n_nonfinite; flagged in fct_params_data_quality).
{{ incremental_config(['model_id', 'step', 'dataset', 'method'], ['perplexity'], 'series') }}

with changed as (
    {{ changed_slices(['perplexity'], 'series') }}
),

ppl as (
    select
        p.*,
        c.source_version
    from {{ ref('stg_perplexity') }} as p
    inner join changed as c using (model_id)
),

items as (
    select i.*
    from {{ ref('stg_perplexity_items') }} as i
    inner join changed using (model_id)
),

per_item as (
    select
        model_id,
        step,
        dataset,
        method,
        avg(exp(least(nll_sum / n_tokens, 700))) as mean_item_perplexity
    from items
    where isfinite(nll_sum) and n_tokens > 0
    group by model_id, step, dataset, method
),

final as (
    select
        p.model_id,
        p.step,
        p.dataset,
        p.method,
        p.perplexity,
        ln(p.perplexity) as log_perplexity,
        p.mean_nll,
        i.mean_item_perplexity,
        p.perplexity - lag(p.perplexity) over (
            partition by p.model_id, p.dataset, p.method order by p.step
        ) as perplexity_diff,
        p.eval_hash,
        p.n_items,
        p.n_tokens,
        p.n_nonfinite,
        p.source_version
    from ppl as p
    left join per_item as i using (model_id, step, dataset, method)
)

select * from final
