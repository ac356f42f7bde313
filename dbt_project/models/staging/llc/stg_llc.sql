with source as (
    select * from {{ source('raw_llc', 'llc') }}
),

final as (
    select
        model_id,
        cast(step as bigint) as step,
        dataset,
        data_hash,
        cast(n_sequences as integer) as n_sequences,
        cast(seq_len as integer) as seq_len,
        cast(n_beta as double) as n_beta,
        cast(init_loss as double) as init_loss,
        cast(n_chains as integer) as n_chains,
        cast(n_diverged as integer) as n_diverged,
        cast(llc_mean as double) as llc_mean,
        cast(llc_std as double) as llc_std
    from source
)

select * from final
