-- What each checkpoint's raw rows are, as far as incremental builds need to know: per model,
-- checkpoint and probe, the run id of the latest successful job (a job replaces its rows in
-- one transaction, so a new successful run is the only way a checkpoint's rows change;
-- failed attempts change nothing). prefix_version fingerprints the run ids of this and every
-- earlier checkpoint of the model (what a running sum up to here depends on); series_version
-- the whole series (what a per-model summary depends on). Incremental models store the
-- fingerprint they were computed from in source_version (macros/incremental.sql).
{{ config(materialized='view') }}

with runs as (
    select * from {{ ref('stg_ingest_runs') }}
    where status = 'success'
),

latest as (
    select
        model_id,
        step,
        probe,
        arg_max(run_id, ended_at) as step_version
    from runs
    group by model_id, step, probe
),

prefixes as (
    select
        *,
        md5(array_to_string(list(step_version) over (
            partition by model_id, probe order by step
            rows between unbounded preceding and current row
        ), ',')) as prefix_version
    from latest
),

final as (
    select
        *,
        last_value(prefix_version) over (
            partition by model_id, probe order by step
            rows between unbounded preceding and unbounded following
        ) as series_version
    from prefixes
)

select * from final
