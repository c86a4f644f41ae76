"""Shared fixtures: a fake Wootric API on 127.0.0.1 and a runner for the real tap CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_wootric import FakeWootric  # noqa: E402

TAP = shutil.which("tap-wootric", path=str(Path(sys.executable).parent)) or shutil.which("tap-wootric")
NOW = datetime.now(timezone.utc)
YEARS_AGO = NOW - timedelta(days=3 * 365)


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: List[Dict[str, Any]] = field(default_factory=list)

    def records(self, stream: Optional[str] = None) -> List[Dict[str, Any]]:
        return [m["record"] for m in self.messages
                if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)]

    def record_messages(self, stream: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    def schemas(self) -> Dict[str, Dict[str, Any]]:
        return {m["stream"]: m for m in self.messages if m["type"] == "SCHEMA"}

    def states(self) -> List[Dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> Dict[str, Any]:
        return self.states()[-1]

    def ids(self, stream: str) -> List[int]:
        return [r["id"] for r in self.records(stream)]


class TapRunner:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.count = 0

    def write(self, name: str, value: Any) -> Path:
        path = self.tmp_path / name
        path.write_text(json.dumps(value), encoding="utf-8")
        return path

    def run(self, config: Dict[str, Any], *args: str, state: Optional[Dict[str, Any]] = None,
            catalog: Optional[Dict[str, Any]] = None, timeout: float = 120) -> TapRun:
        self.count += 1
        argv = [TAP, "--config", str(self.write(f"config{self.count}.json", config)), *args]
        if state is not None:
            argv += ["--state", str(self.write(f"state{self.count}.json", state))]
        if catalog is not None:
            argv += ["--catalog", str(self.write(f"catalog{self.count}.json", catalog))]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        run = TapRun(proc.returncode, proc.stdout, proc.stderr)
        if not args or "--discover" not in args:
            run.messages = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        return run

    def discover(self, config: Dict[str, Any]) -> Dict[str, Any]:
        result = self.run(config, "--discover")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def tap(tmp_path):
    assert TAP, "the tap-wootric command is not installed in this environment"
    return TapRunner(tmp_path)


@pytest.fixture
def fake():
    server = FakeWootric(seed=11).start()
    yield server
    server.stop()


def select(catalog: Dict[str, Any], streams: Dict[str, Optional[List[str]]]) -> Dict[str, Any]:
    """Select the given streams; a list deselects every other non-automatic field of that stream."""
    for entry in catalog["streams"]:
        chosen = entry["tap_stream_id"] in streams
        fields = streams.get(entry["tap_stream_id"])
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = chosen
            elif fields is not None and len(item["breadcrumb"]) == 2:
                item["metadata"]["selected"] = item["breadcrumb"][1] in fields
    return catalog
