-- Do the paper's signals coincide? (Nicolini et al. 2024: the MSD peak, the perplexity
-- drop and the covariance-rank drop happen at the same checkpoints, after which the
-- weights are stationary.) One row per model, for its unembedding (the embedding when the
-- model has no separate unembedding in the marts):
--   msd_peak_step           fct_bifurcation.peak_step
--   perplexity_drop_step    int_perplexity_drop.half_drop_step, method forward
--   unmasking_drop_step     the same, method causal_unmasking
--   covariance_drop_step    int_covariance_rank_drop.rank_drop_step
--                           (covariance_relative_drop_step: the same on the relative rank,
--                           reported beside it, not counted in the spread)
--   stationarity_step       fct_stationarity.stationary_step
-- and each one's distance to the MSD peak in steps (signed: positive = later), plus the
-- spread (latest minus earliest of those present). The evaluation set is the one with the
-- most forward checkpoints (then the first by name); dataset names it. msd_fall_ratio
-- (MSD at the last checkpoint / its peak) tells a real peak (< 1) from a run whose MSD is
-- still rising at its last checkpoint (1: no bifurcation observed yet).
-- A censored peak (the maximum at the last checkpoint, or fall_ratio >=
-- var('msd_censor_fall_ratio', 0.99)) is no peak: msd_peak_step is NULL, msd_peak_status
-- says why, and it counts neither as a signal nor in the spread. Every signal's step comes
-- with the ingested checkpoints of its probe that bracket it (<signal>_prev_step,
-- <signal>_next_step): the change lies somewhere in that interval, not at the step itself.
-- Beside them, the capability they are meant to mark: capability_step, the half-drop of
-- the induction loss (int_capability_transition, task var('capability_task', 'induction')),
-- with its bracketing checkpoints and status; it is the reference, not one of the signals.
with bifurcation as (
    select * from {{ ref('fct_bifurcation') }}
),

tensor_kinds as (
    select
        model_id,
        tensor_name,
        peak_step,
        last_step,
        fall_ratio,
        {{ tensor_kind('tensor_name') }} as kind
    from bifurcation
),

bif as (
    select
        model_id,
        tensor_name,
        peak_step,
        last_step,
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

picked as (
    select
        model_id,
        tensor_name,
        peak_step,
        fall_ratio as msd_fall_ratio,
        case
            when peak_step >= last_step then 'censored: maximum at the last checkpoint (still rising)'
            when fall_ratio >= {{ var('msd_censor_fall_ratio', 0.99) }}
                then 'censored: fall_ratio >= {{ var('msd_censor_fall_ratio', 0.99) }} (no fall after it)'
            else 'peak'
        end as msd_peak_status
    from bif
    where pick = 1
),

tensor as (
    select
        model_id,
        tensor_name,
        case when msd_peak_status = 'peak' then peak_step end as msd_peak_step,
        msd_fall_ratio,
        msd_peak_status
    from picked
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
        rank_drop_step as covariance_drop_step,
        relative_rank_drop_step as covariance_relative_drop_step
    from {{ ref('int_covariance_rank_drop') }}
),

stat as (
    select
        model_id,
        tensor_name,
        stationary_step as stationarity_step
    from {{ ref('fct_stationarity') }}
),

capability as (
    select
        model_id,
        transition_step as capability_step,
        prev_step as capability_prev_step,
        next_step as capability_next_step,
        transition_status as capability_status
    from {{ ref('int_capability_transition') }}
    where task = '{{ var("capability_task", "induction") }}'
),

lined_up as (
    select
        t.model_id,
        t.tensor_name,
        p.dataset,
        t.msd_peak_step,
        t.msd_fall_ratio,
        t.msd_peak_status,
        p.perplexity_drop_step,
        p.unmasking_drop_step,
        c.covariance_drop_step,
        c.covariance_relative_drop_step,
        s.stationarity_step
    from tensor as t
    left join ppl as p using (model_id)
    left join cov as c using (model_id, tensor_name)
    left join stat as s using (model_id, tensor_name)
),

with_capability as (
    select
        l.*,
        k.capability_step,
        k.capability_prev_step,
        k.capability_next_step,
        k.capability_status
    from lined_up as l
    left join capability as k using (model_id)
),

checkpoints as (
    select
        model_id,
        step,
        probes
    from {{ ref('dim_checkpoint') }}
),

-- each signal's step with the probe whose checkpoints bracket it
signal_steps as (
    unpivot (
        select
            model_id,
            msd_peak_step as msd_peak,
            perplexity_drop_step as perplexity_drop,
            unmasking_drop_step as unmasking_drop,
            covariance_drop_step as covariance_drop,
            stationarity_step as stationarity
        from lined_up
    )
    on msd_peak, perplexity_drop, unmasking_drop, covariance_drop, stationarity
    into name signal value step
),

brackets as (
    select
        s.model_id,
        s.signal,
        max(case when c.step < s.step then c.step end) as prev_step,
        min(case when c.step > s.step then c.step end) as next_step
    from signal_steps as s
    inner join checkpoints as c
        on
            s.model_id = c.model_id
            and list_contains(
                c.probes,
                case s.signal
                    when 'msd_peak' then 'weights'
                    when 'perplexity_drop' then 'perplexity'
                    when 'unmasking_drop' then 'perplexity'
                    when 'covariance_drop' then 'covariance'
                    else 'displacement'
                end
            )
    group by s.model_id, s.signal
),

bracketed as (
    select
        l.*,
        max(case when b.signal = 'msd_peak' then b.prev_step end) as msd_peak_prev_step,
        max(case when b.signal = 'msd_peak' then b.next_step end) as msd_peak_next_step,
        max(case when b.signal = 'perplexity_drop' then b.prev_step end) as perplexity_drop_prev_step,
        max(case when b.signal = 'perplexity_drop' then b.next_step end) as perplexity_drop_next_step,
        max(case when b.signal = 'unmasking_drop' then b.prev_step end) as unmasking_drop_prev_step,
        max(case when b.signal = 'unmasking_drop' then b.next_step end) as unmasking_drop_next_step,
        max(case when b.signal = 'covariance_drop' then b.prev_step end) as covariance_drop_prev_step,
        max(case when b.signal = 'covariance_drop' then b.next_step end) as covariance_drop_next_step,
        max(case when b.signal = 'stationarity' then b.prev_step end) as stationarity_prev_step,
        max(case when b.signal = 'stationarity' then b.next_step end) as stationarity_next_step
    from with_capability as l
    left join brackets as b using (model_id)
    group by all
),

final as (
    select
        model_id,
        tensor_name,
        dataset,
        msd_peak_step,
        msd_fall_ratio,
        perplexity_drop_step,
        unmasking_drop_step,
        covariance_drop_step,
        stationarity_step,
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
        ) as n_signals,
        msd_peak_status,
        msd_peak_prev_step,
        msd_peak_next_step,
        perplexity_drop_prev_step,
        perplexity_drop_next_step,
        unmasking_drop_prev_step,
        unmasking_drop_next_step,
        covariance_drop_prev_step,
        covariance_drop_next_step,
        stationarity_prev_step,
        stationarity_next_step,
        covariance_relative_drop_step,
        capability_step,
        capability_prev_step,
        capability_next_step,
        capability_status
    from bracketed
),

-- the training log's milestones (int_training_milestones), NULL for a model without a log:
-- "does the MSD peak coincide with the end of warm-up?" is warmup_end_minus_msd; the first
-- loss plateau (its start bracketed by loss_plateau_start_prev_step) beside it
milestones as (
    select * from {{ ref('int_training_milestones') }}
),

with_milestones as (
    select
        f.*,
        m.warmup_end_step,
        m.lr_peak_step,
        m.steepest_loss_drop_step,
        m.plateau_start_step as loss_plateau_start_step,
        m.plateau_start_prev_step as loss_plateau_start_prev_step,
        m.plateau_end_step as loss_plateau_end_step,
        m.n_loss_plateaus,
        m.warmup_end_step - f.msd_peak_step as warmup_end_minus_msd,
        m.steepest_loss_drop_step - f.msd_peak_step as loss_drop_minus_msd,
        m.plateau_start_step - f.msd_peak_step as loss_plateau_minus_msd
    from final as f
    left join milestones as m on f.model_id = m.model_id
)

select * from with_milestones
