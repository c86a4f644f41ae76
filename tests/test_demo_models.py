"""`make demo` (tests/demo_models.py): the demo's data lands in DuckDB with every row of every stream, the
models build, the monthly NPS it prints is wootric__nps_monthly's, and the chart draws those months."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import warehouse

DEMO = Path(__file__).resolve().parent / "demo_models.py"


@pytest.mark.slow
def test_demo_lands_in_duckdb_builds_the_models_and_draws_the_months(tmp_path):
    proc = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "DEMO_OUTPUT": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    landed = re.findall(r"^(end_users|responses|declines|segments) +(\d+) +(\d+)$", out, re.M)
    assert {stream for stream, *_ in landed} == {"end_users", "responses", "declines", "segments"}
    assert all(tap_rows == in_duckdb and int(tap_rows) > 0 for _, tap_rows, in_duckdb in landed), landed
    models, tests = map(int, re.search(r"dbt build: (\d+) models built and (\d+) tests passed", out).groups())
    assert models == 10 and tests >= 20

    database = tmp_path / "demo.duckdb"
    mart = warehouse.query_duckdb(database, "SELECT strftime(month, '%Y-%m'), nps, responses, declines "
                                            "FROM analytics.wootric__nps_monthly ORDER BY month")
    assert len(mart) >= 24  # two years of responses
    shown, total = map(int, re.search(r"wootric__nps_monthly \(America/Los_Angeles months; the last (\d+) of "
                                      r"(\d+)\)", out).groups())
    assert (shown, total) == (12, len(mart))
    printed = re.findall(r"^  (\d{4}-\d{2}) +(-?[\d.]+) +(\d+) +(\d+) +[\d.]+%$", out, re.M)
    assert [(month, float(nps), int(responses), int(declines)) for month, nps, responses, declines in printed] \
        == [tuple(row) for row in mart[-12:]]

    chart = Path(re.search(r"^Chart: (\S+)", out, re.M).group(1))
    assert chart == tmp_path / "nps_by_month.html"
    page = chart.read_text(encoding="utf-8")
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
    bars = re.findall(r'<rect class="bar" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)".*?<title>'
                      r"(\d{4}-\d{2}): (\d+) responses", page)
    assert [(month, int(count)) for _, month, count in bars] == [(month, responses) for month, _, responses, _ in mart]
    # Bar heights are proportional to the responses.
    tallest = max(bars, key=lambda bar: int(bar[2]))
    for height, month, count in bars:
        assert abs(float(height) / float(tallest[0]) - int(count) / int(tallest[2])) < 0.01, month
    points = re.findall(r'<circle class="nps"[^>]*><title>(\d{4}-\d{2}): NPS (-?[\d.]+)', page)
    assert [(month, float(nps)) for month, nps in points] == [(month, nps) for month, nps, *_ in mart]
    assert (tmp_path / "nps_by_month.svg").read_text(encoding="utf-8").startswith("<svg")
    assert f"Database  {database}: " in out
