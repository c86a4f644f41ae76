-- The days' NPS counts add up to the responses that NPS counts, category by category.
with from_responses as (
  select nps_category, count(*) as responses
  from {{ ref('wootric__responses') }}
  where is_counted_in_nps
  group by nps_category
), from_days as (
  select 'promoter' as nps_category, sum(promoters) as responses from {{ ref('wootric__nps_daily') }}
  union all
  select 'passive', sum(passives) from {{ ref('wootric__nps_daily') }}
  union all
  select 'detractor', sum(detractors) from {{ ref('wootric__nps_daily') }}
)
select d.nps_category, d.responses as from_days, r.responses as from_responses
from from_days as d
left join from_responses as r on r.nps_category = d.nps_category
where coalesce(d.responses, 0) <> coalesce(r.responses, 0)
