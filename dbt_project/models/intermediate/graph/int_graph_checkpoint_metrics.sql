-- Graph-level metrics per model, checkpoint, task and ablation: the series the phases and the
-- induction-transition check read.
--
-- head_to_logits_dloss_max: the largest rise of the task loss when a single attention head is
--   ablated (max over heads of the edge head -> logits' dloss). Before induction heads form no
--   single head matters to the induction loss (near 0); once they form, ablating the induction
--   head costs most of what it learnt. This is the metric that shows the induction transition.
-- clean_loss: the task loss of the unablated model on the measured positions (prompts mean).
with edges as (
    select * from {{ ref('stg_graph_edges') }}
),

nodes as (
    select * from {{ ref('int_graph_nodes') }}
),

prompts as (
    select
        model_id,
        step,
        task,
        ablation,
        avg(clean_loss) as clean_loss
    from {{ ref('stg_graph_prompts') }}
    group by all
),

distribution as (
    select
        model_id,
        step,
        task,
        ablation,
        gini,
        tail_index
    from {{ ref('int_graph_weight_distribution') }}
),

edge_kinds as (
    select
        e.*,
        s.node_kind as src_kind,
        d.node_kind as dst_kind
    from edges as e
    inner join nodes as s
        on
            e.model_id = s.model_id
            and e.step = s.step
            and e.task = s.task
            and e.ablation = s.ablation
            and e.src = s.node
    inner join nodes as d
        on
            e.model_id = d.model_id
            and e.step = d.step
            and e.task = d.task
            and e.ablation = d.ablation
            and e.dst = d.node
),

per_graph as (
    select
        model_id,
        step,
        task,
        ablation,
        count(*) as n_edges,
        sum(weight) as total_weight,
        avg(weight) as mean_weight,
        max(weight) as max_weight,
        max(dloss) filter (where src_kind = 'head' and dst_kind = 'logits') as head_to_logits_dloss_max,
        max(kl) filter (where src_kind = 'head' and dst_kind = 'logits') as head_to_logits_kl_max,
        sum(kl) filter (where dst_kind = 'logits') as logits_kl_total,
        max(weight) filter (where src_kind = 'head' and dst_kind = 'head') as head_to_head_max_weight
    from edge_kinds
    group by all
),

final as (
    select
        g.*,
        p.clean_loss,
        d.gini,
        d.tail_index
    from per_graph as g
    left join prompts as p using (model_id, step, task, ablation)
    left join distribution as d using (model_id, step, task, ablation)
)

select * from final
