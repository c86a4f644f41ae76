-- One row per end user at its latest version; end users a target marked deleted are left out.
{{ wootric_latest('end_users', ['id'], wootric_end_user_columns()) }}
