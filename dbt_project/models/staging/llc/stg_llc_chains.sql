with source as (
    select * from {{ source('raw_llc', 'llc_chains') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        dataset,
        cast(chain as integer) as chain_index,  -- noqa: RF04
        cast(llc as double) as llc,
        cast(diverged as boolean) as diverged,
        reason,
        cast(loss_mean as double) as loss_mean,
        cast(loss_std as double) as loss_std,
        cast(loss_max as double) as loss_max,
        cast(loss_last as double) as loss_last
    from source
)

select * from final
