with stats as (
    select * from {{ ref('stg_weight_stats') }}
),

ranges as (
    select
        model_id,
        tensor_name,
        min(min_value) as range_lo,
        max(max_value) as range_hi,
        count(*) as n_checkpoints
    from stats
    where isfinite(min_value) and isfinite(max_value)
    group by model_id, tensor_name
),

final as (
    select
        model_id,
        tensor_name,
        range_lo,
        -- a tensor constant over training still gets bins of positive width
        greatest(range_hi, range_lo + 1e-9) as range_hi,
        {{ var('density_bins') }} as n_bins,
        (greatest(range_hi, range_lo + 1e-9) - range_lo) / {{ var('density_bins') }} as bin_width,
        n_checkpoints
    from ranges
)

select * from final
