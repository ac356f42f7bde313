-- Tensors that hold the same values at two non-adjacent checkpoints while the checkpoints
-- between hold other values (the EleutherAI/pythia #206 pattern: a step branch whose first
-- shard is the final checkpoint's, its other shards genuine). Per model and tensor the
-- weights probe's ingested steps are cut into runs of consecutive steps with the same
-- tensor_hash (xxh3-128 of the tensor's float32 bytes); a value that appears in two runs
-- is stale at one of them. A tensor that never changes (a buffer) is one run and is not
-- flagged; neither is a value repeated at adjacent steps. Pairs of steps whose whole
-- checkpoints are byte-identical are int_identical_checkpoints' finding and are left out
-- here. One row per model, step and tensor, naming the other step(s) with the same values.
with stats as (
    select
        model_id,
        tensor_name,
        step,
        tensor_hash
    from {{ ref('stg_weight_stats') }}
    where tensor_hash is not null
),

changes as (
    select
        *,
        lag(tensor_hash) over (partition by model_id, tensor_name order by step) as prev_hash
    from stats
),

runs as (
    select
        model_id,
        tensor_name,
        step,
        tensor_hash,
        sum(case when tensor_hash is distinct from prev_hash then 1 else 0 end) over (
            partition by model_id, tensor_name order by step
        ) as run_id
    from changes
),

recurring as (
    select
        model_id,
        tensor_name,
        tensor_hash
    from runs
    group by model_id, tensor_name, tensor_hash
    having count(distinct run_id) > 1
),

candidates as (
    select r.*
    from runs as r
    inner join recurring using (model_id, tensor_name, tensor_hash)
),

checkpoints as (
    select
        model_id,
        step,
        content_hash
    from {{ ref('dim_checkpoint') }}
),

pairs as (
    select
        a.model_id,
        a.tensor_name,
        a.step,
        b.step as other_step
    from candidates as a
    inner join candidates as b
        on
            a.model_id = b.model_id
            and a.tensor_name = b.tensor_name
            and a.tensor_hash = b.tensor_hash
            and a.run_id <> b.run_id
    left join checkpoints as ca on a.model_id = ca.model_id and a.step = ca.step
    left join checkpoints as cb on b.model_id = cb.model_id and b.step = cb.step
    where ca.content_hash is null or ca.content_hash is distinct from cb.content_hash
),

final as (
    select
        model_id,
        step,
        'weights' as probe,
        tensor_name as object,
        'stale_tensor' as kind,
        concat(
            tensor_name, ' holds the same values at non-adjacent step(s) ',
            array_to_string(list(other_step order by other_step)[1:5], ', '),
            case when count(*) > 5 then ' …' else '' end,
            ' (checkpoints between hold other values): one of them serves a stale copy'
        ) as issue,
        cast(null as varchar) as failed_expectations
    from pairs
    group by model_id, step, tensor_name
)

select * from final
