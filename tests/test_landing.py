"""Every stream, CXI included, through both PostgreSQL targets onto the real PostgreSQL the tests start:
every stream lands, every field as a typed column, and the README's landing table and NPS query are true."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Dict
from zoneinfo import ZoneInfo

import pytest
from fake import FakeWootric
from helpers import (
    ALL_STREAMS,
    DAY_STREAMS,
    NOW,
    TapRun,
    TapRunner,
    kind_of,
    leaked_secrets,
    load_into_postgres,
    nps_by_month,
    parse_messages,
    readme_block,
    readme_table_row,
    secrets_of,
    seed,
    select,
)

pytestmark = pytest.mark.slow  # Both PostgreSQL targets, every stream.

# The README's names for the two targets, and how each is configured.
TARGETS = {
    "meltanolabs-target-postgres": ("target-postgres", "database"),
    "pipelinewise-target-postgres": ("pipelinewise-target-postgres", "dbname"),
}


# The column types each target gives each kind of field: what the README's landing table says.
EXPECTED = {
    "meltanolabs-target-postgres": {
        "object": "jsonb", "boolean": "boolean", "integer": "bigint", "number": "numeric",
        "string": "text", "date-time": "timestamp without time zone", "date": "date", "array of strings": "text[]",
        "array of objects": "jsonb[]", "array of integers": "bigint[]",
    },
    "pipelinewise-target-postgres": {
        "object": "jsonb", "boolean": "boolean", "integer": "bigint", "number": "double precision",
        "string": "character varying", "date-time": "timestamp without time zone", "date": "character varying",
        "array of strings": "jsonb",
        "array of objects": "jsonb", "array of integers": "jsonb",
    },
}


@pytest.fixture(scope="module")
def landed(tmp_path_factory, postgres):
    """Both targets loaded once with the same tap output: {target: (column types, row counts, tap output)}."""
    tmp_path = tmp_path_factory.mktemp("landing")
    with FakeWootric(seed=15) as fake:
        seed(fake, (60, 300, 40))
        # Responses an hour or two into a month (UTC): in America/Los_Angeles they belong to the month before,
        # so a query that reads the month in the session's time zone gets these wrong.
        month = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        for _ in range(3):
            month = (month - timedelta(days=1)).replace(day=1)
            fake.generate("responses", 4, month + timedelta(hours=1), month + timedelta(hours=2))
        fake.generate_segments(5)
        fake.generate_cxi(responses=60, imports=2, projects=2, tags=2)
        tap = TapRunner(tmp_path)
        config = fake.config()
        catalog = select(tap.discover(config), {name: None for name in ALL_STREAMS})
        core = tap.run(config, catalog=select(tap.discover(config), {name: None for name in ALL_STREAMS
                                                                      if name not in DAY_STREAMS}))
        assert core.returncode == 0, core.stderr[-3000:]
        first_day = (datetime.now(ZoneInfo("America/Los_Angeles")).date().replace(day=1) - timedelta(days=1)).replace(
            day=1)
        days = tap.run(fake.config(start_date=fake.day_bounds(first_day)[0].strftime("%Y-%m-%dT%H:%M:%SZ")),
                       catalog=select(tap.discover(config), {name: None for name in DAY_STREAMS}))
        assert days.returncode == 0, days.stderr[-3000:]
        run = TapRun(0, core.stdout + days.stdout, core.stderr + days.stderr)
        run.messages = parse_messages(run.stdout)
    assert not leaked_secrets(tap.outputs, secrets_of(fake))
    responses = fake.records("responses")
    results = {}
    for target, (tool, database_key) in TARGETS.items():
        database = target.replace("-", "_")
        load_into_postgres(postgres, tool, database_key, database, run.stdout, tmp_path)
        types = {}
        for table, column, data_type, udt in postgres.psql(
                "SELECT table_name, column_name, data_type, udt_name FROM information_schema.columns "
                "WHERE table_schema = 'wootric'", database):
            element = {"_int8": "bigint", "_text": "text", "_jsonb": "jsonb"}.get(udt, udt)
            types[(table, column)] = element + "[]" if data_type == "ARRAY" else data_type
        counts = {stream: int(postgres.psql(f"SELECT count(*) FROM wootric.{stream}", database)[0][0])
                  for stream in {table for table, _ in types}}
        results[target] = (types, counts, database)
    return results, run, catalog, responses, first_day.strftime("%Y-%m")


def schemas_of(catalog) -> Dict[str, Dict[str, Any]]:
    return {entry["tap_stream_id"]: entry["schema"] for entry in catalog["streams"]}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_every_stream_lands_with_a_typed_column_per_field(landed, target, stream):
    results, run, catalog, *_ = landed
    types, counts, _ = results[target]
    keys = {tuple(record[key] for key in run.schemas()[stream]["key_properties"]) for record in run.records(stream)}
    assert keys, f"the tap emitted no {stream}"
    assert counts.get(stream) == len(keys), (target, stream)
    expected = EXPECTED[target]
    wrong = {}
    for name, schema in schemas_of(catalog)[stream]["properties"].items():
        want = expected[kind_of(schema)]
        got = types.get((stream, name))
        if got != want:
            wrong[name] = (kind_of(schema), got, want)
    assert not wrong, f"{target} {stream}: field: (kind, landed as, expected) {wrong}"


# The README landing table's columns after the target's name, and the field each is checked on.
LANDING_COLUMNS = (("responses", "end_user"), ("responses", "tags"), ("responses", "notes"),
                   ("responses", "created_at"), ("nps_summary", "date"), ("responses", "score"),
                   ("responses", "excluded_from_calculations"), ("responses", "ip_address"))


@pytest.mark.parametrize("target", TARGETS)
def test_readme_landing_table_says_what_lands(landed, target):
    results, *_ = landed
    types, _, _ = results[target]
    cells = readme_table_row(target)[1:]
    assert len(cells) == len(LANDING_COLUMNS)
    for cell, field in zip(cells, LANDING_COLUMNS):
        assert cell.split(" (")[0] == f"`{types[field]}`", (field, cell)


def test_readme_reconciliation_with_nps_summary_runs_on_both_targets(landed, postgres):
    """The recipes page's reconciliation query runs on what each target creates (nps_summary.date is a date in one,
    a varchar in the other), and the two NPS columns agree for every month nps_summary covers whole."""
    results, _, _, _, first_month = landed
    query = readme_block("Reconcile with nps_summary", "sql", "docs/recipes.md")
    for target, (_, _, database) in results.items():
        rows = [row for row in postgres.psql(query, database) if row[0] >= first_month]
        assert len(rows) >= 2, (target, rows)
        for month, from_responses, from_summary in rows:
            assert from_responses == from_summary and from_responses != "", (target, month)


def readme_nps_query() -> str:
    return readme_block("## Load into PostgreSQL", "sql", "docs/recipes.md")


@pytest.mark.parametrize("target", TARGETS)
def test_readme_nps_query_gives_utc_months_in_any_session_time_zone(landed, postgres, target):
    results, _, _, responses, _ = landed
    _, _, database = results[target]
    truth = nps_by_month(responses, digits=1)  # as the README's query rounds
    query = readme_nps_query()
    for zone in ("UTC", "America/Los_Angeles", "Asia/Tokyo"):
        rows = postgres.psql(query, database, timezone=zone)
        assert {month: float(nps) for month, nps in rows} == truth, zone
    # The test can fail: reading the month in the session's zone (the old query) gets other months there.
    old = query.replace("to_char(created_at, 'YYYY-MM')", "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')")
    assert old != query
    rows = postgres.psql(old, database, timezone="America/Los_Angeles")
    assert {month: float(nps) for month, nps in rows} != truth

