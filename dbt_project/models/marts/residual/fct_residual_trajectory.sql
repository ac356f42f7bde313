-- Reduced trajectories: per model, checkpoint, basis, prompt and sample point, the
-- last-token state's coordinates on the first three principal components, with the
-- variance those components explain. basis 'own' is fit on this checkpoint's states;
-- 'shared' is the final checkpoint's (basis_step), so trajectories compare across training.
-- prompt_index -1 (is_mean) is the mean trajectory.
{{ incremental_config(['model_id', 'step', 'basis', 'prompt_index', 'layer'], ['residual']) }}

with changed as (
    {{ changed_slices(['residual']) }}
),

trajectory as (
    select
        t.*,
        c.source_version
    from {{ ref('stg_residual_trajectory') }} as t
    inner join changed as c using (model_id, step)
),

pca as (
    select p.*
    from {{ ref('stg_residual_pca') }} as p
    inner join changed using (model_id, step)
),

points as (
    select
        model_id,
        step,
        layer,
        block,
        site
    from {{ ref('stg_residual_points') }}
),

variance as (
    select
        model_id,
        step,
        basis,
        any_value(basis_step) as basis_step,
        max(case when component = 1 then explained_ratio end) as explained_ratio_pc1,
        max(case when component = 2 then explained_ratio end) as explained_ratio_pc2,
        max(case when component = 3 then explained_ratio end) as explained_ratio_pc3
    from pca
    group by model_id, step, basis
),

final as (
    select
        t.model_id,
        t.step,
        t.basis,
        t.prompt_index,
        t.layer,
        t.prompt_index = -1 as is_mean,
        p.block,
        p.site,
        t.pc1,
        t.pc2,
        t.pc3,
        v.basis_step,
        v.explained_ratio_pc1,
        v.explained_ratio_pc2,
        v.explained_ratio_pc3,
        t.source_version
    from trajectory as t
    left join variance as v using (model_id, step, basis)
    left join points as p using (model_id, step, layer)
)

select * from final
