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
from postgres import Postgres  # noqa: E402

STREAMS = ("end_users", "responses", "declines")
# The tap's own retry waits (backoff, the 60 s default 429 wait) shrink 100-fold in tests.
TEST_TIME_SCALE = "0.01"
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


def parse_messages(stdout: str) -> List[Dict[str, Any]]:
    """Singer messages of a tap's stdout; a killed tap may leave a cut-off last line, which is dropped."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    messages = []
    for number, line in enumerate(lines, start=1):
        try:
            messages.append(json.loads(line))
        except ValueError:
            if number != len(lines) or stdout.endswith("\n"):
                raise
    return messages


def seed(fake: FakeWootric, counts=(120, 300, 80)) -> None:
    for stream, count in zip(STREAMS, counts):
        fake.generate(stream, count, YEARS_AGO, NOW - timedelta(hours=2))


class TapRunner:
    """Runs the installed tap-wootric command and keeps everything it printed, for the secrets check."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.count = 0
        self.outputs: List[str] = []

    def argv(self, config: Dict[str, Any], *args: str, state: Optional[Dict[str, Any]] = None,
             catalog: Optional[Dict[str, Any]] = None) -> List[str]:
        self.count += 1
        argv = [TAP, "--config", str(self.write(f"config{self.count}.json", config)), *args]
        if state is not None:
            argv += ["--state", str(self.write(f"state{self.count}.json", state))]
        if catalog is not None:
            argv += ["--catalog", str(self.write(f"catalog{self.count}.json", catalog))]
        return argv

    @staticmethod
    def env(**extra: str) -> Dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", "TAP_WOOTRIC_TIME_SCALE": TEST_TIME_SCALE, **extra}

    def start(self, config: Dict[str, Any], *args: str, state: Optional[Dict[str, Any]] = None,
              catalog: Optional[Dict[str, Any]] = None) -> subprocess.Popen:
        """Start the tap without waiting; pair with finish()."""
        return subprocess.Popen(self.argv(config, *args, state=state, catalog=catalog), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env())

    def finish(self, proc: subprocess.Popen, timeout: float = 120) -> TapRun:
        stdout, stderr = proc.communicate(timeout=timeout)
        self.outputs += [stdout, stderr]
        return TapRun(proc.returncode, stdout, stderr, parse_messages(stdout))

    def write(self, name: str, value: Any) -> Path:
        path = self.tmp_path / name
        path.write_text(json.dumps(value), encoding="utf-8")
        return path

    def run(self, config: Dict[str, Any], *args: str, state: Optional[Dict[str, Any]] = None,
            catalog: Optional[Dict[str, Any]] = None, timeout: float = 120,
            env: Optional[Dict[str, str]] = None) -> TapRun:
        """Run the tap to the end; `env` adds or overrides environment variables."""
        argv = self.argv(config, *args, state=state, catalog=catalog)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env(**(env or {})))
        self.outputs += [proc.stdout, proc.stderr]
        run = TapRun(proc.returncode, proc.stdout, proc.stderr)
        if not args or "--discover" not in args:
            run.messages = parse_messages(proc.stdout)
        return run

    def discover(self, config: Dict[str, Any]) -> Dict[str, Any]:
        result = self.run(config, "--discover")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def secrets_of(fake: FakeWootric) -> List[str]:
    """Everything that must never be printed: the credentials and every token the fake handed out."""
    return [value for value in (fake.client_secret, fake.password, *fake.tokens_issued,
                                *fake.refresh_tokens_issued) if value]


def leaked_secrets(outputs: List[str], secrets: List[str]) -> List[str]:
    return [secret for secret in secrets if any(secret in text for text in outputs)]


@pytest.fixture
def tap(tmp_path, request):
    """The tap CLI; after the test, everything it printed is searched for the fake's secrets."""
    assert TAP, "the tap-wootric command is not installed in this environment"
    runner = TapRunner(tmp_path)
    yield runner
    if "fake" in request.fixturenames:
        fake = request.getfixturevalue("fake")
        leaked = leaked_secrets(runner.outputs, secrets_of(fake))
        assert not leaked, f"{len(leaked)} secret(s) appeared in the tap's output"


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


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL cluster for the whole session; each test makes databases of its own."""
    server = Postgres.start()
    yield server
    server.stop()
