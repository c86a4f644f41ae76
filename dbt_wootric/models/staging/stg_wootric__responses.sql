-- One row per response at its latest version; responses a target marked deleted are left out.
{{ wootric_latest('responses', ['id'], [
    ['id', 'bigint', 'response_id'],
    ['end_user_id', 'bigint', 'end_user_id'],
    ['survey_id', 'bigint', 'survey_id'],
    ['score', 'bigint', 'score'],
    ['text', 'text', 'response_text'],
    ['completed', 'boolean', 'is_completed'],
    ['excluded_from_calculations', 'boolean', 'is_excluded_from_calculations'],
    ['origin_url', 'text', 'origin_url'],
    ['tags', 'json', 'tags'],
    ['notes', 'json', 'notes'],
    ['end_user', 'json', 'end_user'],
    ['created_at', 'timestamp', 'created_at'],
    ['updated_at', 'timestamp', 'updated_at'],
]) }}
