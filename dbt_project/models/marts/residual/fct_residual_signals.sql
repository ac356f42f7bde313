-- How the residual-stream dynamics change over training: one row per model, checkpoint and
-- signal (see int_residual_signals for each signal's definition), with whether the
-- paper's finding holds at that checkpoint (null for signals without a threshold).
with signals as (
    select * from {{ ref('int_residual_signals') }}
),

final as (
    select
        model_id,
        step,
        signal,
        value,
        threshold,
        direction,
        case direction
            when 'below' then value < threshold
            when 'above' then value > threshold
        end as holds
    from signals
)

select * from final
