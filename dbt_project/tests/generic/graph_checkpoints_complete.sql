{# Every checkpoint the graph probe loaded successfully (raw manifest) is in the model. #}
{% test graph_checkpoints_complete(model) %}
with loaded as (
    select distinct model_id, step
    from {{ ref('stg_ingest_runs') }}
    where probe = 'graph' and status = 'success'
),

present as (
    select distinct model_id, step from {{ model }}
)

select l.model_id, l.step
from loaded as l
left join present as p using (model_id, step)
where p.step is null
{% endtest %}
