-- One row per account-local day with a response or a decline: the NPS counts, declines, NPS and response rate.
with responses as (
  select * from {{ ref('wootric__responses') }}
), response_days as (
  select
    created_date as date_day,
    sum(case when is_counted_in_nps and nps_category = 'promoter' then 1 else 0 end) as promoters,
    sum(case when is_counted_in_nps and nps_category = 'passive' then 1 else 0 end) as passives,
    sum(case when is_counted_in_nps and nps_category = 'detractor' then 1 else 0 end) as detractors,
    count(*) as all_responses
  from responses
  group by created_date
), decline_days as (
  select cast({{ wootric_local_time('created_at') }} as date) as date_day, count(*) as declines
  from {{ ref('stg_wootric__declines') }}
  group by 1
), days as (
  select date_day from response_days
  union
  select date_day from decline_days
), counts as (
  select
    days.date_day,
    cast(coalesce(r.promoters, 0) as bigint) as promoters,
    cast(coalesce(r.passives, 0) as bigint) as passives,
    cast(coalesce(r.detractors, 0) as bigint) as detractors,
    cast(coalesce(r.all_responses, 0) as bigint) as all_responses,
    cast(coalesce(d.declines, 0) as bigint) as declines
  from days
  left join response_days as r on r.date_day = days.date_day
  left join decline_days as d on d.date_day = days.date_day
)
select
  date_day,
  {{ wootric_month('date_day') }} as month,
  promoters,
  passives,
  detractors,
  promoters + passives + detractors as responses,
  all_responses - (promoters + passives + detractors) as excluded_responses,
  declines,
  {{ wootric_nps('promoters', 'detractors', 'promoters + passives + detractors') }} as nps,
  {{ wootric_percent('all_responses', 'all_responses + declines') }} as response_rate
from counts
