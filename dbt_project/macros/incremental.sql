{#
Incremental marts: build only what changed since the last build.

int_checkpoint_versions fingerprints each checkpoint's raw rows (per probe) three ways:
  step    the latest successful run id of this checkpoint        (a per-checkpoint row)
  prefix  the run ids of this and every earlier checkpoint       (a running sum up to here)
  series  the run ids of the whole series of the model           (a per-model summary)
An incremental model stores the fingerprint it was computed from in `source_version`. Each
build first deletes the rows whose fingerprint is no longer current (a pre-hook: re-ingested,
force-re-ingested, or a checkpoint inserted earlier in the series), then inserts the rows of
every slice whose current fingerprint it does not hold. A re-ingest that now yields fewer rows
leaves none behind: the whole slice is deleted before it is recomputed. A build killed at any
point leaves only whole statements behind, and whatever it did not finish is "not held" and
redone by the next build. `tdw build --full-refresh` rebuilds every table from scratch and
gives the same rows (tests/dbt/test_incremental.py).
#}

{# (model_id[, step], source_version) of `probes`, one fingerprint per slice #}
{% macro source_versions(probes, kind='step') -%}
    (
        select
            model_id,
            {% if kind != 'series' %}step,{% endif %}
            md5(string_agg(probe || '=' || {{ kind }}_version, ',' order by probe)) as source_version
        from {{ ref('int_checkpoint_versions') }}
        where probe in ({% for p in probes %}'{{ p }}'{{ ", " if not loop.last }}{% endfor %})
        group by model_id{% if kind != 'series' %}, step{% endif %}
    )
{%- endmacro %}

{# The slices to (re)compute: every slice on a full build, else those whose current
   fingerprint this model does not hold. Columns: model_id[, step], source_version. #}
{% macro changed_slices(probes, kind='step') -%}
    select v.*
    from {{ source_versions(probes, kind) }} as v
    {% if incremental_ready() -%}
        where not exists (
            select 1 from {{ this }} as t
            where
                t.model_id = v.model_id
                {% if kind != 'series' %}and t.step = v.step{% endif %}
                and t.source_version = v.source_version
        )
    {%- endif %}
{%- endmacro %}

{# The pre-hook: delete the rows whose fingerprint is no longer current. #}
{% macro delete_stale(probes, kind='step') -%}
    {% if incremental_ready() -%}
        delete from {{ this }} as t
        where not exists (
            select 1 from {{ source_versions(probes, kind) }} as v
            where
                v.model_id = t.model_id
                {% if kind != 'series' %}and v.step = t.step{% endif %}
                and v.source_version = t.source_version
        )
    {%- endif %}
{%- endmacro %}

{# config() arguments shared by the incremental models #}
{% macro incremental_config(unique_key, probes, kind='step') -%}
    {{ config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=unique_key,
        on_schema_change='append_new_columns',
        pre_hook="{{ delete_stale(" ~ (probes | tojson) ~ ", '" ~ kind ~ "') }}",
    ) }}
{%- endmacro %}

{# fct_weight_density's second pre-hook: every row of a tensor whose shared bin edges moved. #}
{% macro delete_moved_bins() -%}
    {% if incremental_ready() -%}
        delete from {{ this }} as t
        where exists (
            select 1
            from {{ this }} as b
            left join {{ ref('int_weight_bin_edges') }} as e using (model_id, tensor_name)
            where
                b.model_id = t.model_id
                and b.tensor_name = t.tensor_name
                and b.bin_index = 0
                and (
                    e.range_lo is null
                    or b.bin_lo is distinct from e.range_lo
                    or b.bin_hi is distinct from e.range_lo + e.bin_width
                )
        )
    {%- endif %}
{%- endmacro %}

{# dbt's is_incremental(), and false for a table built before it was incremental (no
   source_version column: a warehouse built by an older tdw). That table is then filled from
   every slice; the materialization appends the new column (on_schema_change) and replaces
   the rows by unique key, and the next build's pre-hook deletes any row left without a
   fingerprint. (Not an override of is_incremental(): the graph's Python models keep dbt's.) #}
{% macro incremental_ready() %}
    {% if not execute or not is_incremental() %}
        {{ return(false) }}
    {% endif %}
    {% set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list %}
    {{ return('source_version' in columns) }}
{% endmacro %}
