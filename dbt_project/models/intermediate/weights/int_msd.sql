-- MSD(tau) = 1/(N-1) sum_k (S_tau,k - mean_k S_tau,k)^2 with S_tau,k = sum_{t <= tau} w_t,k:
-- the sample variance over k of the cumulative sums (METHODS §B, eqs. 4-5).
--
-- Streaming: running_sum carries S_tau (one double per sampled index k, in the sample's
-- order) forward, so adding checkpoint tau+1 reads S_tau and the new sample only,
-- S_tau+1 = S_tau + w_tau+1: O(sample), whatever the number of checkpoints already built.
-- Rows are keyed by the run ids of their checkpoint and every earlier one (prefix_version,
-- macros/incremental.sql): a checkpoint ingested or re-ingested in the middle of a series
-- changes every later running sum, so each model restarts from its earliest changed
-- checkpoint, carrying the running sum of the checkpoint before it (zero on a full build).
{{ incremental_config(['model_id', 'tensor_name', 'step'], ['weights'], 'prefix') }}
{% set carry = incremental_ready() %}

with changed as (
    {{ changed_slices(['weights'], 'prefix') }}
),

batch as (
    select
        s.model_id,
        s.tensor_name,
        s.step,
        s.sampled_values
    from {{ ref('stg_weight_sample') }} as s
    inner join changed using (model_id, step)
),

meta as (
    select
        s.model_id,
        s.tensor_name,
        s.step,
        s.n_total,
        s.is_exact,
        c.source_version
    from {{ ref('stg_weight_sample') }} as s
    inner join changed as c using (model_id, step)
),

{% if carry -%}
    restart as (
        select
            model_id,
            min(step) as from_step
        from changed
        group by model_id
    ),

    carried_steps as (
        select
            t.model_id,
            t.tensor_name,
            max(t.step) as step
        from {{ this }} as t
        inner join restart as r using (model_id)
        where t.step < r.from_step
        group by t.model_id, t.tensor_name
    ),

    carried as (
        select
            t.model_id,
            t.tensor_name,
            t.running_sum
        from {{ this }} as t
        inner join carried_steps using (model_id, tensor_name, step)
    ),
{%- else -%}
    carried as (
        -- a full build starts every running sum from zero
        select
            null::varchar as model_id,
            null::varchar as tensor_name,
            null::double[] as running_sum
        where false
    ),
{%- endif %}

values_by_index as (
    select
        model_id,
        tensor_name,
        step,
        unnest(sampled_values)::double as w,
        unnest(range(len(sampled_values))) as k
    from batch
    union all
    -- the carried running sum enters the window as one more, earliest, row per index
    select
        model_id,
        tensor_name,
        -1 as step,
        unnest(running_sum) as w,
        unnest(range(len(running_sum))) as k
    from carried
),

cumulative as (
    select
        model_id,
        tensor_name,
        step,
        k,
        sum(w) over (
            partition by model_id, tensor_name, k
            order by step
            rows between unbounded preceding and current row
        ) as s_cum
    from values_by_index
),

per_step as (
    select
        model_id,
        tensor_name,
        step,
        var_samp(s_cum) as msd,
        count(*) as n_sampled,
        list(s_cum order by k) as running_sum
    from cumulative
    where step >= 0
    group by model_id, tensor_name, step
),

final as (
    select
        p.model_id,
        p.tensor_name,
        p.step,
        p.msd,
        p.n_sampled,
        m.n_total,
        m.is_exact,
        m.source_version,
        p.running_sum
    from per_step as p
    inner join meta as m using (model_id, tensor_name, step)
)

select * from final
