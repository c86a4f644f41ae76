-- End users whose latest landed version a target marked deleted (_sdc_deleted_at): their responses may stay.
{{ wootric_latest('end_users', ['id'], [['id', 'bigint', 'end_user_id']], deleted='only') }}
