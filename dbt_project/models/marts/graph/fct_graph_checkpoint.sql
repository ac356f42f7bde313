-- Graph-level metrics per model, checkpoint, task and ablation (see int_graph_checkpoint_metrics);
-- head_to_logits_dloss_max is the induction-transition metric.
select * from {{ ref('int_graph_checkpoint_metrics') }}
