{{ incremental_config(['model_id', 'tensor_name', 'step'], ['weights'], 'prefix') }}

with changed as (
    {{ changed_slices(['weights'], 'prefix') }}
),

msd as (
    select
        m.model_id,
        m.tensor_name,
        m.step,
        m.msd,
        m.n_sampled,
        m.n_total,
        m.is_exact,
        m.source_version
    from {{ ref('int_msd') }} as m
    inner join changed using (model_id, step, source_version)
),

final as (
    select
        model_id,
        tensor_name,
        step,
        msd,
        n_sampled,
        n_total,
        is_exact,
        source_version
    from msd
)

select * from final
