-- Attractor-like dynamics per model, checkpoint, perturbed point and later sample point:
-- the last-token state was moved to each point of a grid on the checkpoint's PCA plane at
-- perturb_layer and the remaining layers ran. Averaged over the grid: the distance to the
-- unperturbed trajectory, the return ratio d_layer / d_perturb_layer and its norm-relative
-- version (< 1: pulled back toward the unperturbed trajectory), and the share of grid
-- points pulled back; with the convergence of different prompts' trajectories at that layer.
{{ incremental_config(['model_id', 'step', 'perturb_layer', 'layer'], ['residual']) }}

with changed as (
    {{ changed_slices(['residual']) }}
),

attractor as (
    select
        a.*,
        c.source_version
    from {{ ref('stg_residual_attractor') }} as a
    inner join changed as c using (model_id, step)
),

pairs as (
    select p.*
    from {{ ref('stg_residual_convergence') }} as p
    inner join changed using (model_id, step)
),

per_layer as (
    select
        model_id,
        step,
        perturb_layer,
        layer,
        count(*) as n_grid,
        min(n_prompts) as n_prompts,
        avg(distance) as distance,
        avg(return_ratio) as return_ratio,
        median(return_ratio) as return_ratio_median,
        avg(relative_return_ratio) as relative_return_ratio,
        avg(case
            when relative_return_ratio is not null
                then (relative_return_ratio < 1)::int
        end) as frac_pulled_back,
        any_value(source_version) as source_version
    from attractor
    group by model_id, step, perturb_layer, layer
),

final as (
    select
        a.model_id,
        a.step,
        a.perturb_layer,
        a.layer,
        a.layer - a.perturb_layer as layers_after,
        a.n_grid,
        a.n_prompts,
        a.distance,
        a.return_ratio,
        a.return_ratio_median,
        a.relative_return_ratio,
        a.frac_pulled_back,
        c.pair_distance,
        c.pair_ratio,
        c.pair_relative_ratio,
        c.pair_frac_contracting,
        a.source_version
    from per_layer as a
    left join pairs as c using (model_id, step, layer)
)

select * from final
