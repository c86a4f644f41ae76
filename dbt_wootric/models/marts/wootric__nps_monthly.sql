-- One row per account-local month: NPS from the month's summed counts (never an average of daily NPS).
with months as (
  select
    month,
    cast(sum(promoters) as bigint) as promoters,
    cast(sum(passives) as bigint) as passives,
    cast(sum(detractors) as bigint) as detractors,
    cast(sum(responses) as bigint) as responses,
    cast(sum(excluded_responses) as bigint) as excluded_responses,
    cast(sum(declines) as bigint) as declines
  from {{ ref('wootric__nps_daily') }}
  group by month
)
select
  month,
  promoters,
  passives,
  detractors,
  responses,
  excluded_responses,
  declines,
  {{ wootric_nps('promoters', 'detractors', 'responses') }} as nps,
  {{ wootric_percent('responses + excluded_responses', 'responses + excluded_responses + declines') }}
    as response_rate
from months
