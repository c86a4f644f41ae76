-- NPS by month and by the value of one end-user property (var wootric_nps_property, e.g. pricing_plan):
-- the value the response recorded, else the end user's current one, else '(not set)'.
{%- set property = var('wootric_nps_property') %}
with responses as (
  select
    created_month as month,
    nps_category,
    coalesce(
      {{ wootric_json_get('end_user_at_response', ['properties', property]) }},
      {{ wootric_json_get('end_user_properties', [property]) }},
      '(not set)'
    ) as property_value
  from {{ ref('wootric__responses') }}
  where is_counted_in_nps
), counts as (
  select
    month,
    property_value,
    cast(sum(case when nps_category = 'promoter' then 1 else 0 end) as bigint) as promoters,
    cast(sum(case when nps_category = 'passive' then 1 else 0 end) as bigint) as passives,
    cast(sum(case when nps_category = 'detractor' then 1 else 0 end) as bigint) as detractors
  from responses
  group by month, property_value
)
select
  month,
  cast('{{ property | replace("'", "''") }}' as varchar) as property_name,
  property_value,
  promoters,
  passives,
  detractors,
  promoters + passives + detractors as responses,
  {{ wootric_nps('promoters', 'detractors', 'promoters + passives + detractors') }} as nps
from counts
