{# The text at a path of keys inside JSON text (a number or boolean as its JSON text), or null. #}
{% macro wootric_json_get(expression, keys) -%}
  {{ return(adapter.dispatch('wootric_json_get', 'wootric')(expression, keys)) }}
{%- endmacro %}

{% macro default__wootric_json_get(expression, keys) -%}
  jsonb_extract_path_text(cast({{ expression }} as jsonb)
  {%- for key in keys %}, '{{ key | replace("'", "''") }}'{% endfor %})
{%- endmacro %}

{% macro duckdb__wootric_json_get(expression, keys) -%}
  json_extract_string({{ expression }}, '$
  {%- for key in keys %}."{{ key | replace("'", "''") | replace('"', '\\"') }}"{% endfor %}')
{%- endmacro %}

{# A UTC timestamp (as the targets land it: without time zone) as the account's local time. #}
{% macro wootric_local_time(expression) -%}
  (({{ expression }} at time zone 'UTC') at time zone '{{ var("wootric_account_timezone") }}')
{%- endmacro %}

{% macro wootric_month(date_expression) -%}
  cast(date_trunc('month', {{ date_expression }}) as date)
{%- endmacro %}

{# NPS from counts: 100 x (promoters - detractors) / responses, one decimal; null without responses. #}
{% macro wootric_nps(promoters, detractors, responses) -%}
  cast(round(100.0 * (({{ promoters }}) - ({{ detractors }})) / nullif({{ responses }}, 0), 1) as numeric(5, 1))
{%- endmacro %}

{# A share in percent, one decimal; null when the whole is 0. #}
{% macro wootric_percent(part, whole) -%}
  cast(round(100.0 * ({{ part }}) / nullif({{ whole }}, 0), 1) as numeric(5, 1))
{%- endmacro %}
