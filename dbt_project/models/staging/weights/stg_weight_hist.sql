-- A bfloat16 code c holds sign (bit 15), exponent (bits 7-14) and 7 mantissa bits.
-- Truncation to bfloat16 rounds toward zero, so the bucket's magnitudes run from the
-- code's value up to the next code's value (one unit in the last place, ulp).
with source as (
    select * from {{ source('raw_weights', 'weight_hist') }}
),

decoded as (
    select
        model_id,
        tensor_name,
        cast(step as bigint) as step,
        code,
        count,
        (code >> 15) & 1 as sign_bit,
        (code >> 7) & 255 as exponent,
        code & 127 as mantissa
    from source
),

magnitudes as (
    select
        *,
        case when exponent = 0 then (mantissa / 128.0) * pow(2.0, -126)
             else (1 + mantissa / 128.0) * pow(2.0, exponent - 127) end as magnitude_lo,
        case when exponent = 0 then pow(2.0, -133)
             else pow(2.0, exponent - 134) end as ulp
    from decoded
    where exponent < 255  -- inf and nan never reach the histogram; guard anyway
),

final as (
    select
        model_id,
        tensor_name,
        step,
        code,
        count,
        case when sign_bit = 1 then -(magnitude_lo + ulp) else magnitude_lo end as value_lo,
        case when sign_bit = 1 then -magnitude_lo else magnitude_lo + ulp end as value_hi,
        case when sign_bit = 1 then -1 else 1 end * (magnitude_lo + ulp / 2) as value_mid
    from magnitudes
)

select * from final
