-- One row per response: its score and NPS category, survey, end user, tags, text and times (UTC and the
-- account's local time).
with responses as (
  select * from {{ ref('stg_wootric__responses') }}
), end_users as (
  select * from {{ ref('stg_wootric__end_users') }}
), deleted_end_users as (
  select * from {{ ref('stg_wootric__deleted_end_users') }}
), localized as (
  select
    responses.*,
    {{ wootric_local_time('responses.created_at') }} as created_at_local
  from responses
)
select
  r.response_id,
  r.survey_id,
  r.score,
  case
    when r.score >= 9 then 'promoter'
    when r.score >= 7 then 'passive'
    when r.score >= 0 then 'detractor'
  end as nps_category,
  -- What Wootric's NPS counts: a scored response not excluded from calculations.
  (r.score is not null and not coalesce(r.is_excluded_from_calculations, false)) as is_counted_in_nps,
  coalesce(r.is_excluded_from_calculations, false) as is_excluded_from_calculations,
  r.is_completed,
  r.response_text,
  r.tags,
  r.notes,
  r.origin_url,
  r.end_user_id,
  coalesce(u.email, {{ wootric_json_get('r.end_user', ['email']) }}) as end_user_email,
  u.external_id as end_user_external_id,
  u.created_at as end_user_created_at,
  -- The end user's properties as the response recorded them, and as they are now.
  r.end_user as end_user_at_response,
  u.properties as end_user_properties,
  (d.end_user_id is not null) as is_end_user_deleted,
  r.created_at,
  r.updated_at,
  r.created_at_local,
  cast(r.created_at_local as date) as created_date,
  {{ wootric_month('cast(r.created_at_local as date)') }} as created_month
from localized as r
left join end_users as u on u.end_user_id = r.end_user_id
left join deleted_end_users as d on d.end_user_id = r.end_user_id
