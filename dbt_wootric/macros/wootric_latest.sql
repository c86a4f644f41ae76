{#-
  The latest version of each key of a landed stream, with the rows a target marked deleted left out.

  stream:  the tap's stream, a source of this project (sources.yml)
  keys:    its key columns
  columns: what to select, as [landed name, type, name in the model]; type is one of
           bigint, text, boolean, timestamp, date, float, json (json becomes JSON text)
  deleted: 'drop' (staging: keys whose latest version is marked deleted are left out)
           or 'only' (just those keys)

  Loaders that append rather than upsert hold several versions of a key: the latest is the one with the
  highest updated_at, then the highest of the target's own _sdc_* sequence and load times, where landed.
  A table that was never landed (a stream left out of the catalog) gives no rows, and a column that was
  not landed (a field left out) gives nulls, so the models build on whatever was synced.
-#}
{% macro wootric_latest(stream, keys, columns, deleted='drop') %}
  {%- set src = source('wootric', stream) -%}
  {%- set relation = adapter.get_relation(database=src.database, schema=src.schema, identifier=src.identifier)
        if execute else none -%}
  {%- if relation is none %}
select
  {%- for landed_name, type, name in columns %}
  {{ wootric_cast('null', type) }} as {{ name }}{{ "," if not loop.last }}
  {%- endfor %}
where 1 = 0
  {%- else -%}
    {%- set landed = {} -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
      {%- do landed.update({column.name | lower: adapter.quote(column.name)}) -%}
    {%- endfor -%}
    {%- set order = [] -%}
    {%- for name in ['updated_at', '_sdc_sequence', '_sdc_batched_at', '_sdc_received_at', '_sdc_extracted_at'] -%}
      {%- if name in landed %}{% do order.append(landed[name] ~ ' desc nulls last') %}{% endif -%}
    {%- endfor -%}
    {%- set key_list = [] -%}
    {%- for key in keys %}{% do key_list.append(landed[key]) %}{% endfor %}
select
  {%- for landed_name, type, name in columns %}
  {{ wootric_cast(landed[landed_name] if landed_name in landed else 'null', type) }} as {{ name }}{{ "," if not loop.last }}
  {%- endfor %}
from (
  select
    *,
    row_number() over (
      partition by {{ key_list | join(', ') }}
      {%- if order %} order by {{ order | join(', ') }}{% endif %}
    ) as wootric_version_rank
  from {{ src }}
) as versions
where wootric_version_rank = 1
  {%- for key in key_list %}
  and {{ key }} is not null
  {%- endfor %}
  {%- if '_sdc_deleted_at' in landed %}
  and {{ landed['_sdc_deleted_at'] }} is {{ 'not ' if deleted == 'only' }}null
  {%- elif deleted == 'only' %}
  and 1 = 0
  {%- endif %}
  {%- endif %}
{% endmacro %}


{% macro wootric_cast(expression, type) %}
  {%- if type == 'json' -%}
    {{ adapter.dispatch('wootric_json_text', 'wootric')(expression) }}
  {%- elif type == 'text' -%}
    cast({{ expression }} as varchar)
  {%- elif type == 'float' -%}
    cast({{ expression }} as float8)
  {%- else -%}
    cast({{ expression }} as {{ type }})
  {%- endif -%}
{% endmacro %}

{# A landed JSON value (DuckDB JSON; PostgreSQL jsonb, jsonb[] or text[]) as JSON text. #}
{% macro default__wootric_json_text(expression) -%}
  cast(to_jsonb({{ expression }}) as text)
{%- endmacro %}

{% macro duckdb__wootric_json_text(expression) -%}
  cast(to_json({{ expression }}) as varchar)
{%- endmacro %}
