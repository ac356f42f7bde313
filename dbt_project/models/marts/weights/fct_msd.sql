with msd as (
    select * from {{ ref('int_msd') }}
),

final as (
    select
        model_id,
        tensor_name,
        step,
        msd,
        n_sampled,
        n_total,
        is_exact
    from msd
)

select * from final
