-- Where nps_summary was synced, each account-local month it covers from the first day has the same promoters,
-- passives, detractors and responses in wootric__nps_monthly (from the responses) as in Wootric's own day
-- counts. A row returned is a month that differs: responses the warehouse lacks or holds in an older version.
with summary_days as (
  select * from {{ ref('stg_wootric__nps_summary') }}
), summary as (
  select
    {{ wootric_month('date_day') }} as month,
    min(date_day) as first_day,
    cast(sum(promoters) as bigint) as promoters,
    cast(sum(passives) as bigint) as passives,
    cast(sum(detractors) as bigint) as detractors,
    cast(sum(responses) as bigint) as responses
  from summary_days
  group by 1
)
select
  s.month,
  s.promoters as summary_promoters, coalesce(m.promoters, 0) as promoters,
  s.passives as summary_passives, coalesce(m.passives, 0) as passives,
  s.detractors as summary_detractors, coalesce(m.detractors, 0) as detractors,
  s.responses as summary_responses, coalesce(m.responses, 0) as responses
from summary as s
left join {{ ref('wootric__nps_monthly') }} as m on m.month = s.month
where s.first_day = s.month
  and (s.promoters <> coalesce(m.promoters, 0)
    or s.passives <> coalesce(m.passives, 0)
    or s.detractors <> coalesce(m.detractors, 0)
    or s.responses <> coalesce(m.responses, 0))
