-- Checkpoint-level signals of the residual-stream dynamics (METHODS §C), one row per
-- model, checkpoint and signal, with the threshold that says when the paper's finding holds:
--   lower_continuity       mean per-unit continuity over the transitions in the lower half
--                          of depth (layer < transitions / 2)
--   continuity_gap         mean continuity minus its random-rotation control, over all
--                          transitions (> 0: the model's basis is more continuous than chance)
--   lower_contraction      mean relative pair-distance ratio over the lower-half transitions
--                          (< 1: different prompts' trajectories converge there)
--   attractor_return       mean relative return ratio at the last point after moving the
--                          state on the PCA plane at the lowest perturbed point (< 1: pulled back)
--   density_growth         participation ratio at the last point minus at point 0 (> 0: denser)
--   velocity_growth        velocity of the last transition over that of the first (> 1: accelerates)
--   mutual_info            mean Gaussian MI (nats) between consecutive points
--   rotation_excess        mean |rotation count| per unit minus its layer-permutation control
--   shared_basis_variance  share of this checkpoint's variance on the final checkpoint's 3 PCs
with points as (
    select * from {{ ref('stg_residual_points') }}
),

pairs as (
    select * from {{ ref('stg_residual_convergence') }}
),

attractor as (
    select * from {{ ref('stg_residual_attractor') }}
),

rotations as (
    select * from {{ ref('stg_residual_unit_rotations') }}
),

pca as (
    select * from {{ ref('stg_residual_pca') }}
),

depth as (
    select
        model_id,
        step,
        max(layer) as n_transitions
    from points
    group by model_id, step
),

per_point as (
    select
        p.*,
        c.pair_relative_ratio,
        p.layer < d.n_transitions / 2.0 as is_lower,
        p.layer = 0 as is_first,
        p.layer = d.n_transitions as is_last,
        p.layer = d.n_transitions - 1 as is_last_transition
    from points as p
    inner join depth as d using (model_id, step)
    left join pairs as c using (model_id, step, layer)
),

from_points as (
    select
        model_id,
        step,
        avg(case when is_lower then continuity end) as lower_continuity,
        avg(continuity - continuity_rotated) as continuity_gap,
        avg(case when is_lower then pair_relative_ratio end) as lower_contraction,
        (
            max(case when is_last then participation_ratio end)
            - max(case when is_first then participation_ratio end)
        ) as density_growth,
        (
            max(case when is_last_transition then velocity end)
            / nullif(max(case when is_first then velocity end), 0)
        ) as velocity_growth,
        avg(mutual_info) as mutual_info
    from per_point
    group by model_id, step
),

lowest_perturbation as (
    select
        model_id,
        step,
        min(perturb_layer) as perturb_layer
    from attractor
    group by model_id, step
),

from_attractor as (
    select
        a.model_id,
        a.step,
        avg(a.relative_return_ratio) as attractor_return
    from attractor as a
    inner join lowest_perturbation using (model_id, step, perturb_layer)
    inner join depth as d using (model_id, step)
    where a.layer = d.n_transitions
    group by a.model_id, a.step
),

from_rotations as (
    select
        model_id,
        step,
        avg(rotations_abs) - avg(rotations_perm_abs) as rotation_excess
    from rotations
    group by model_id, step
),

from_pca as (
    select
        model_id,
        step,
        sum(explained_ratio) as shared_basis_variance
    from pca
    where basis = 'shared'
    group by model_id, step
),

wide as (
    select
        p.*,
        a.attractor_return,
        r.rotation_excess,
        s.shared_basis_variance
    from from_points as p
    left join from_attractor as a using (model_id, step)
    left join from_rotations as r using (model_id, step)
    left join from_pca as s using (model_id, step)
),

long as (
    unpivot wide
    on lower_continuity, continuity_gap, lower_contraction, attractor_return, density_growth,
    velocity_growth, mutual_info, rotation_excess, shared_basis_variance
    into name signal value value
),

thresholds as (
    select
        t.signal,
        t.threshold,
        t.direction
    from (
        values
        ('lower_continuity', null, null),
        ('continuity_gap', 0.0, 'above'),
        ('lower_contraction', 1.0, 'below'),
        ('attractor_return', 1.0, 'below'),
        ('density_growth', 0.0, 'above'),
        ('velocity_growth', 1.0, 'above'),
        ('mutual_info', null, null),
        ('rotation_excess', 0.0, 'above'),
        ('shared_basis_variance', null, null)
    ) as t (signal, threshold, direction)
),

final as (
    select
        l.model_id,
        l.step,
        l.signal,
        cast(l.value as double) as value,
        cast(t.threshold as double) as threshold,
        t.direction
    from long as l
    inner join thresholds as t using (signal)
    where l.value is not null and isfinite(l.value)
)

select * from final
