-- Non-finite inputs met by the parameter-dynamics probes, one row per model, checkpoint,
-- probe and object (tensor or evaluation set/method): NaN or infinite weights are recorded
-- here and kept out of every aggregate (moments, displacement sums, covariance ranks,
-- perplexities) rather than poisoning them.
with weights as (
    select
        model_id,
        step,
        'weights' as probe,
        tensor_name as object,
        n_nonfinite,
        n as n_total
    from {{ ref('stg_weight_stats') }}
    where n_nonfinite > 0
),

covariance as (
    select
        model_id,
        step,
        'covariance' as probe,
        tensor_name as object,
        max(n_nonfinite) as n_nonfinite,
        max(vocab * d) as n_total
    from {{ ref('stg_covariance_eigs') }}
    where n_nonfinite > 0
    group by model_id, step, tensor_name
),

displacement as (
    select
        model_id,
        step,
        'displacement' as probe,
        tensor_name as object,
        n_nonfinite,
        n as n_total
    from {{ ref('stg_displacement') }}
    where n_nonfinite > 0
),

perplexity as (
    select
        model_id,
        step,
        'perplexity' as probe,
        dataset || '/' || method as object,
        n_nonfinite,
        n_items + n_nonfinite as n_total
    from {{ ref('stg_perplexity') }}
    where n_nonfinite > 0
),

unioned as (
    select * from weights
    union all
    select * from covariance
    union all
    select * from displacement
    union all
    select * from perplexity
),

final as (
    select
        model_id,
        step,
        probe,
        object,
        n_nonfinite,
        n_total,
        case probe
            when 'perplexity' then 'items with non-finite NLL (excluded from the perplexity)'
            when 'covariance' then 'non-finite weights (no eigenvalues; left out of the ranks)'
            when 'displacement' then 'non-finite elements in this or the previous checkpoint (left out of the sums)'
            else 'non-finite weights (left out of the moments and histogram)'
        end as issue
    from unioned
)

select * from final
