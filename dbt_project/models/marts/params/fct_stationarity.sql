-- The early-stop suggestion of Nicolini et al. (2024): the first checkpoint from which a
-- tensor's weights stay (nearly) still. Per model and tensor, with
--   rate_t = rel_disp_per_step = ‖w_t − w_prev‖ / ‖w_prev‖ / (t − prev)
-- and the threshold = var('stationarity_fraction') (default 0.2) x the largest rate of the
-- run, stationary_step is the first ingested checkpoint after the last one whose rate
-- exceeds the threshold: from there on, every rate stays at or below it. NULL when the
-- last checkpoint is still above the threshold (not stationary yet). A threshold relative
-- to the run's own peak makes the rule free of the learning rate and the tensor's scale.
-- Rows with NULL rates (a zero previous norm) are left out.
-- A tensor that starts at (or near) zero — biases, zero-initialised layers — is never
-- called stationary: its first relative displacement divides by a near-zero norm, sets
-- the threshold, and every later rate falls under it however much the tensor still moves.
-- zero_initialised (initial norm <= var('stationarity_zero_init_ratio', 0.01) x the final
-- norm) marks it; its stationary_step is NULL and stationarity_status says why.
{{ incremental_config(['model_id', 'tensor_name'], ['displacement'], 'series') }}

with changed as (
    {{ changed_slices(['displacement'], 'series') }}
),

norms as (
    select
        model_id,
        tensor_name,
        coalesce(arg_min(norm_prev, step), arg_min(norm, step)) as initial_norm,
        arg_max(norm, step) as final_norm
    from {{ ref('fct_displacement') }}
    where model_id in (select c.model_id from changed as c)
    group by model_id, tensor_name
),

rates as (
    select
        model_id,
        tensor_name,
        layer,
        param_kind,
        step,
        rel_disp_per_step as rate
    from {{ ref('fct_displacement') }}
    where
        model_id in (select c.model_id from changed as c)
        and rel_disp_per_step is not null and isfinite(rel_disp_per_step)
),

peaks as (
    select
        model_id,
        tensor_name,
        max(rate) as peak_rate,
        arg_max(step, rate) as peak_rate_step,
        max(rate) * {{ var('stationarity_fraction', 0.2) }} as threshold,
        max(step) as last_step,
        min(step) as first_step,
        count(*) as n_checkpoints
    from rates
    group by model_id, tensor_name
),

last_above as (
    select
        r.model_id,
        r.tensor_name,
        max(r.step) as last_above_step
    from rates as r
    inner join peaks as p using (model_id, tensor_name)
    where r.rate > p.threshold
    group by r.model_id, r.tensor_name
),

first_below as (
    select
        r.model_id,
        r.tensor_name,
        min(r.step) as stationary_step
    from rates as r
    left join last_above as l using (model_id, tensor_name)
    where r.step > coalesce(l.last_above_step, -1)
    group by r.model_id, r.tensor_name
),

zero_init as (
    select
        model_id,
        tensor_name,
        initial_norm,
        final_norm,
        coalesce(
            initial_norm <= {{ var('stationarity_zero_init_ratio', 0.01) }} * final_norm, false
        ) as zero_initialised
    from norms
),

final as (
    select
        p.model_id,
        p.tensor_name,
        any_value(r.layer) as layer,
        any_value(r.param_kind) as param_kind,
        case when not n.zero_initialised then f.stationary_step end as stationary_step,
        not n.zero_initialised and f.stationary_step is not null as is_stationary,
        p.threshold,
        {{ var('stationarity_fraction', 0.2) }} as threshold_fraction,
        p.peak_rate,
        p.peak_rate_step,
        l.last_above_step,
        p.first_step,
        p.last_step,
        p.n_checkpoints,
        case
            when not n.zero_initialised and f.stationary_step is not null and p.last_step > 0
                then 1.0 - f.stationary_step / p.last_step
        end as fraction_of_training_saved,
        n.initial_norm,
        n.final_norm,
        n.zero_initialised,
        case
            when n.zero_initialised then 'excluded: zero-initialised (relative rates start from a near-zero norm)'
            when f.stationary_step is not null then 'stationary'
            else 'not stationary by the last checkpoint'
        end as stationarity_status,
        any_value(c.source_version) as source_version
    from peaks as p
    inner join changed as c using (model_id)
    inner join rates as r using (model_id, tensor_name)
    inner join zero_init as n using (model_id, tensor_name)
    left join last_above as l using (model_id, tensor_name)
    left join first_below as f using (model_id, tensor_name)
    group by all
)

select * from final
