-- Graph-level metrics per model, checkpoint, task and ablation (see int_graph_checkpoint_metrics);
-- head_to_logits_dloss_max is the induction-transition metric.
with metrics as (
    select * from {{ ref('int_graph_checkpoint_metrics') }}
),

final as (
    select
        model_id,
        step,
        task,
        ablation,
        n_edges,
        total_weight,
        mean_weight,
        max_weight,
        head_to_logits_dloss_max,
        head_to_logits_kl_max,
        logits_kl_total,
        head_to_head_max_weight,
        clean_loss,
        gini,
        tail_index
    from metrics
)

select * from final
