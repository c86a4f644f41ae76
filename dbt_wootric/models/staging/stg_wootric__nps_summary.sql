-- Wootric's own NPS counts, one row per account-local day; no rows when the stream was not synced.
{{ wootric_latest('nps_summary', ['date'], [
    ['date', 'date', 'date_day'],
    ['promoters', 'bigint', 'promoters'],
    ['passives', 'bigint', 'passives'],
    ['detractors', 'bigint', 'detractors'],
    ['responses', 'bigint', 'responses'],
    ['nps', 'float', 'nps'],
    ['response_rate', 'float', 'response_rate'],
]) }}
