with source as (
    select * from {{ source('raw_capability', 'capability') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        task,
        cast(prompt_index as integer) as prompt_index,
        seed,
        cast(n_scored as integer) as n_scored,
        cast(loss as double) as loss,
        cast(accuracy as double) as accuracy
    from source
)

select * from final
