{# Layer index and parameter kind of a tensor name, for GPT-NeoX, GPT-2 and Llama names. #}
{% macro tensor_layer(col) -%}
    try_cast(nullif(regexp_extract({{ col }}, '\.(?:layers|h)\.(\d+)\.', 1), '') as integer)
{%- endmacro %}

{% macro tensor_kind(col) -%}
    case
        when {{ col }} in ('lm_head.weight', 'embed_out.weight') then 'unembedding'
        when regexp_matches({{ col }}, '(embed_in|wte|wpe|embed_tokens)') then 'embedding'
        when regexp_matches({{ col }}, '(norm|\.ln_)') then 'layernorm'
        when regexp_matches({{ col }}, '(attention|attn)') then 'attention'
        when regexp_matches({{ col }}, 'mlp') then 'mlp'
        else 'other'
    end
{%- endmacro %}
