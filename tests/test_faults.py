"""Faults the tap rides through: it exits 0 and emits every record, whatever the API throws at it."""

from __future__ import annotations

import time

import pytest
from helpers import STREAMS, seed, select

WORKERS = 4  # the default


def records_match_source(run, fake, streams=STREAMS):
    for stream in streams:
        ids = run.ids(stream)
        assert set(ids) == {r["id"] for r in fake.records(stream)}, stream


def api_requests(fake):
    return [r for r in fake.requests if r["path"].startswith("/v1/")]


def retry_warnings(run):
    return run.log("WARNING", containing="; retry ")


def answered(fake, status):
    """The first API answer with `status`, and the requests to the same endpoint after it. Other streams'
    workers go on meanwhile, so only the same path shows the wait."""
    requests = api_requests(fake)
    index = next(i for i, r in enumerate(requests) if r["status"] == status)
    return requests[index], [r for r in requests[index + 1:] if r["path"] == requests[index]["path"]]


def gap_after(fake, status):
    """Seconds between the first API answer with `status` and the next request to that endpoint (its retry)."""
    first, after = answered(fake, status)
    assert after[0]["params"] == first["params"], "the next request to that endpoint is not the retry"
    return after[0]["time"] - first["time"]


def test_429_with_retry_after_waits_that_long(fake, tap):
    seed(fake, (60, 60, 60))
    fake.fail(2, 429, headers={"Retry-After": "1"})
    run = tap.run(fake.config())
    assert run.returncode == 0, run.stderr
    records_match_source(run, fake)
    assert 1.0 <= gap_after(fake, 429) < 3
    assert sum(r["status"] == 429 for r in fake.requests) == 1


def test_429_with_rate_limit_reset_waits_until_the_reset_second(fake, tap):
    seed(fake, (60, 60, 60))
    reset_at = {}

    def limit(server):
        reset_at["epoch"] = int(time.time()) + 2
        server.fail(server.api_request_count + 1, 429, headers={"X-Rate-Limit-Reset": str(reset_at["epoch"]),
                                                                 "X-Rate-Limit-Remaining": "0"})

    fake.on_request(2, limit)
    run = tap.run(fake.config())
    assert run.returncode == 0, run.stderr
    records_match_source(run, fake)
    limited, after = answered(fake, 429)
    assert after[0]["params"] == limited["params"] and after[0]["status"] == 200
    assert after[0]["time"] >= reset_at["epoch"]


@pytest.mark.parametrize("headers", [
    {},  # no hint at all
    {"X-Rate-Limit-Reset": "past"},  # this machine's clock ahead of the API's: the reset has already passed here
], ids=["no-headers", "reset-in-the-past"])
def test_429_without_a_usable_reset_waits_the_default_minute_scaled_for_tests(fake, tap, headers):
    # The tests run the tap with TAP_WOOTRIC_TIME_SCALE=0.01: the default 60 s becomes 0.6 s.
    seed(fake, (60, 60, 60))
    if headers:
        headers = {"X-Rate-Limit-Reset": str(int(time.time()) - 30)}
    fake.fail(3, 429, headers=headers)
    run = tap.run(fake.config())
    assert run.returncode == 0, run.stderr
    records_match_source(run, fake)
    assert 0.55 <= gap_after(fake, 429) < 3


@pytest.mark.slow
def test_pacing_on_rate_limit_remaining_provokes_no_429(fake, tap):
    seed(fake, (300, 300, 150))
    fake.rate_limit = 4
    fake.window_seconds = 1
    started = time.time()
    run = tap.run(fake.config())
    elapsed = time.time() - started
    assert run.returncode == 0, run.stderr
    records_match_source(run, fake)
    assert [r for r in fake.requests if r["status"] == 429] == []
    busiest = max(len(fake.list_requests(stream)) for stream in STREAMS)
    # The budget forces the pauses: the busiest endpoint needs at least this many windows.
    assert elapsed >= (busiest - 1) // 4
    assert "pausing" in run.stderr


@pytest.mark.parametrize("fault", [500, 502, 503, 504, "reset", "slow", "truncated", "garbage"])
def test_server_and_network_errors_are_retried_with_backoff(fake, tap, fault):
    seed(fake, (90, 130, 60))
    for n in (2, 6):
        if isinstance(fault, int):
            fake.fail(n, fault)
        else:
            fake.fault(n, fault, seconds=1.5)
    config = fake.config(request_timeout=0.5)
    faulty = tap.run(config)
    assert faulty.returncode == 0, faulty.stderr
    records_match_source(faulty, fake)
    faulty_requests = fake.api_request_count

    clean = tap.run(config)
    assert clean.returncode == 0, clean.stderr
    # Each fault cost exactly one extra request, and each retry was logged.
    assert faulty_requests - (fake.api_request_count - faulty_requests) == 2
    assert len(retry_warnings(faulty)) == 2
    assert retry_warnings(clean) == []


@pytest.mark.slow
def test_random_faults_across_a_whole_sync_lose_nothing(fake, tap):
    seed(fake, (400, 700, 300))
    fake.chaos(0.2, seed=5)
    run = tap.run(fake.config())
    assert run.returncode == 0, run.stderr
    records_match_source(run, fake)
    assert len(fake.faults_served) >= 5
    assert len(retry_warnings(run)) == len(fake.faults_served)


def test_server_errors_that_never_end_fail_the_run_naming_the_request(fake, tap):
    seed(fake, (60, 60, 60))
    for n in range(2, 12):
        fake.fail(n, 503)
    # One stream, so that the numbered failures all hit its requests: with the others read at once, they
    # would be shared out among the streams and no request would fail 6 times.
    run = tap.run(fake.config(), catalog=select(tap.discover(fake.config()), {"end_users": None}))
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("CRITICAL GET /end_users page=")
    assert "failed 6 times" in last and "HTTP 503" in last
    assert len(retry_warnings(run)) == 5
    assert "Traceback" not in run.stderr


def test_401_after_token_expiry_gets_one_new_token_and_a_retry(fake, tap):
    seed(fake, (100, 100, 100))
    fake.on_request(3, lambda server: server.expire_tokens())
    run = tap.run(fake.config())
    assert run.returncode == 0, run.stderr
    records_match_source(run, fake)
    # Each worker with a request in flight when the token expired may get a 401; one new token serves
    # them all, and each refused request is sent again, after it.
    unauthorised = [i for i, r in enumerate(fake.requests) if r["status"] == 401]
    assert 1 <= len(unauthorised) <= WORKERS
    renewals = [i for i, r in enumerate(fake.requests) if r["path"] == "/oauth/token" and i > unauthorised[0]]
    assert len(renewals) == 1 and len(fake.tokens_issued) == 2
    for index in unauthorised:
        refused = fake.requests[index]
        retry = next(i for i, r in enumerate(fake.requests) if i > index and r["path"] == refused["path"])
        assert fake.requests[retry]["params"] == refused["params"] and fake.requests[retry]["status"] == 200
        assert retry > renewals[0]


@pytest.mark.slow
def test_sync_longer_than_the_token_life_refreshes_before_expiry(fake, tap):
    fake.token_ttl = 5
    fake.latency = 0.12  # well inside the tap's refresh margin (a tenth of the token's life)
    # Enough pages that the streams, read at once by the workers, take longer than the token lives.
    seed(fake, (4000, 4000, 2000))
    started = time.time()
    run = tap.run(fake.config())
    assert run.returncode == 0, run.stderr
    records_match_source(run, fake)
    assert time.time() - started > 6
    # Refreshed shortly before expires_in ran out, so the API never had to refuse a token.
    assert [r for r in fake.requests if r["status"] == 401] == []
    assert len(fake.tokens_issued) >= 2


@pytest.mark.slow
def test_password_grant_token_is_refreshed_with_the_refresh_token(fake, tap):
    fake.token_ttl = 2
    fake.latency = 0.1
    # Enough pages that the streams, read at once by the workers, take longer than the token lives.
    seed(fake, (3000, 3000, 0))
    config = fake.config(username=fake.username, password=fake.password)
    del config["client_id"], config["client_secret"]
    run = tap.run(config)
    assert run.returncode == 0, run.stderr
    records_match_source(run, fake, ("end_users", "responses"))
    assert fake.grants[0] == "password" and "refresh_token" in fake.grants[1:], fake.grants
    assert len(fake.refresh_tokens_issued) >= 2
