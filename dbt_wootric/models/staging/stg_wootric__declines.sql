-- One row per decline (a survey dismissed without a score) at its latest version, deleted ones left out.
{{ wootric_latest('declines', ['id'], [
    ['id', 'bigint', 'decline_id'],
    ['end_user_id', 'bigint', 'end_user_id'],
    ['survey_id', 'bigint', 'survey_id'],
    ['created_at', 'timestamp', 'created_at'],
    ['updated_at', 'timestamp', 'updated_at'],
]) }}
