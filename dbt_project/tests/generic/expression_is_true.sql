{# Every row satisfies the boolean SQL expression (a rule the mart promises, e.g. that a censored peak is NULL). #}
{% test expression_is_true(model, expression) %}
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
