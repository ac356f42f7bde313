with source as (
    select * from {{ source('raw_residual', 'residual_attractor') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        cast(perturb_layer as integer) as perturb_layer,
        cast(grid_index as integer) as grid_index,
        grid_pc1,
        grid_pc2,
        cast(layer as integer) as layer,
        n_prompts,
        distance_mean as distance,
        return_ratio_mean as return_ratio,
        return_ratio_median,
        relative_ratio_mean as relative_return_ratio,
        pc1_mean as pc1,
        pc2_mean as pc2
    from source
)

select * from final
