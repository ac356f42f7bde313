{# Every non-null value lies in [min_value, max_value] (either bound may be omitted) and is finite. #}
{% test in_range(model, column_name, min_value=none, max_value=none) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null and (
    not isfinite({{ column_name }}::double)
    {% if min_value is not none %} or {{ column_name }} < {{ min_value }} {% endif %}
    {% if max_value is not none %} or {{ column_name }} > {{ max_value }} {% endif %}
)
{% endtest %}
