with source as (
    select * from {{ source('raw_training', 'training_log') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as checkpoint_step,
        cast(log_step as bigint) as log_step,
        metric,
        cast(value as double) as value
    from source
)

select * from final
