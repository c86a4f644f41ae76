"""nps_summary, email_stats, email_stats_sources and survey_templates: the day reader's date maths, and
the real CLI against the fake, whose summaries are computed from its own responses and declines."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import requests
from fake import FakeWootric
from helpers import NOW, TapRunner, checker, select

from tap_wootric.api.apis import V2
from tap_wootric.api.client import WootricClient
from tap_wootric.config import load_config
from tap_wootric.errors import ConfigError, InputFileError, Refused
from tap_wootric.readers.daily import account_today, first_day, parse_day, plan_days, record_of
from tap_wootric.state import prepare_state
from tap_wootric.streams import get_stream

WORKERS = 4  # the default
DAY_STREAMS = ("nps_summary", "email_stats")
NEW_STREAMS = (*DAY_STREAMS, "email_stats_sources", "survey_templates")
LA = "America/Los_Angeles"
BASE = {"client_id": "id", "client_secret": "secret", "start_date": "2024-01-01T00:00:00Z"}


# -- pure parts -----------------------------------------------------------------------------------------


def d(text):
    return date.fromisoformat(text)


@pytest.mark.parametrize("bookmark, reread, first", [
    (None, 7, "2026-10-01"),            # first run: from start_date's date
    ("2026-11-30", 7, "2026-11-24"),    # the 7 ended days up to the bookmark again, then on
    ("2026-11-30", 0, "2026-12-01"),    # no re-read: only what follows the bookmark
    ("2026-10-03", 7, "2026-10-01"),    # never before start_date
    ("2026-10-03", 10**9, "2026-10-01"),
    ("2026-09-01", 7, "2026-10-01"),    # start_date moved later than the bookmark
    ("2026-12-05", 2, "2026-11-29"),    # a bookmark past the last ended day is pulled back to it
])
def test_plan_days(bookmark, reread, first):
    plan = plan_days(d("2026-10-01"), parse_day(bookmark), d("2026-12-01"), reread)
    assert plan.first == d(first) and plan.today == d("2026-12-01") and plan.last_ended == d("2026-11-30")
    days = list(plan.each_day())
    assert days[0] == d(first) and days[-1] == d("2026-12-01") and len(days) == plan.days
    assert plan.bookmark is None or plan.bookmark <= plan.last_ended


def test_the_day_in_progress_is_the_accounts():
    moment = datetime(2026, 12, 1, 7, 30, tzinfo=timezone.utc).timestamp()  # 23:30 on Nov 30 in Los Angeles
    assert account_today(LA, moment) == d("2026-11-30")
    assert account_today("UTC", moment) == d("2026-12-01")
    assert account_today("Pacific/Kiritimati", moment) == d("2026-12-01")


@pytest.mark.parametrize("start, zone, first", [
    ("2026-11-01T00:00:00Z", LA, "2026-11-01"),          # 17:00 on Oct 31 there: Nov 1 is the first whole day
    ("2026-11-01T00:00:00Z", "Asia/Tokyo", "2026-11-02"),  # 09:00 on Nov 1 there: that day began earlier
    ("2026-10-31T15:00:00Z", "Asia/Tokyo", "2026-11-01"),  # midnight there: that very day
    ("2026-11-01T07:00:00Z", LA, "2026-11-01"),          # midnight PDT, on the day daylight saving time ends
    ("2026-11-01T00:00:00Z", "UTC", "2026-11-01"),
])
def test_the_first_day_is_the_first_whole_account_local_day_from_start_date(start, zone, first):
    assert first_day(load_config({**BASE, "start_date": start}).start_date, zone) == d(first)


@pytest.mark.parametrize("value", ["2026-02-30", "2026-1-01", "yesterday", 20260101, "2026-01-01T00:00:00Z"])
def test_a_date_bookmark_must_be_a_real_date(value):
    assert parse_day(value) is None
    with pytest.raises(InputFileError, match="not a YYYY-MM-DD date"):
        prepare_state({"bookmarks": {"nps_summary": {"date": value}}})


def test_v2_base_comes_from_api_url():
    assert load_config(BASE).v2_api_url == "https://api.wootric.com/v2"
    assert load_config({**BASE, "region": "eu"}).v2_api_url == "https://app.wootric.eu/api/v2"
    assert load_config({**BASE, "api_url": "http://127.0.0.1:9/v1/"}).v2_api_url == "http://127.0.0.1:9/v2"
    behind_proxy = load_config({**BASE, "api_url": "http://127.0.0.1:9/wootric"})
    assert behind_proxy.v2_api_url is None
    # Refused before any request goes out: the v2 streams are skipped, not sent to a wrong URL.
    with pytest.raises(Refused, match="does not end in /v1"):
        WootricClient(behind_proxy).get(V2, "email_stats")


def test_day_stream_settings():
    config = load_config(BASE)
    assert config.account_timezone == LA and config.daily_reread_days == 7
    config = load_config({**BASE, "account_timezone": "Europe/Berlin", "daily_reread_days": "0"})
    assert config.account_timezone == "Europe/Berlin" and config.daily_reread_days == 0
    with pytest.raises(ConfigError, match="account_timezone"):
        load_config({**BASE, "account_timezone": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="daily_reread_days"):
        load_config({**BASE, "daily_reread_days": -1})


def test_a_days_record_is_the_body_or_the_object_under_record_key():
    day = d("2026-11-30")
    assert record_of(get_stream("nps_summary"), {"nps": 5, "responses": 2}, day) == {
        "date": "2026-11-30", "nps": 5, "responses": 2}
    body = {"email_stats": {"delivered": 3}, "initial_send": None, "reminder_send": None}
    assert record_of(get_stream("email_stats"), body, day) == {
        "date": "2026-11-30", "delivered": 3, "initial_send": None, "reminder_send": None}


# -- the fake's summaries ------------------------------------------------------------------------------


def test_the_fakes_summaries_add_up_and_follow_the_accounts_days(fake):
    span = datetime(2026, 10, 20, tzinfo=timezone.utc), datetime(2026, 11, 10, tzinfo=timezone.utc)
    fake.generate("responses", 200, *span)
    fake.generate("declines", 40, *span)
    token = requests.post(fake.oauth_url, data={"grant_type": "client_credentials", "client_id": fake.client_id,
                                                "client_secret": fake.client_secret}, timeout=5).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def get(path, **params):
        return session.get(f"{fake.url}/{path}", params=params, timeout=5)

    week = get("v1/nps_summary", **{"date[start]": "2026-10-26", "date[end]": "2026-11-01"}).json()
    days = [get("v1/nps_summary", **{"date[start]": day, "date[end]": day}).json()
            for day in (f"2026-10-{n}" for n in range(26, 32))]
    days.append(get("v1/nps_summary", **{"date[start]": "2026-11-01", "date[end]": "2026-11-01"}).json())
    for key in ("responses", "promoters", "passives", "detractors"):
        assert week[key] == sum(day[key] for day in days)
    # 1 Nov 2026 is 25 hours long in Los Angeles (daylight saving time ends).
    low, high = fake.day_bounds(d("2026-11-01"))
    assert high - low == timedelta(hours=25)
    stats = get("v2/email_stats", **{"date_range[start_date]": "2026-10-26",
                                     "date_range[end_date]": "2026-11-01"}).json()["email_stats"]
    assert stats["raw_results"]["total_responses"] == sum(
        1 for r in fake.records("responses") if fake.day_bounds(d("2026-10-26"))[0] <= r["created_at"] < high)
    assert stats["send_date"] == "Oct 26, 2026-Nov  1, 2026"
    assert stats["raw_results"]["sart_date"] == "2026-10-26T00:00:00-07:00"
    assert stats["raw_results"]["end_date"] == "2026-11-01T23:59:59-08:00"
    assert get("v1/nps_summary", **{"date[start]": "2026-02-30"}).status_code == 400
    assert get("v1/nps_summary").status_code == 200  # the last month by default
    assert get("v2/email_stats/nothing").status_code == 404
    fake.v2_status = 403
    assert get("v2/email_stats/sources").status_code == 403
    assert get("v1/survey_templates").json()["default_survey_template_id"] == 123


# -- through the CLI ------------------------------------------------------------------------------------


def rounded(value):
    """Half away from zero, as the fake (and Ruby) round."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def local_day(text, zone):
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def nps_of(responses):
    """NPS counts of synced response records, as Wootric counts them (exclusions left out)."""
    scores = [r["score"] for r in responses if r["score"] is not None and not r["excluded_from_calculations"]]
    promoters, detractors = sum(s >= 9 for s in scores), sum(s <= 6 for s in scores)
    return {"responses": len(scores), "promoters": promoters, "detractors": detractors,
            "passives": len(scores) - promoters - detractors,
            "nps": rounded(100 * (promoters - detractors) / len(scores)) if scores else 0}


def by_day(records, zone):
    days = defaultdict(list)
    for record in records:
        days[local_day(record["created_at"], zone)].append(record)
    return days


def month_start(zone, months_back=1):
    today = datetime.now(ZoneInfo(zone)).date().replace(day=1)
    for _ in range(months_back):
        today = (today - timedelta(days=1)).replace(day=1)
    return today


def seeded(fake, first_day):
    """Data from the start of first_day in the account's zone until two hours ago."""
    low = fake.day_bounds(first_day)[0]
    fake.generate("end_users", 40, low, NOW - timedelta(hours=2))
    fake.generate("responses", 400, low, NOW - timedelta(hours=2))
    fake.generate("declines", 60, low, NOW - timedelta(hours=2))


def midnight(fake, day):
    """start_date at the start of an account-local day, so the day streams and responses start together."""
    return fake.day_bounds(day)[0].strftime("%Y-%m-%dT%H:%M:%SZ")


def catalog_of(tap, fake, streams, **config):
    return select(tap.discover(fake.config(**config)), {name: None for name in streams})


def rows(run, stream):
    return {r["date"]: r for r in run.records(stream)}


def test_new_streams_in_discovery(fake, tap):
    catalog = {e["tap_stream_id"]: e for e in tap.discover(fake.config())["streams"]}
    for name in NEW_STREAMS:
        entry = catalog[name]
        stream_md = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        # Opt-in: the day streams for their cost, the others so an upgrade adds no table unasked.
        assert stream_md["selected-by-default"] is False
        assert stream_md["forced-replication-method"] == ("INCREMENTAL" if name in DAY_STREAMS else "FULL_TABLE")
        if name in DAY_STREAMS:
            assert stream_md["valid-replication-keys"] == ["date"] and entry["key_properties"] == ["date"]
        jsonschema.Draft4Validator.check_schema(entry["schema"])

        # Fully typed, so every field lands in targets that skip untyped ones (pipelinewise-target-postgres).
        def typed(schema, where):
            assert "type" in schema, where
            for key, child in (schema.get("properties") or {}).items():
                typed(child, f"{where}.{key}")
            if "items" in schema:
                typed(schema["items"], f"{where}[]")

        typed(entry["schema"], name)
    assert catalog["email_stats_sources"]["key_properties"] == ["kind", "id"]


@pytest.mark.parametrize("zone", [LA, "Asia/Tokyo"])
def test_a_days_nps_summary_equals_the_nps_of_the_synced_responses_of_that_account_local_day(tap, zone):
    with FakeWootric(seed=5, account_tz=zone) as fake:
        first = month_start(zone)
        seeded(fake, first)
        config = fake.config(start_date=midnight(fake, first), account_timezone=zone)
        catalog = catalog_of(tap, fake, (*NEW_STREAMS, "responses", "declines"), **config)
        today_before = datetime.now(ZoneInfo(zone)).date()
        run = tap.run(config, catalog=catalog)
        today_after = datetime.now(ZoneInfo(zone)).date()
        assert run.returncode == 0, run.stderr
    schemas = run.schemas()
    for message in run.messages:
        if message["type"] == "RECORD":
            jsonschema.validate(message["record"], schemas[message["stream"]]["schema"], format_checker=checker())

    summary = rows(run, "nps_summary")
    # One row per account-local day, from start_date's date to today there.
    assert sorted(summary) == [(first + timedelta(days=n)).isoformat()
                               for n in range((today_after - first).days + 1)] or today_before != today_after
    responses = by_day(run.records("responses"), zone)
    declines = by_day(run.records("declines"), zone)
    assert sum(row["responses"] for row in summary.values()) > 300
    for day, row in summary.items():
        expected = nps_of(responses[day])
        assert {key: row[key] for key in expected} == expected, day
        for key in ("responses", "promoters", "passives", "detractors"):
            assert type(row[key]) is int
        shown = len(responses[day]) + len(declines[day])
        assert row["response_rate"] == (rounded(100 * len(responses[day]) / shown) if shown else 0)

    emails = rows(run, "email_stats")
    assert set(emails) == set(summary)
    for day, row in emails.items():
        raw = row["raw_results"]
        assert raw["total_responses"] == len(responses[day]), day
        assert all(type(raw[key]) is int for key in raw if key not in ("sart_date", "end_date"))
        assert raw["total_responses"] <= raw["open"] <= raw["delivered"] <= raw["processed"] == row["emails_sent"]
        assert row["send_requests"] == row["emails_sent"] + raw["opted_out"] + raw["not_eligible"]
        assert row["open_rate"].endswith("%") and row["not_eligible"].endswith("%)")
        # The period's boundaries are the account-local day's, as UTC instants.
        assert local_day(raw["sart_date"], zone) == day

    templates = {r["id"]: r for r in run.records("survey_templates")}
    assert {i for i, r in templates.items() if r["is_default"]} == {fake.default_survey_template_id}
    assert templates[124]["languages"] == fake.survey_templates[1]["languages"]
    sources = {(r["kind"], r["id"]) for r in run.records("email_stats_sources")}
    assert sources == {("ongoing", "email_api"), ("ongoing", "webhook_trigger"), ("sends", "1"), ("sends", "2")}

    # The bookmark never passes the day in progress in the account's zone.
    bookmarks = run.final_state["bookmarks"]
    for stream in DAY_STREAMS:
        assert bookmarks[stream]["date"] in {(today_before - timedelta(days=1)).isoformat(),
                                             (today_after - timedelta(days=1)).isoformat()}


def test_day_counts_add_up_to_the_months_nps(fake, tap):
    first = month_start(LA)
    seeded(fake, first)
    config = fake.config(start_date=midnight(fake, first))
    run = tap.run(config, catalog=catalog_of(tap, fake, ("nps_summary", "responses")))
    assert run.returncode == 0, run.stderr
    month = first.strftime("%Y-%m")
    days = [row for day, row in rows(run, "nps_summary").items() if day.startswith(month)]
    last = date.fromisoformat(max(row["date"] for row in days))
    assert len(days) == last.day and last.month != (last + timedelta(days=1)).month  # the whole month
    totals = {key: sum(row[key] for row in days) for key in ("responses", "promoters", "detractors")}
    from_days = 100 * (totals["promoters"] - totals["detractors"]) / totals["responses"]
    # The month's responses, grouped by account-local month, give the same NPS ...
    month_responses = [r for r in run.records("responses") if local_day(r["created_at"], LA).startswith(month)]
    assert nps_of(month_responses)["responses"] == totals["responses"]
    assert rounded(from_days) == nps_of(month_responses)["nps"]
    # ... and so does Wootric's own figure for the whole month.
    assert rounded(from_days) == fake.nps_summary(first, last)["nps"]
    # Averaging the days' NPS is not the month's NPS: that is why the counts are kept.
    assert sum(row["nps"] for row in days) / len(days) != pytest.approx(from_days, abs=0.01)


def local_today():
    return datetime.now(ZoneInfo(LA)).date()


def test_each_run_rereads_the_recent_days_and_picks_up_a_change(fake, tap):
    first = local_today() - timedelta(days=30)
    seeded(fake, first)
    config = fake.config(start_date=midnight(fake, first))
    catalog = catalog_of(tap, fake, DAY_STREAMS)
    before = tap.run(config, catalog=catalog)
    assert before.returncode == 0, before.stderr
    today = local_today()

    def counted_on(day):
        low, high = fake.day_bounds(day)
        return [r for r in fake.records("responses")
                if low <= r["created_at"] < high and not r["excluded_from_calculations"]]

    recent, old = today - timedelta(days=3), today - timedelta(days=20)
    for day in (recent, old):
        fake.update("responses", counted_on(day)[0]["id"], excluded_from_calculations=True)
    fake.clear_log()
    after = tap.run(config, catalog=catalog, state=before.final_state)
    assert after.returncode == 0, after.stderr
    summary = rows(after, "nps_summary")
    # The 7 ended days up to the bookmark (yesterday) again, and today: 8 requests a stream.
    assert sorted(summary) == [(today - timedelta(days=n)).isoformat() for n in range(7, -1, -1)]
    assert summary[recent.isoformat()]["responses"] == rows(before, "nps_summary")[recent.isoformat()]["responses"] - 1
    assert summary[recent.isoformat()]["responses"] == len(counted_on(recent))
    assert old.isoformat() not in summary  # older than the re-read window: the change waits for a resync
    assert len([r for r in fake.requests if r["path"] == "/v1/nps_summary"]) == 8
    assert len([r for r in fake.requests if r["path"] == "/v2/email_stats"]) == 8
    assert after.final_state["bookmarks"]["nps_summary"] == before.final_state["bookmarks"]["nps_summary"]


def test_an_interrupted_backfill_resumes_from_its_bookmark(fake, tap):
    first = local_today() - timedelta(days=20)
    seeded(fake, first)
    config = fake.config(start_date=midnight(fake, first), daily_reread_days=2)
    catalog = catalog_of(tap, fake, ("nps_summary",))
    fake.fail(11, 400)  # about the 11th day's request: the workers send a few days at once, in any order
    failed = tap.run(config, catalog=catalog)
    assert failed.returncode == 1 and "GET /nps_summary" in failed.stderr
    (failed_day,) = [date.fromisoformat(r["params"]["date[start]"]) for r in fake.requests if r["status"] == 400]
    assert (failed_day - first).days in range(7, 15)
    state = failed.final_state
    assert state["currently_syncing"] == "nps_summary"
    # Every day before the failed one is written, in order, and the bookmark is the last of them.
    assert sorted(rows(failed, "nps_summary")) == [(first + timedelta(days=n)).isoformat()
                                                   for n in range((failed_day - first).days)]
    bookmark = failed_day - timedelta(days=1)
    assert state["bookmarks"]["nps_summary"] == {"date": bookmark.isoformat()}
    fake.clear_log()
    resumed = tap.run(config, catalog=catalog, state=state)
    assert resumed.returncode == 0, resumed.stderr
    # daily_reread_days=2: the 2 days up to the bookmark again, then the rest, each once.
    requested = [r["params"]["date[start]"] for r in fake.requests if r["path"] == "/v1/nps_summary"]
    today = local_today()
    assert sorted(requested) == [(bookmark + timedelta(days=n)).isoformat()
                                 for n in range(-1, (today - bookmark).days + 1)]
    assert list(rows(resumed, "nps_summary")) == sorted(requested)  # emitted in the days' order
    assert set(rows(failed, "nps_summary")) | set(rows(resumed, "nps_summary")) == {
        (first + timedelta(days=n)).isoformat() for n in range((today - first).days + 1)}
    assert resumed.final_state["bookmarks"]["nps_summary"] == {"date": (today - timedelta(days=1)).isoformat()}
    assert resumed.final_state["currently_syncing"] is None


@pytest.mark.parametrize("status", [403, 404, 401])
def test_an_account_the_v2_api_refuses_skips_the_email_streams_with_one_warning(fake, tap, status):
    first = local_today() - timedelta(days=5)
    seeded(fake, first)
    fake.v2_status = status
    config = fake.config(start_date=midnight(fake, first))
    run = tap.run(config, catalog=catalog_of(tap, fake, (*NEW_STREAMS, "responses")))
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "E-mail stats streams skipped" in line]
    assert len(warnings) == 1 and f"HTTP {status}" in warnings[0], run.stderr
    assert "email_stats, email_stats_sources" in warnings[0]
    assert not run.records("email_stats") and not run.records("email_stats_sources")
    # The rest of the sync goes on.
    assert len(run.records("nps_summary")) == 6 and len(run.records("survey_templates")) == 2
    assert len(run.records("responses")) == len(fake.records("responses"))
    v2_requests = [r for r in fake.requests if r["path"].startswith("/v2/")]
    # A 401 gets one new token and one retry. The workers send a few of email_stats' days, and
    # email_stats_sources, at once: each of those in flight before the refusal is refused once.
    assert 1 <= len(v2_requests) / (2 if status == 401 else 1) <= WORKERS + 1
    assert "email_stats" not in run.final_state["bookmarks"]


@pytest.mark.slow
def test_two_years_of_history_cost_one_request_a_day_then_eight_a_run(fake, tap):
    """The README's cost figures: a start_date 2 years back, then a run the next time."""
    today = local_today()
    first = today.replace(year=today.year - 2) if not (today.month == 2 and today.day == 29) else today - timedelta(730)
    config = fake.config(start_date=midnight(fake, first))
    catalog = catalog_of(tap, fake, ("nps_summary",))
    backfill = tap.run(config, catalog=catalog, timeout=300)
    assert backfill.returncode == 0, backfill.stderr
    requests = [r for r in fake.requests if r["path"] == "/v1/nps_summary"]
    days = (today - first).days + 1
    assert len(requests) == len(backfill.records("nps_summary")) == days and days in (731, 732)
    fake.clear_log()
    again = tap.run(config, catalog=catalog, state=backfill.final_state)
    assert again.returncode == 0, again.stderr
    assert len([r for r in fake.requests if r["path"] == "/v1/nps_summary"]) == 8


def test_state_with_a_bad_date_bookmark_fails_clearly(fake, tap: TapRunner):
    run = tap.run(fake.config(), state={"bookmarks": {"nps_summary": {"date": "2026-13-01"}}})
    assert run.returncode == 1 and "bookmark 'date' of stream 'nps_summary' is not a YYYY-MM-DD date" in run.stderr
    assert "Traceback" not in run.stderr and not run.records()
