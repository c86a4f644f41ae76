"""What a newcomer meets first: the fake API run on its own, the demo's summary, and the supported Pythons."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from helpers import select

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fake_wootric.py"
CXI_STREAMS = ("cxi_responses", "cxi_tags", "cxi_projects", "cxi_imports")


def test_the_fakes_printed_config_serves_every_stream_including_cxi(tap):
    """`python tests/fake_wootric.py` prints a config with which CXI streams read the fake, not the real host."""
    server = subprocess.Popen([sys.executable, str(FAKE), "--port", "0", "--end-users", "5", "--responses", "5",
                               "--declines", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = json.loads(server.stdout.readline())
        assert printed["cxi_api_url"].startswith("http://127.0.0.1:"), printed
        config = {**printed, "start_date": "2015-01-01T00:00:00Z"}
        catalog = select(tap.discover(config), {name: None for name in ("responses", *CXI_STREAMS)})
        started = time.monotonic()
        run = tap.run(config, catalog=catalog, timeout=60)
        assert run.returncode == 0, run.stderr[-3000:]
        assert time.monotonic() - started < 20
        assert "cxi-api.wootric.com" not in run.stderr
        assert len(run.records("responses")) == 5
        # The fake's CXI API answered: each CXI stream sent its SCHEMA and closed its (empty) table version.
        assert set(CXI_STREAMS) <= set(run.schemas())
        activated = {m["stream"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"}
        assert set(CXI_STREAMS) <= activated
    finally:
        server.terminate()
        server.wait(timeout=10)
