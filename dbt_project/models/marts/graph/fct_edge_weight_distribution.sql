-- The edge-weight distribution per graph: log10-grid histogram (hist_edges has one more entry
-- than hist_counts), quantiles, Gini, and the tail fit: tail_index is the power-law exponent
-- alpha on weights >= xmin (tail_index_se its standard error, ks_distance the power law's KS
-- distance; fitted by the powerlaw package); loglik_ratio > 0 favours the power law over the lognormal, with
-- Vuong's z and two-sided p (large p: the sample cannot tell them apart).
with distribution as (
    select * from {{ ref('int_graph_weight_distribution') }}
),

final as (
    select
        model_id,
        step,
        task,
        ablation,
        cast(n_edges as integer) as n_edges,
        mean as mean_weight,
        max as max_weight,
        q05,
        q25,
        q50,
        q75,
        q95,
        gini,
        xmin,
        cast(n_tail as integer) as n_tail,
        tail_index,
        tail_index_se,
        ks_distance,
        lognormal_mu,
        lognormal_sigma,
        loglik_ratio,
        vuong_z,
        vuong_p,
        case
            when vuong_p is null or isnan(vuong_p) then null
            when vuong_p >= 0.1 then 'undecided'
            when loglik_ratio > 0 then 'power_law'
            else 'lognormal'
        end as tail_preferred,
        hist_edges,
        hist_counts
    from distribution
)

select * from final
