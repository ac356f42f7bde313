with source as (
    select * from {{ source('raw_params', 'displacement') }}
),

final as (
    select
        model_id,
        tensor_name,
        {{ tensor_layer('tensor_name') }} as layer,
        {{ tensor_kind('tensor_name') }} as param_kind,
        cast(step as bigint) as step,
        cast(prev_step as bigint) as prev_step,
        n,
        n_nonfinite,
        disp,
        norm,
        norm_prev,
        rel_disp,
        msd_step,
        max_abs
    from source
)

select * from final
