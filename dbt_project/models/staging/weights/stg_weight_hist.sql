-- A code c is a float32 value's top 20 bits: sign (bit 19), exponent (bits 11-18) and
-- 11 mantissa bits. Truncation rounds toward zero, so the bucket's magnitudes run from the
-- code's value up to the next code's value (one unit in the last kept place, ulp).
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
        (code >> 19) & 1 as sign_bit,
        (code >> 11) & 255 as exponent,
        code & 2047 as mantissa
    from source
),

magnitudes as (
    select
        *,
        case
            when exponent = 0 then (mantissa / 2048.0) * pow(2.0, -126)
            else (1 + mantissa / 2048.0) * pow(2.0, exponent - 127)
        end as magnitude_lo,
        case
            when exponent = 0 then pow(2.0, -137)
            else pow(2.0, exponent - 138)
        end as ulp
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
