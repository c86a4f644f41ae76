"""nps_summary, email_stats, email_stats_sources and survey_templates into a real PostgreSQL through
meltanolabs-target-postgres: typed columns, upserts on the date, and the README's reconciliation of the
NPS computed from responses with nps_summary."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import tools
from helpers import NOW, last_state, pipe, readme_block, select

pytestmark = pytest.mark.slow  # meltanolabs-target-postgres on PostgreSQL.

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "tap_wootric" / "schemas"
NEW_STREAMS = ("nps_summary", "email_stats", "email_stats_sources", "survey_templates")
LA = "America/Los_Angeles"


def test_new_streams_land_typed_and_reconcile_with_responses(fake, tap, tmp_path, postgres):
    first = datetime.now(ZoneInfo(LA)).date().replace(day=1) - timedelta(days=1)
    first = first.replace(day=1)  # the first day of last month, in the account's zone
    low = fake.day_bounds(first)[0]
    fake.generate("end_users", 30, low, NOW - timedelta(hours=2))
    fake.generate("responses", 300, low, NOW - timedelta(hours=2))
    config = fake.config(start_date=low.strftime("%Y-%m-%dT%H:%M:%SZ"))
    catalog = select(tap.discover(config), {name: None for name in (*NEW_STREAMS, "responses")})
    postgres.psql("CREATE DATABASE wootric_days")
    target_config = tmp_path / "target.json"
    target_config.write_text(json.dumps({"host": "127.0.0.1", "port": postgres.port, "user": "postgres",
                                         "password": "unused", "database": "wootric_days",
                                         "default_target_schema": "wootric"}))
    target_argv = [str(tools.ensure("target-postgres")), "--config", str(target_config)]
    state = last_state(pipe(tap, config, target_argv, catalog=catalog))
    q = lambda sql: postgres.psql(sql, "wootric_days")  # noqa: E731

    types = dict(map(tuple, q("SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                              "WHERE table_schema = 'wootric'")))
    for stream in NEW_STREAMS:  # every field of the catalog has a column
        landed = {column.split(".", 1)[1] for column in types if column.startswith(stream + ".")}
        wanted = set(json.loads((SCHEMAS / f"{stream}.json").read_text())["properties"])
        assert wanted <= landed, (stream, wanted - landed)
    assert types["nps_summary.date"] == types["email_stats.date"] == "date"
    for column in ("nps_summary.responses", "nps_summary.promoters", "nps_summary.passives", "nps_summary.detractors",
                   "email_stats.send_requests", "email_stats.emails_sent", "email_stats.delivered",
                   "survey_templates.id", "survey_templates.non_configured_language_count"):
        assert types[column] in ("bigint", "integer"), column
    for column in ("nps_summary.nps", "nps_summary.response_rate", "nps_summary.email_response_rate",
                   "email_stats.bounce_rate"):
        assert types[column] in ("numeric", "double precision"), column
    for column in ("email_stats.open_rate", "email_stats.not_eligible", "email_stats_sources.kind",
                   "email_stats_sources.id", "survey_templates.name"):
        assert types[column] in ("text", "character varying"), column
    assert types["email_stats.raw_results"] == types["email_stats.initial_send"] == "jsonb"
    elements = dict(map(tuple, q("SELECT column_name, udt_name FROM information_schema.columns WHERE table_schema = "
                                 "'wootric' AND table_name = 'survey_templates' AND data_type = 'ARRAY'")))
    assert elements == {"languages": "_jsonb", "custom_samplings": "_jsonb"}  # arrays of objects
    assert types["survey_templates.is_default"] == "boolean"
    # Counts inside raw_results stay JSON numbers.
    assert q("SELECT DISTINCT jsonb_typeof(raw_results->'delivered') FROM wootric.email_stats") == [["number"]]

    days = (datetime.now(ZoneInfo(LA)).date() - first).days + 1
    assert q("SELECT count(*), count(DISTINCT date) FROM wootric.nps_summary") in ([[str(days)] * 2],
                                                                                   [[str(days + 1)] * 2])
    assert q("SELECT count(*) FROM wootric.survey_templates WHERE is_default") == [["1"]]
    assert q("SELECT kind, count(*) FROM wootric.email_stats_sources GROUP BY 1 ORDER BY 1") == [
        ["ongoing", "2"], ["sends", "2"]]

    # A second run re-reads the recent days: the target upserts on the date, one row per day.
    pipe(tap, config, target_argv, catalog=catalog, state=state)
    assert q("SELECT count(*) = count(DISTINCT date) FROM wootric.nps_summary") == [["t"]]
    assert q("SELECT count(*) = count(DISTINCT date) FROM wootric.email_stats") == [["t"]]

    # The README's reconciliation: the NPS of each account-local month from the responses equals the
    # NPS from nps_summary's day counts.
    months = q(readme_block("Reconcile with nps_summary", "sql", "docs/recipes.md"))
    assert len(months) >= 2
    for month, from_responses, from_summary in months:
        assert from_responses == from_summary and from_responses != "", month
