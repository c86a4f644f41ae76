"""Bad input ends fast, with one line that names the problem: no traceback, no record."""

from __future__ import annotations

import json
import socket
import time

import pytest
from helpers import seed, select


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_fails_clearly(run, *expected: str, elapsed: float = 0.0) -> str:
    assert run.returncode == 1, run.stderr
    assert not run.stdout.strip() or all(json.loads(line)["type"] != "RECORD" for line in run.stdout.splitlines()
                                         if line.strip())
    assert "Traceback" not in run.stderr
    critical = [line for line in run.stderr.splitlines() if line.startswith("CRITICAL")]
    assert len(critical) == 1, run.stderr
    for text in expected:
        assert text in critical[0], critical[0]
    assert elapsed < 10
    return critical[0]


def timed(tap, config, *args, **kwargs):
    started = time.monotonic()
    run = tap.run(config, *args, **kwargs)
    return run, time.monotonic() - started


def without(config, key):
    return {name: value for name, value in config.items() if name != key}


CONFIG_CASES = {
    "missing key": (lambda c: without(c, "client_secret"), ["client_secret"]),
    "empty secret": (lambda c: {**c, "client_secret": ""}, ["client_secret"]),
    "no credentials": (lambda c: without(without(c, "client_id"), "client_secret"), ["credentials"]),
    "missing start_date": (lambda c: without(c, "start_date"), ["start_date"]),
    "start_date not a date": (lambda c: {**c, "start_date": "last tuesday"}, ["start_date", "not a date"]),
    "unknown region": (lambda c: {**without(without(c, "api_url"), "oauth_url"), "region": "mars"},
                       ["region", "mars"]),
    "plain http to a remote host": (lambda c: {**c, "api_url": "http://api.example.com/v1"},
                                    ["api_url", "plain http"]),
    "timeout not a number": (lambda c: {**c, "request_timeout": "soon"}, ["request_timeout"]),
    "lookback not finite": (lambda c: {**c, "lookback_days": "nan"}, ["lookback_days", "finite"]),
    "timeout infinite": (lambda c: {**c, "request_timeout": "inf"}, ["request_timeout", "finite"]),
    # 0 is accepted (the default), so the message must not claim a minimum of 0.001.
    "timeout negative": (lambda c: {**c, "request_timeout": -5}, ["request_timeout", "above 0", "0 means the default"]),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
@pytest.mark.parametrize("mode", ["sync", "discover"])
def test_bad_config_names_the_problem(fake, tap, case, mode):
    change, expected = CONFIG_CASES[case]
    args = ("--discover",) if mode == "discover" else ()
    run, elapsed = timed(tap, change(fake.config()), *args)
    assert_fails_clearly(run, "config", *expected, elapsed=elapsed)
    assert fake.requests == [], "nothing is sent with a bad config"


def test_config_file_that_is_not_json(fake, tap, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{client_id: nope", encoding="utf-8")
    run = tap.run({}, "--config", str(path))  # argparse keeps the last --config
    assert_fails_clearly(run, "config file", "not valid JSON")


def test_wrong_credentials(fake, tap):
    run, elapsed = timed(tap, fake.config(client_secret="not-the-secret"))
    line = assert_fails_clearly(run, "refused the credentials", "HTTP 401", elapsed=elapsed)
    assert "Client authentication failed" in line  # the OAuth server's own words


def test_wrong_password(fake, tap):
    config = without(without(fake.config(), "client_id"), "client_secret")
    run, elapsed = timed(tap, {**config, "username": fake.username, "password": "wrong-password"})
    assert_fails_clearly(run, "refused the credentials", "password grant", elapsed=elapsed)


def test_host_that_cannot_be_resolved(fake, tap):
    config = fake.config(api_url="https://no-such-host.invalid/v1", oauth_url="https://no-such-host.invalid/oauth/token")
    run, elapsed = timed(tap, config)
    assert_fails_clearly(run, "no-such-host.invalid", "cannot be resolved", elapsed=elapsed)


def test_port_where_nothing_listens(fake, tap):
    url = f"http://127.0.0.1:{free_port()}"
    run, elapsed = timed(tap, fake.config(api_url=url + "/v1", oauth_url=url + "/oauth/token"))
    assert_fails_clearly(run, "connection refused", elapsed=elapsed)


@pytest.mark.parametrize("content, expected", [
    ("{not json", ["state file", "not valid JSON"]),
    ('["a list"]', ["state file", "state.json must hold a JSON object"]),
    ('{"bookmarks": {"responses": "2024-01-01"}}', ["state.json: the bookmark of stream 'responses'",
                                                    "must be an object"]),
    ('{"bookmarks": {"end_users": {"updated_at": "yesterday-ish"}}}', ["updated_at", "not a timestamp"]),
    ('{"bookmarks": {"segments": {"version": "v2"}}}', ["version of stream 'segments'", "integer"]),
])
def test_bad_state_file(fake, tap, tmp_path, content, expected):
    path = tmp_path / "state.json"
    path.write_text(content, encoding="utf-8")
    run, elapsed = timed(tap, fake.config(), "--state", str(path))
    assert_fails_clearly(run, *expected, elapsed=elapsed)


def test_missing_state_file(fake, tap, tmp_path):
    run = tap.run(fake.config(), "--state", str(tmp_path / "nowhere.json"))
    assert_fails_clearly(run, "state file not found")


@pytest.mark.parametrize("content, expected", [
    ("not json at all", ["catalog file", "not valid JSON"]),
    ('{"streams": {}}', ["catalog file", "'streams' list"]),
    ('{"streams": [{"tap_stream_id": "surveys", "stream": "surveys", "schema": {}, "metadata": []}]}',
     ["unknown stream 'surveys'"]),
    # Wrongly shaped entries are named by position, stream and field, not by Python internals.
    ('{"streams": [null]}', ["catalog.json: streams[0] must be an object, not null"]),
    ('{"streams": [{"tap_stream_id": "responses", "schema": {}, "metadata": [null]}]}',
     ["streams[0] ('responses'): metadata[0] must be an object"]),
    ('{"streams": [{"tap_stream_id": "responses", "schema": {}, "metadata": [{"breadcrumb": [], "metadata": 3}]}]}',
     ["streams[0] ('responses'): metadata[0]: field 'metadata' must be an object, not a number"]),
    ('{"streams": [{"tap_stream_id": "declines", "schema": null}]}',
     ["streams[0] ('declines'): field 'schema' must be an object"]),
    ('{"streams": [{"stream": "declines", "schema": {}}]}', ["streams[0] ('declines'): field 'tap_stream_id'"]),
])
def test_bad_catalog_file(fake, tap, tmp_path, content, expected):
    path = tmp_path / "catalog.json"
    path.write_text(content, encoding="utf-8")
    run, elapsed = timed(tap, fake.config(), "--catalog", str(path))
    line = assert_fails_clearly(run, *expected, elapsed=elapsed)
    assert "object has no attribute" not in line and "NoneType" not in line


def test_format_without_about_is_a_usage_error(fake, tap):
    run = tap.run(fake.config(), "--format", "markdown")
    # The same as the other command-line errors (argparse): exit 2, a usage line, nothing on stdout.
    assert run.returncode == 2 and not run.stdout
    assert "--format applies only to --about" in run.stderr and "usage:" in run.stderr


def test_404_on_a_list_endpoint(fake, tap):
    seed(fake, (10, 10, 10))
    fake.fail(1, 404)
    # One stream: with several read at once, the first request may be any stream's, and the others may
    # have written records before the failure ends the run.
    catalog = select(tap.discover(fake.config()), {"end_users": None})
    run, elapsed = timed(tap, fake.config(), catalog=catalog)
    assert_fails_clearly(run, "GET /end_users page=1", "HTTP 404", "injected failure: 404 Not Found", elapsed=elapsed)


def test_400_with_an_error_list_carries_the_apis_message(fake, tap):
    seed(fake, (10, 10, 10))
    fake.fail(1, 400, {"type": "error_list", "errors": [
        {"status": "bad_request", "message": "created[gte] is invalid", "field": "created[gte]"}]})
    catalog = select(tap.discover(fake.config()), {"declines": None})
    run, elapsed = timed(tap, fake.config(), catalog=catalog)
    assert_fails_clearly(run, "GET /declines", "HTTP 400", "created[gte] is invalid", elapsed=elapsed)


def test_debug_shows_the_traceback_for_the_same_failure(fake, tap):
    run = tap.run(fake.config(client_secret="not-the-secret"), "--debug")
    assert run.returncode == 1
    assert "Traceback" in run.stderr and "AuthError" in run.stderr
    assert "not-the-secret" not in run.stderr


def test_old_flat_state_of_tap_wootric_0_5_is_migrated(fake, tap):
    seed(fake, (30, 30, 30))
    run = tap.run(fake.config(), state={"end_users": "2099-01-01T00:00:00Z", "responses": "2099-01-01T00:00:00Z",
                                        "declines": "2099-01-01T00:00:00Z"})
    assert run.returncode == 0, run.stderr
    # The old bookmarks were honoured (read as the streams' bookmarks): they lie in the future, so nothing is new;
    # without the migration every record would come out.
    assert run.records() == []
    # The state written is in today's shape: no flat bookmarks left.
    for stream in ("end_users", "responses", "declines"):
        assert run.final_state["bookmarks"][stream]["updated_at"] and stream not in run.final_state, stream


def test_proxy_settings_in_the_environment_are_honoured(fake, tap):
    """HTTP(S)_PROXY and NO_PROXY apply as they do for requests itself: the tap reads them once per host
    rather than on every request, and must still read them."""
    seed(fake, (5, 5, 5))
    proxy_address = f"127.0.0.1:{free_port()}"
    dead_proxy = f"http://proxy-user:proxy-secret@{proxy_address}"
    proxied = {name: dead_proxy for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")}
    no_bypass = {"no_proxy": "", "NO_PROXY": ""}
    through_proxy = tap.run(fake.config(), env={**proxied, **no_bypass})
    assert_fails_clearly(through_proxy, f"through the proxy {proxy_address}")
    assert "proxy-secret" not in through_proxy.stderr
    assert fake.api_request_count == 0
    bypassed = tap.run(fake.config(), env={**proxied, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"})
    assert bypassed.returncode == 0, bypassed.stderr[-2000:]
    assert len(bypassed.ids("responses")) == 5
