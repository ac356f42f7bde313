-- Incremental (macros/incremental.sql): a checkpoint's rows are recomputed when its weights
-- were re-ingested, and every checkpoint of a tensor when its shared bin edges moved (a new
-- checkpoint widened the range); the pre-hooks delete both before the insert.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['model_id', 'tensor_name', 'step', 'bin_index'],
    on_schema_change='append_new_columns',
    pre_hook=[
        "{{ delete_stale(['weights']) }}",
        "{{ delete_moved_bins() }}",
    ],
) }}

with edges as (
    select * from {{ ref('int_weight_bin_edges') }}
),

versions as (
    {{ changed_slices(['weights']) }}
),

tensors as (
    select
        s.model_id,
        s.tensor_name,
        s.step,
        s.layer,
        s.param_kind,
        v.source_version
    from {{ ref('stg_weight_stats') }} as s
    inner join versions as v using (model_id, step)
    {% if incremental_ready() -%}
        where not exists (
            select 1 from {{ this }} as t
            where
                t.bin_index = 0
                and t.model_id = s.model_id
                and t.tensor_name = s.tensor_name
                and t.step = s.step
        )
    {%- endif %}
),

hist as (
    select h.*
    from {{ ref('stg_weight_hist') }} as h
    inner join tensors using (model_id, tensor_name, step)
),

binned as (
    select
        h.model_id,
        h.tensor_name,
        h.step,
        -- a bucket midpoint may sit a hair outside the observed range: clamp to the end bins
        least(e.n_bins - 1, greatest(0, cast(floor((h.value_mid - e.range_lo) / e.bin_width) as integer)))
            as bin_index,
        h.count
    from hist as h
    inner join edges as e using (model_id, tensor_name)
),

counts as (
    select
        model_id,
        tensor_name,
        step,
        bin_index,
        sum(count) as count
    from binned
    group by all
),

grid as (
    select
        t.model_id,
        t.tensor_name,
        t.layer,
        t.param_kind,
        t.step,
        t.source_version,
        e.range_lo,
        e.bin_width,
        unnest(range(e.n_bins)) as bin_index
    from tensors as t
    inner join edges as e using (model_id, tensor_name)
),

final as (
    select
        g.model_id,
        g.tensor_name,
        g.layer,
        g.param_kind,
        g.step,
        g.bin_index,
        g.range_lo + g.bin_index * g.bin_width as bin_lo,
        g.range_lo + (g.bin_index + 1) * g.bin_width as bin_hi,
        coalesce(c.count, 0) as count,
        coalesce(c.count, 0)
        / (nullif(sum(coalesce(c.count, 0)) over per_step, 0) * g.bin_width) as density,
        g.source_version
    from grid as g
    left join counts as c using (model_id, tensor_name, step, bin_index)
    window per_step as (partition by g.model_id, g.tensor_name, g.step)
)

select * from final
