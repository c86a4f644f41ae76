-- One row per end user at its latest state, with their first and last response and how many they gave.
with end_users as (
  select * from {{ ref('stg_wootric__end_users') }}
), responses as (
  select * from {{ ref('stg_wootric__responses') }}
), response_counts as (
  select
    end_user_id,
    count(*) as response_count,
    min(created_at) as first_response_at,
    max(created_at) as last_response_at
  from responses
  group by end_user_id
), last_responses as (
  select end_user_id, response_id, score
  from (
    select
      end_user_id, response_id, score,
      row_number() over (partition by end_user_id order by created_at desc, response_id desc) as recency
    from responses
  ) as ranked
  where recency = 1
), decline_counts as (
  select end_user_id, count(*) as decline_count
  from {{ ref('stg_wootric__declines') }}
  group by end_user_id
)
select
  u.end_user_id,
  u.email,
  u.external_id,
  u.properties,
  u.page_views_count,
  u.created_at,
  u.updated_at,
  u.external_created_at,
  u.last_surveyed_at,
  u.last_seen_at,
  cast(coalesce(c.response_count, 0) as bigint) as response_count,
  cast(coalesce(dc.decline_count, 0) as bigint) as decline_count,
  c.first_response_at,
  c.last_response_at,
  l.response_id as last_response_id,
  l.score as last_response_score
from end_users as u
left join response_counts as c on c.end_user_id = u.end_user_id
left join last_responses as l on l.end_user_id = u.end_user_id
left join decline_counts as dc on dc.end_user_id = u.end_user_id
