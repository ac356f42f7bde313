-- Rank of the batch covariance of W_U V at every tolerance of the grid 0.1, 0.2, ..., 1.0
-- (the paper's range, Figure 7), per seed: the number of eigenvalues above the tolerance,
-- i.e. numpy.linalg.matrix_rank(C, tol) for the positive semi-definite C. rank_relative
-- counts eigenvalues above tolerance x the largest one (scale-free across models).
-- Rows whose eigenvalues are NULL (non-finite weights) are left out here and flagged in
-- fct_params_data_quality.
{{ incremental_config(['model_id', 'step', 'tensor_name', 'batch_size', 'seed', 'tolerance'], ['covariance']) }}

with changed as (
    {{ changed_slices(['covariance']) }}
),

eigs as (
    select
        e.*,
        c.source_version
    from {{ ref('stg_covariance_eigs') }} as e
    inner join changed as c using (model_id, step)
    where e.eigenvalues is not null
),

tolerances as (
    select round(cast(t.i as double) / 10, 1) as tolerance
    from range(1, 11) as t (i)
),

final as (
    select
        e.model_id,
        e.step,
        e.tensor_name,
        e.batch_size,
        e.seed,
        t.tolerance,
        -- x is the lambda's parameter, not a column (sqlfluff reads it as one)
        len(list_filter(e.eigenvalues, lambda x: x > t.tolerance)) as rank,  -- noqa: RF02
        len(list_filter(e.eigenvalues, lambda x: x > t.tolerance * list_max(e.eigenvalues)))  -- noqa: RF02
            as rank_relative,
        e.source_version
    from eigs as e
    cross join tolerances as t
)

select * from final
