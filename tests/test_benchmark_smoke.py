"""The benchmark (benchmarks/run.py) still runs end to end, on a tiny dataset, original tap included; and its
parallel-read scenarios (--latency, --budgets, --edits' every-age case) at tiny sizes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

pytestmark = pytest.mark.slow  # Both taps end to end, the original from PyPI included.

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_smoke(tmp_path):
    report = tmp_path / "bench.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--datasets", "smoke",
                           "--markdown", str(report)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = report.read_text()
    for heading in ("## Requests and coverage", "## Speed, memory and incremental cost", "## Under a rate budget"):
        assert heading in text
    rows = [line for line in text.splitlines() if line.startswith("| smoke |")]
    assert any("tap-wootric (this)" in row for row in rows)
    assert any("tap-wootric 0.5.3" in row for row in rows)


def table(text: str, heading: str) -> List[Dict[str, str]]:
    """The rows of the first markdown table after a heading, as dicts keyed by the header cells."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row)) for row in body]


def numbers(cell: str) -> List[int]:
    return [int(part) for part in cell.replace(",", "").split(" / ")]


def test_benchmark_parallel_scenarios_tiny(tmp_path):
    """--latency, --budgets and --edits' every-age case run end to end at tiny sizes, and their tables
    hold what the scenarios measure."""
    report = tmp_path / "bench.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--datasets", "none", "--latency",
                           "--budgets", "--edits", "--tiny", "--workers", "3", "--markdown", str(report)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = report.read_text()
    assert "## Requests and coverage" not in text  # --datasets none

    every_age = table(text, "## Edits of every age")
    assert [row["API world"] for row in every_age] == ["A (filter and sort)", "B (sort only)"]
    for row in every_age:
        edits = int(row["E"])
        assert row["edits caught"].startswith(f"{edits:,} ")
        assert int(row["ceil(E/50)"]) <= int(row["requests"])

    latency = table(text, "## Parallel reads under latency")
    assert [int(row["workers"]) for row in latency] == [1, 3]
    day_requests = set()
    for row in latency:
        requests = numbers(row["requests (end_users / responses / declines / nps_summary / email_stats)"])
        parts = numbers(row["parts"])
        assert all(requests), requests
        day_requests.add(tuple(requests[3:]))
        assert parts[3:] == [int(row["workers"])] * 2  # a day stream's days go to every worker
        assert float(row["parallel bound s"]) < float(row["sequential bound s"])
    assert len(day_requests) == 1  # a request a day, whatever the workers
    backfill = table(text, "### The day streams' backfill alone")
    assert [int(row["workers"]) for row in backfill] == [1, 3]
    assert {tuple(numbers(row["requests (nps_summary / email_stats)"])) for row in backfill} == day_requests
    assert float(backfill[0]["wall / wall with workers 1"]) == 1.0

    budgets = table(text, "## Parallel reads under a rate budget")
    assert [(row["budget"], int(row["workers"])) for row in budgets] == [
        ("per endpoint", 1), ("per endpoint", 3), ("shared", 1), ("shared", 3)]
    for row in budgets:
        assert all(n >= 3 for n in numbers(row["requests (end_users / responses / declines)"]))  # 150 rows each
        assert float(row["minimum s"]) > 0
    assert all(row["429s"] == "0" for row in budgets if row["budget"] == "per endpoint")
