{# No edge the computation order forbids: nothing into embed or out of logits, and v reads u only
   from a later layer, or, within a layer, an MLP reading a head (sequential residual only; the
   architecture-exact check, parallel residual included, runs before load in the probe's GX suite). #}
{% test graph_edges_allowed(model) %}
select model_id, step, task, ablation, src, dst
from {{ model }}
where dst = 'embed'
   or src = 'logits'
   or src = dst
   or not (
        dst_layer > src_layer
        or (dst_layer = src_layer and src_kind = 'head' and dst_kind = 'mlp')
   )
{% endtest %}
