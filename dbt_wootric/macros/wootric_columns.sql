{% macro wootric_end_user_columns() %}
  {{ return([
    ['id', 'bigint', 'end_user_id'],
    ['email', 'text', 'email'],
    ['external_id', 'text', 'external_id'],
    ['properties', 'json', 'properties'],
    ['page_views_count', 'bigint', 'page_views_count'],
    ['created_at', 'timestamp', 'created_at'],
    ['updated_at', 'timestamp', 'updated_at'],
    ['external_created_at', 'timestamp', 'external_created_at'],
    ['last_surveyed', 'timestamp', 'last_surveyed_at'],
    ['last_seen_at', 'timestamp', 'last_seen_at'],
  ]) }}
{% endmacro %}
