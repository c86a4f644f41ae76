"""What the tap says on stderr: unknown settings are named, and the log level is honoured."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from helpers import metrics, record_counts, seed

SDK_SETTINGS = {
    "stream_maps": "meltano-map-transformer",
    "flattening_enabled": "flattening",
    "batch_config": "BATCH",
}


def test_unknown_settings_are_named_in_a_warning_without_their_values(fake, tap):
    seed(fake, (3, 3, 3))
    secret_looking = "value-that-must-not-be-printed"
    config = fake.config(stream_maps={"responses": {"email": secret_looking}}, flattening_enabled=True,
                         batch_config={"encoding": {"format": "jsonl"}}, lookback_dayz=5)
    run = tap.run(config)
    assert run.returncode == 0, run.stderr
    warnings = run.log()
    for key, advice in SDK_SETTINGS.items():
        (line,) = [w for w in warnings if f"'{key}'" in w]
        assert "not a tap-wootric setting" in line and advice in line, line
    (typo,) = [w for w in warnings if "'lookback_dayz'" in w]
    assert "ignores it" in typo
    assert secret_looking not in run.stderr and "jsonl" not in run.stderr
    assert len(run.records()) == 9  # still syncs


def test_known_settings_give_no_warning(fake, tap):
    seed(fake, (2, 2, 2))
    run = tap.run(fake.config(region="us", lookback_days=3, request_timeout=30, user_agent="x/1"))
    assert run.returncode == 0 and not run.log(), run.stderr


@pytest.mark.parametrize("how", [("--log-level", "WARNING"), ("--log-level", "ERROR"), "LOG_LEVEL=ERROR"])
def test_log_level_above_info_silences_info_and_metric_lines(fake, tap, how):
    seed(fake, (60, 60, 60))
    if isinstance(how, tuple):
        run = tap.run(fake.config(), *how)
    else:
        name, value = how.split("=")
        run = tap.run(fake.config(), env={name: value})
    assert run.returncode == 0, run.stderr
    assert not [line for line in run.stderr.splitlines() if line.startswith(("INFO", "DEBUG"))], run.stderr[:2000]
    assert len(run.records()) == 180


def test_at_info_one_request_gives_one_line(fake, tap):
    seed(fake, (120, 30, 30))
    run = tap.run(fake.config())
    assert run.returncode == 0, run.stderr
    requests = len([r for r in fake.requests if r["path"] != "/oauth/token"])
    request_lines = [re.match(r"INFO (\w+): GET /(\S+) .*-> \d{3} \(", line) for line in run.stderr.splitlines()]
    request_lines = [line for line in request_lines if line]
    assert len(request_lines) == requests
    # Each line starts with the stream that sent it (these streams read only their own path).
    assert all(line[1] == line[2] for line in request_lines)
    assert metrics(run.stderr, "http_request_duration") == []
    # record_count metrics stay at INFO: one per stream at least, and they count what was emitted.
    assert len(metrics(run.stderr, "record_count")) >= 4
    emitted = Counter(m["stream"] for m in run.messages if m["type"] == "RECORD")
    assert {stream: count for stream, count in record_counts(run.stderr).items() if count} == emitted


def test_debug_adds_the_request_metric(fake, tap):
    seed(fake, (5, 5, 5))
    run = tap.run(fake.config(), "--log-level", "DEBUG")
    assert run.returncode == 0, run.stderr
    # One timer per API request, tagged with its endpoint and status.
    timed = metrics(run.stderr, "http_request_duration")
    api = [r for r in fake.requests if r["path"] != "/oauth/token"]
    assert len(timed) == len(api) > 0
    assert sorted(p["tags"]["endpoint"] for p in timed) == sorted(r["path"].split("/v1/", 1)[1] for r in api)
    assert {(p["tags"]["http_status_code"], p["tags"]["status"]) for p in timed} == {(200, "succeeded")}
