{#- A column of a raw relation, or a typed NULL when the relation predates it (a
    warehouse ingested before the column was added: ingest adds it in place, a bare
    `tdw build` does not). -#}
{% macro column_or_null(relation, column, type) -%}
    {%- set names = [] -%}
    {%- if execute -%}
        {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {%- endif -%}
    {%- if column | lower in names -%}
        {{ column }}
    {%- else -%}
        cast(null as {{ type }})
    {%- endif -%}
{%- endmacro %}
