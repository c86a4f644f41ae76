"""The dbt models (dbt_wootric/) over what real Singer targets land from the tap: every stream's rows land in
DuckDB through target-duckdb, and `dbt build` passes on DuckDB and on PostgreSQL (meltanolabs-target-postgres
and pipelinewise-target-postgres), with marts equal to what the tap emitted and a reconciliation test that
fails when a response is missing."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import warehouse
from helpers import NOW, load_into_postgres, select

ZONE = ZoneInfo("America/Los_Angeles")  # dbt_wootric's default account time zone, as the tap's and the fake's
ALL_STREAMS = ("end_users", "responses", "declines", "segments", "nps_summary", "email_stats",
               "email_stats_sources", "survey_templates", "cxi_responses", "cxi_tags", "cxi_projects", "cxi_imports")
RECONCILIATION = "wootric_nps_monthly_reconciles_with_nps_summary"
PG_TARGETS = {"meltanolabs-target-postgres": ("target-postgres", "database"),
              "pipelinewise-target-postgres": ("pipelinewise-target-postgres", "dbname")}


def seed_months(fake):
    """Two whole account-local months before this one and this month so far; some responses an hour into a
    UTC month, which belong to the month before in the account's zone. Returns the tap's start_date."""
    first = datetime.now(ZONE).date().replace(day=1)
    for _ in range(2):
        first = (first - timedelta(days=1)).replace(day=1)
    low = fake.day_bounds(first)[0]
    fake.generate("end_users", 50, low, NOW - timedelta(hours=2))
    fake.generate("responses", 360, low, NOW - timedelta(hours=2))
    fake.generate("declines", 50, low, NOW - timedelta(hours=2))
    month = datetime(first.year, first.month, 1, tzinfo=ZONE)
    for _ in range(2):
        month = (month + timedelta(days=32)).replace(day=1)
        utc_start = month.replace(tzinfo=None).replace(tzinfo=ZoneInfo("UTC"))
        if utc_start + timedelta(hours=2) < NOW - timedelta(hours=2):
            fake.generate("responses", 3, utc_start + timedelta(hours=1), utc_start + timedelta(hours=2))
    return low.strftime("%Y-%m-%dT%H:%M:%SZ")


def latest(run, stream):
    """The tap's records of a stream, the last version of each id."""
    return {record["id"]: record for record in run.records(stream)}


def local_month(instant: str) -> str:
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(ZONE).strftime("%Y-%m-01")


def expected_months(responses, declines):
    """{month: [promoters, passives, detractors, declines]} from the tap's records, in the account's months."""
    months = defaultdict(lambda: [0, 0, 0, 0])
    for record in responses.values():
        if record["score"] is not None and not record["excluded_from_calculations"]:
            score = record["score"]
            months[local_month(record["created_at"])][0 if score >= 9 else 1 if score >= 7 else 2] += 1
    for record in declines.values():
        months[local_month(record["created_at"])][3] += 1
    return {month: tuple(counts) for month, counts in months.items()}


def assert_built(proc, work):
    assert proc.returncode == 0, proc.stdout[-4000:]
    outcome = warehouse.results(work)
    assert {result["status"] for result in outcome.values()} <= {"success", "pass"}, outcome
    assert outcome[RECONCILIATION]["status"] == "pass"
    return outcome


@pytest.mark.slow
def test_every_stream_lands_in_duckdb_and_the_models_build_and_can_fail(fake, tap, tmp_path):
    start_date = seed_months(fake)
    fake.generate_segments(4)
    fake.generate_cxi(responses=30, imports=2, projects=2, tags=2)
    config = fake.config(start_date=start_date, cxi_api_url=fake.url + "/cxi/v1")
    catalog = select(tap.discover(config), {stream: None for stream in ALL_STREAMS})
    run = tap.run(config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-3000:]

    # Every row of every stream the tap emitted is in DuckDB (target-duckdb upserts on the key).
    database = tmp_path / "models.duckdb"
    warehouse.load_duckdb(run.stdout, database, tmp_path)
    schemas = run.schemas()
    assert set(schemas) == set(ALL_STREAMS)
    for stream in ALL_STREAMS:
        keys = {tuple(record[key] for key in schemas[stream]["key_properties"]) for record in run.records(stream)}
        assert keys, f"the tap emitted no {stream}"
        count = warehouse.query_duckdb(database, f"SELECT count(*) FROM wootric.{stream}")
        assert count == [[len(keys)]], stream

    proc = warehouse.dbt(["build"], tmp_path, env=warehouse.duckdb_env(database))
    outcome = assert_built(proc, tmp_path)
    assert {"wootric__responses", "wootric__end_users", "wootric__nps_daily", "wootric__nps_monthly",
            "wootric__nps_by_property_monthly"} <= set(outcome)
    q = lambda sql: warehouse.query_duckdb(database, sql)  # noqa: E731

    responses, declines, end_users = latest(run, "responses"), latest(run, "declines"), latest(run, "end_users")
    months = expected_months(responses, declines)
    assert len(months) >= 2
    monthly = q("SELECT month, promoters, passives, detractors, declines, responses, nps "
                "FROM analytics.wootric__nps_monthly ORDER BY month")
    assert [row[0] for row in monthly] == sorted(months)
    for month, promoters, passives, detractors, declined, total, nps in monthly:
        assert (promoters, passives, detractors, declined) == months[month], month
        assert total == promoters + passives + detractors
        assert nps == round(100 * (promoters - detractors) / total, 1)
    categories = Counter(("promoter" if r["score"] >= 9 else "passive" if r["score"] >= 7 else "detractor")
                         for r in responses.values() if r["score"] is not None)
    assert dict(q("SELECT nps_category, count(*) FROM analytics.wootric__responses WHERE nps_category IS NOT NULL "
                  "GROUP BY 1")) == dict(categories)
    assert q("SELECT count(*), sum(response_count) FROM analytics.wootric__end_users") == [
        [len(end_users), sum(r["end_user_id"] in end_users for r in responses.values())]]
    # NPS by pricing_plan: the response's own copy of the end user's properties.
    plans = Counter((local_month(r["created_at"]), (r["end_user"].get("properties") or {}).get("pricing_plan",
                                                                                                 "(not set)"))
                    for r in responses.values() if r["score"] is not None and not r["excluded_from_calculations"])
    by_plan = q("SELECT month, property_value, responses FROM analytics.wootric__nps_by_property_monthly "
                "WHERE property_name = 'pricing_plan'")
    assert {(month, value): count for month, value, count in by_plan} == dict(plans)

    # An appending loader: an older version of a response lands again; a target marks a response and an end
    # user deleted. The staging models keep the latest version and drop the deleted rows, so the monthly
    # counts now lack one response: the reconciliation with nps_summary fails for that month, and only it.
    counted = sorted(r["id"] for r in responses.values()
                     if r["score"] is not None and not r["excluded_from_calculations"])
    kept, gone = counted[0], counted[len(counted) // 2]
    user = next(r["end_user_id"] for r in responses.values() if r["end_user_id"] in end_users)
    for sql in (
            "CREATE TABLE wootric.responses_appended AS SELECT * FROM wootric.responses UNION ALL "
            "SELECT * REPLACE (updated_at - INTERVAL 1 DAY AS updated_at, CASE WHEN score >= 9 THEN 0 ELSE 10 END "
            f"AS score) FROM wootric.responses WHERE id = {kept}",
            "DROP TABLE wootric.responses",
            "ALTER TABLE wootric.responses_appended RENAME TO responses",
            f"UPDATE wootric.responses SET _sdc_deleted_at = '2026-01-01T00:00:00Z' WHERE id = {gone}",
            f"UPDATE wootric.end_users SET _sdc_deleted_at = '2026-01-01T00:00:00Z' WHERE id = {user}"):
        warehouse.query_duckdb(database, sql, write=True)
    assert q(f"SELECT count(*) FROM wootric.responses WHERE id = {kept}") == [[2]]
    proc = warehouse.dbt(["build"], tmp_path, env=warehouse.duckdb_env(database))
    assert proc.returncode != 0
    failed = {name: result for name, result in warehouse.results(tmp_path).items()
              if result["status"] not in ("success", "pass")}
    assert failed == {RECONCILIATION: {"status": "fail", "failures": 1}}, failed
    assert q(f"SELECT score FROM analytics.wootric__responses WHERE response_id = {kept}") == [
        [responses[kept]["score"]]]
    assert q(f"SELECT count(*) FROM analytics.wootric__responses WHERE response_id = {gone}") == [[0]]
    assert q("SELECT count(*) FROM analytics.wootric__responses") == [[len(responses) - 1]]
    assert q(f"SELECT count(*) FROM analytics.wootric__end_users WHERE end_user_id = {user}") == [[0]]
    assert q(f"SELECT DISTINCT is_end_user_deleted FROM analytics.wootric__responses WHERE end_user_id = {user}") \
        == [[True]]


@pytest.mark.slow
def test_models_build_on_postgres_as_both_targets_land_it(fake, tap, tmp_path, postgres):
    start_date = seed_months(fake)
    config = fake.config(start_date=start_date)
    catalog = select(tap.discover(config), {stream: None for stream in
                                            ("end_users", "responses", "declines", "nps_summary")})
    run = tap.run(config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-3000:]
    months = expected_months(latest(run, "responses"), latest(run, "declines"))
    for target, (tool, database_key) in PG_TARGETS.items():
        database = "models_" + target.split("-")[0]
        load_into_postgres(postgres, tool, database_key, database, run.stdout, tmp_path)
        work = tmp_path / database
        work.mkdir()
        proc = warehouse.dbt(["build"], work, target="postgres", env=warehouse.postgres_env(postgres.port, database))
        assert_built(proc, work)
        monthly = postgres.psql("SELECT month, promoters, passives, detractors, declines, nps "
                                "FROM analytics.wootric__nps_monthly ORDER BY month", database)
        assert [row[0] for row in monthly] == sorted(months), target
        for month, *counts, nps in monthly:
            assert tuple(map(int, counts)) == months[month], (target, month)
            promoters, passives, detractors, _ = months[month]
            assert float(nps) == round(100 * (promoters - detractors) / (promoters + passives + detractors), 1)
        days = postgres.psql("SELECT count(*) FROM analytics.stg_wootric__nps_summary", database)
        assert int(days[0][0]) == len(run.records("nps_summary")), target
