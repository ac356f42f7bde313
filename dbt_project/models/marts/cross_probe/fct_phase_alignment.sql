-- Do the paper's signals coincide? (Nicolini et al. 2024: the MSD peak, the perplexity
-- drop and the covariance-rank drop happen at the same checkpoints, after which the
-- weights are stationary.) One row per model, for its unembedding (the embedding when the
-- model has no separate unembedding in the marts):
--   msd_peak_step           fct_bifurcation.peak_step
--   perplexity_drop_step    int_perplexity_drop.half_drop_step, method forward
--   unmasking_drop_step     the same, method causal_unmasking
--   covariance_drop_step    int_covariance_rank_drop.rank_drop_step
--   stationarity_step       fct_stationarity.stationary_step
-- and each one's distance to the MSD peak in steps (signed: positive = later), plus the
-- spread (latest minus earliest of those present). The evaluation set is the one with the
-- most forward checkpoints (then the first by name); dataset names it. msd_fall_ratio
-- (MSD at the last checkpoint / its peak) tells a real peak (< 1) from a run whose MSD is
-- still rising at its last checkpoint (1: no bifurcation observed yet).
with bifurcation as (
    select * from {{ ref('fct_bifurcation') }}
),

tensor_kinds as (
    select
        model_id,
        tensor_name,
        peak_step,
        fall_ratio,
        {{ tensor_kind('tensor_name') }} as kind
    from bifurcation
),

bif as (
    select
        model_id,
        tensor_name,
        peak_step,
        fall_ratio,
        row_number() over (
            partition by model_id
            order by
                case kind
                    when 'unembedding' then 0
                    when 'embedding' then 1
                    else 2
                end,
                tensor_name
        ) as pick
    from tensor_kinds
),

tensor as (
    select
        model_id,
        tensor_name,
        peak_step as msd_peak_step,
        fall_ratio as msd_fall_ratio
    from bif
    where pick = 1
),

drops as (
    select * from {{ ref('int_perplexity_drop') }}
),

forward_sets as (
    select
        model_id,
        dataset,
        row_number() over (partition by model_id order by n_checkpoints desc, dataset asc) as pick
    from drops
    where method = 'forward'
),

dataset as (
    select
        model_id,
        dataset
    from forward_sets
    where pick = 1
),

ppl as (
    select
        d.model_id,
        d.dataset,
        max(case when p.method = 'forward' then p.half_drop_step end) as perplexity_drop_step,
        max(case when p.method = 'causal_unmasking' then p.half_drop_step end) as unmasking_drop_step
    from dataset as d
    inner join drops as p using (model_id, dataset)
    group by d.model_id, d.dataset
),

cov as (
    select
        model_id,
        tensor_name,
        rank_drop_step as covariance_drop_step
    from {{ ref('int_covariance_rank_drop') }}
),

stat as (
    select
        model_id,
        tensor_name,
        stationary_step as stationarity_step
    from {{ ref('fct_stationarity') }}
),

lined_up as (
    select
        t.model_id,
        t.tensor_name,
        p.dataset,
        t.msd_peak_step,
        t.msd_fall_ratio,
        p.perplexity_drop_step,
        p.unmasking_drop_step,
        c.covariance_drop_step,
        s.stationarity_step
    from tensor as t
    left join ppl as p using (model_id)
    left join cov as c using (model_id, tensor_name)
    left join stat as s using (model_id, tensor_name)
),

final as (
    select
        *,
        perplexity_drop_step - msd_peak_step as perplexity_minus_msd,
        unmasking_drop_step - msd_peak_step as unmasking_minus_msd,
        covariance_drop_step - msd_peak_step as covariance_minus_msd,
        stationarity_step - msd_peak_step as stationarity_minus_msd,
        (
            greatest(
                msd_peak_step, perplexity_drop_step, unmasking_drop_step,
                covariance_drop_step, stationarity_step
            )
            - least(
                msd_peak_step, perplexity_drop_step, unmasking_drop_step,
                covariance_drop_step, stationarity_step
            )
        ) as spread_steps,
        (
            (msd_peak_step is not null)::int
            + (perplexity_drop_step is not null)::int
            + (unmasking_drop_step is not null)::int
            + (covariance_drop_step is not null)::int
            + (stationarity_step is not null)::int
        ) as n_signals
    from lined_up
),

-- the training log's milestones (int_training_milestones), NULL for a model without a log:
-- "does the MSD peak coincide with the end of warm-up?" is warmup_end_minus_msd
milestones as (
    select * from {{ ref('int_training_milestones') }}
),

with_milestones as (
    select
        f.*,
        m.warmup_end_step,
        m.lr_peak_step,
        m.steepest_loss_drop_step,
        m.warmup_end_step - f.msd_peak_step as warmup_end_minus_msd,
        m.steepest_loss_drop_step - f.msd_peak_step as loss_drop_minus_msd
    from final as f
    left join milestones as m on f.model_id = m.model_id
)

select * from with_milestones
