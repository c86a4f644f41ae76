"""The example Meltano project's path to the models: tap-wootric into DuckDB or PostgreSQL, then dbt_wootric's
models through its dbt utilities (`meltano run tap-wootric target-duckdb dbt-duckdb:build`, and the same with
target-postgres and dbt-postgres), against the fake API."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import tools
import warehouse
from conftest import seed

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "meltano" / "meltano.yml"
ZONE = ZoneInfo("America/Los_Angeles")
# The example's pip_url of each plugin, and the tool of tests/tools.py already installed the same way.
INSTALLED = {"target-duckdb==0.8.0 duckdb==1.2.2": "target-duckdb",
             "dbt-core==1.11.16 dbt-duckdb==1.11.1 duckdb==1.2.2": "dbt-duckdb",
             "dbt-core==1.11.16 dbt-postgres==1.11.0": "dbt-postgres",
             "meltanolabs-target-postgres==0.8.1": "target-postgres"}


@pytest.fixture
def project(tmp_path, fake):
    """The example project, installing tap-wootric from this checkout and running the other plugins from the
    tools' virtualenvs (the same pins), pointed at the fake."""
    text = EXAMPLE.read_text().replace("pip_url: -e ../..", f"pip_url: -e {ROOT}")
    text = text.replace("../../dbt_wootric", str(warehouse.PROJECT))
    for requirement, tool in INSTALLED.items():
        assert requirement == tools.TOOLS[tool][0]
        text, count = re.subn(rf"pip_url: {re.escape(requirement)}\n(\s+)executable: \S+",
                              rf"executable: {tools.ensure(tool)}", text)
        assert count == 1, requirement
    (tmp_path / "meltano.yml").write_text(text)
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
           "TAP_WOOTRIC_CLIENT_ID": fake.client_id, "TAP_WOOTRIC_CLIENT_SECRET": fake.client_secret,
           "TAP_WOOTRIC_API_URL": fake.api_url, "TAP_WOOTRIC_OAUTH_URL": fake.oauth_url,
           "TAP_WOOTRIC_START_DATE": "2015-01-01T00:00:00Z", "TAP_WOOTRIC_TIME_SCALE": "0.01",
           # dbt's own files go to the test's directory, not under dbt_wootric/.
           "DBT_TARGET_PATH": str(tmp_path / "dbt-target"), "DBT_LOG_PATH": str(tmp_path / "dbt-logs")}
    env.pop("VIRTUAL_ENV", None)
    meltano = str(tools.ensure("meltano"))

    def run(*args, extra_env=None):
        proc = subprocess.run([meltano, *args], cwd=tmp_path, env={**env, **(extra_env or {})}, capture_output=True,
                              text=True, timeout=600)
        (tmp_path / "meltano-stderr.log").write_text(proc.stderr)
        assert proc.returncode == 0, f"meltano {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        return proc

    yield tmp_path, run
    shutil.rmtree(tmp_path / ".meltano", ignore_errors=True)


def expected_months(fake):
    """{month: responses NPS counts} in the account's months, from the fake's own records."""
    return dict(Counter(r["created_at"].astimezone(ZONE).strftime("%Y-%m-01") for r in fake.records("responses")
                        if r["score"] is not None and not r["excluded_from_calculations"]))


@pytest.mark.slow
def test_meltano_runs_the_tap_into_duckdb_and_postgres_then_the_models(fake, tap, project, postgres):
    directory, meltano = project
    seed(fake, (30, 150, 20))
    months = expected_months(fake)
    assert len(months) > 24  # three years of responses

    meltano("run", "tap-wootric", "target-duckdb", "dbt-duckdb:build")
    database = directory / "warehouse.duckdb"
    rows = warehouse.query_duckdb(database, "SELECT strftime(month, '%Y-%m-01'), responses "
                                            "FROM analytics.wootric__nps_monthly WHERE responses > 0")
    assert dict(rows) == months
    assert warehouse.query_duckdb(database, "SELECT count(*) FROM analytics.wootric__end_users") == [[30]]
    built = {name for name, in warehouse.query_duckdb(
        database, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'")}
    assert {"wootric__responses", "wootric__nps_daily", "wootric__nps_by_property_monthly"} <= built

    postgres.psql("CREATE DATABASE meltano_models")
    settings = {"PORT": str(postgres.port), "PASSWORD": "unused", "DATABASE": "meltano_models"}
    meltano("run", "tap-wootric", "target-postgres", "dbt-postgres:build",
            extra_env={**{f"TARGET_POSTGRES_{key}": value for key, value in settings.items()},
                       **{f"DBT_POSTGRES_{key}": value for key, value in settings.items()}})
    rows = postgres.psql("SELECT to_char(month, 'YYYY-MM-01'), responses FROM analytics.wootric__nps_monthly "
                         "WHERE responses > 0",
                         "meltano_models")
    assert {month: int(count) for month, count in rows} == months
