"""What the tap says on stderr: unknown settings are named, and the log level is honoured."""

from __future__ import annotations

import re

import pytest
from conftest import seed

SDK_SETTINGS = {
    "stream_maps": "meltano-map-transformer",
    "flattening_enabled": "flattening",
    "batch_config": "BATCH",
}


def warnings_of(stderr: str):
    return [line for line in stderr.splitlines() if line.startswith("WARNING")]


def test_unknown_settings_are_named_in_a_warning_without_their_values(fake, tap):
    seed(fake, (3, 3, 3))
    secret_looking = "value-that-must-not-be-printed"
    config = fake.config(stream_maps={"responses": {"email": secret_looking}}, flattening_enabled=True,
                         batch_config={"encoding": {"format": "jsonl"}}, lookback_dayz=5)
    run = tap.run(config)
    assert run.returncode == 0, run.stderr
    warnings = warnings_of(run.stderr)
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
    assert run.returncode == 0 and not warnings_of(run.stderr), run.stderr


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
    request_lines = [line for line in run.stderr.splitlines() if re.match(r"INFO GET /\S+ .*-> \d{3} \(", line)]
    assert len(request_lines) == requests
    assert "http_request_duration" not in run.stderr
    # record_count metrics stay at INFO: one per stream at least.
    assert run.stderr.count('"metric": "record_count"') >= 4


def test_debug_adds_the_request_metric(fake, tap):
    seed(fake, (5, 5, 5))
    run = tap.run(fake.config(), "--log-level", "DEBUG")
    assert run.returncode == 0, run.stderr
    assert "http_request_duration" in run.stderr
