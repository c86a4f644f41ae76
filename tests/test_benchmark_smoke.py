"""The benchmark (benchmarks/run.py) still runs end to end, on a tiny dataset, original tap included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
