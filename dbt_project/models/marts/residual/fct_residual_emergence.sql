-- The step at which each residual-dynamics signal emerges during training, per model and
-- signal (rules in int_residual_emergence), with the signal's first and last values and
-- the share of the model's checkpoints before it. emergence_step is judged on a bootstrap
-- interval over prompts and the paper's direction; emergence_status says why a signal has
-- none (not judged, against the paper's direction, or the interval never clears).
with emergence as (
    select * from {{ ref('int_residual_emergence') }}
),

final as (
    select
        model_id,
        signal,
        emergence_step,
        emergence_rule,
        threshold,
        direction,
        threshold_step,
        half_change_step,
        first_step,
        last_step,
        n_checkpoints,
        first_value,
        last_value,
        emergence_step is not null as has_emerged,
        (emergence_step - first_step)::double / nullif(last_step - first_step, 0)
            as emergence_fraction,
        emergence_status,
        paper_direction,
        observed_direction,
        margin_step
    from emergence
)

select * from final
