"""`make demo` (tests/demo.py): its summary covers every stream it syncs, says which months it shows,
and nothing of the tap's own log reaches the terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # The whole demo.

DEMO = Path(__file__).resolve().parent / "demo.py"


def test_demo_summarises_every_stream_and_keeps_the_log_off_the_terminal(tmp_path):
    proc = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DEMO_OUTPUT": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert not proc.stderr.strip(), proc.stderr  # discovery's "INFO Authenticated ..." went to the log file
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()
            if re.match(r"^(end_users|responses|declines|segments) +\d+", line)}
    assert set(rows) == {"end_users", "responses", "declines", "segments"}
    assert all(int(records) > 0 for records, *_ in rows.values())
    shown, total = map(int, re.search(r"NPS by month \(responses, UTC; the last (\d+) of (\d+) months\)",
                                      proc.stdout).groups())
    assert shown == 12 and total > shown
    months = re.findall(r"^  (\d{4}-\d{2})  NPS .*?(  partial: the month is not over)?$", proc.stdout, re.M)
    assert len(months) == shown
    # Only the month in progress is marked partial; the "ideal" column is explained.
    this_month = datetime.now(timezone.utc).strftime("%Y-%m")
    assert [month for month, partial in months if partial] == [m for m, _ in months if m == this_month]
    assert "(ideal: the fewest requests that can return that many records, at 50 a page)" in proc.stdout
    assert "Authenticated" in (tmp_path / "tap.log").read_text()
