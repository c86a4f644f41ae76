"""Parallel reads (`workers`), through the real CLI against a fake with latency: faster than one worker,
the same records and the same final state; a kill, a SIGTERM or a fatal error with several workers loses
nothing and ends as a sequential run would; a rate budget is never overrun; `workers: 1` is the sequential
read, one request after another. WORKERS is the default, which most of the suite runs with;
test_crash_resume_parallel.py kills and stops it at many more points."""

from __future__ import annotations

import copy
import json
import os
import signal
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Set, Tuple
from zoneinfo import ZoneInfo

import pytest
from helpers import STREAMS, TapRun, fill, log_lines, parse_messages, recent_days, select

from tap_wootric.api.in_flight import ACCOUNT_IN_FLIGHT

DAY_STREAM = "nps_summary"
LATENCY = 0.1
WORKERS = 4
DAYS = 60


def midnight(fake, day) -> str:
    return fake.day_bounds(day)[0].strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def world(make_fake):
    """A fake whose core rows and day rows cover the last DAYS days, and a config from its first day."""
    fake = make_fake(seed=21)
    _, start_date = recent_days(fake, DAYS, (400, 700, 200))
    return fake, fake.config(start_date=start_date, workers=WORKERS)


def catalog(tap, fake, streams=(*STREAMS, DAY_STREAM)) -> Dict[str, Any]:
    return select(tap.discover(fake.config()), {name: None for name in streams})


def without_volatile(value: Any) -> Any:
    """A state with what the clock makes left out: table versions, and bookmarks at the sync's signpost
    (a time in the last minutes, different in every run)."""
    if isinstance(value, dict):
        return {key: without_volatile(item) for key, item in value.items() if "version" not in key}
    if isinstance(value, list):
        return [without_volatile(item) for item in value]
    if isinstance(value, str) and value.endswith("Z"):
        try:
            moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return value
        if datetime.now(timezone.utc) - moment < timedelta(minutes=10):
            return "<signpost>"
    return value


def record_set(*runs: TapRun) -> Set[Tuple[str, str]]:
    return {(m["stream"], json.dumps(m["record"], sort_keys=True))
            for run in runs for m in run.messages if m["type"] == "RECORD"}


def keys_of(*runs: TapRun) -> Set[Tuple[str, Any]]:
    return {(m["stream"], m["record"]["id"] if m["stream"] in STREAMS else m["record"]["date"])
            for run in runs for m in run.messages if m["type"] == "RECORD"}


def check_singer_order(run: TapRun) -> None:
    """A stream's SCHEMA comes before its records and its ACTIVATE_VERSION messages."""
    schemas: Set[str] = set()
    for message in run.messages:
        if message["type"] == "SCHEMA":
            schemas.add(message["stream"])
        elif message["type"] in ("RECORD", "ACTIVATE_VERSION"):
            assert message["stream"] in schemas, message["type"]


def timed(tap, config, cat, **kwargs) -> Tuple[TapRun, float]:
    started = time.monotonic()
    run = tap.run(config, catalog=cat, **kwargs)
    return run, time.monotonic() - started


def test_several_workers_read_faster_and_emit_the_same_records_and_state(world, tap):
    fake, config = world
    cat = catalog(tap, fake)
    fake.latency = LATENCY
    sequential, sequential_wall = timed(tap, {**config, "workers": 1}, cat)
    assert sequential.returncode == 0, sequential.stderr
    sequential_requests = fake.api_request_count
    parallel, parallel_wall = timed(tap, config, cat)
    assert parallel.returncode == 0, parallel.stderr
    print(f"latency {LATENCY} s, {sequential_requests} requests: workers=1 {sequential_wall:.2f} s, "
          f"workers=4 {parallel_wall:.2f} s")
    assert parallel_wall < 0.6 * sequential_wall
    # The same requests, the same records, the same final state.
    assert fake.api_request_count == 2 * sequential_requests
    assert record_set(parallel) == record_set(sequential)
    assert len(parallel.records()) == len(sequential.records())
    assert without_volatile(parallel.final_state) == without_volatile(sequential.final_state)
    assert parallel.final_state["currently_syncing"] is None
    check_singer_order(parallel)
    # Every stream ends with its one summary line.
    for stream in (*STREAMS, DAY_STREAM):
        assert len(log_lines(parallel.stderr, "INFO", f"{stream}: done:")) == 1, stream


def test_workers_bound_each_streams_requests_in_flight_and_the_default_is_four(world, tap):
    fake, config = world
    cat = catalog(tap, fake)
    fake.latency = 0.02
    default = {key: value for key, value in config.items() if key != "workers"}
    run = tap.run(default, catalog=cat)
    assert run.returncode == 0, run.stderr
    assert "Reading with 4 workers per stream" in run.stderr
    api = [r for r in fake.requests if r["path"] != "/oauth/token"]
    per_stream = {path: in_flight_at_once([r for r in api if r["path"] == path]) for path in {r["path"] for r in api}}
    # The day stream's days go four at a time; the streams go at once, so the account has more in flight
    # than any one stream, and never more than its cap.
    assert per_stream["/v1/nps_summary"] == WORKERS
    assert max(per_stream.values()) <= WORKERS
    assert WORKERS < in_flight_at_once(api) <= ACCOUNT_IN_FLIGHT
    fake.clear_log()
    one = tap.run({**config, "workers": 1}, catalog=cat)
    assert one.returncode == 0, one.stderr
    assert in_flight_at_once(fake.requests) == 1 and "workers" not in one.stderr


def in_flight_at_once(requests: List[Dict[str, Any]]) -> int:
    """The most requests the fake was answering at one moment (each took its latency before `time`)."""
    ends = sorted(r["time"] for r in requests)
    latency = 0.02
    return max(sum(1 for other in ends if end - latency + 0.005 < other <= end) for end in ends)


@pytest.mark.parametrize("kill_at", [3, 12, 40, 90])
def test_a_kill_with_several_workers_loses_no_record_on_resume(world, tap, kill_at):
    fake, config = world
    cat = catalog(tap, fake)
    fake.latency = 0.01
    proc = tap.start(config, catalog=cat)
    fake.on_request(kill_at, lambda _: os.kill(proc.pid, signal.SIGKILL))
    killed = tap.finish(proc)
    assert killed.returncode == -signal.SIGKILL
    states = killed.states()
    state = states[-1] if states else None
    fake.on_request(10**9, lambda _: None)
    resumed = tap.run(config, catalog=cat, state=state)
    assert resumed.returncode == 0, resumed.stderr
    got = keys_of(killed, resumed)
    for stream in STREAMS:
        assert {row["id"] for row in fake.records(stream)} <= {key for s, key in got if s == stream}, stream
    days = {key for s, key in got if s == DAY_STREAM}
    assert len(days) == DAYS + 1


def test_sigterm_with_several_workers_ends_on_a_whole_line_within_seconds(world, tap):
    fake, config = world
    fake.latency = 0.05
    proc = tap.start(config, catalog=catalog(tap, fake))
    fake.on_request(20, lambda _: os.kill(proc.pid, signal.SIGTERM))
    started = time.monotonic()
    stopped = tap.finish(proc, timeout=60)
    assert stopped.returncode == 143, stopped.stderr
    assert time.monotonic() - started < 20  # the run up to request 20 and the stop
    assert stopped.stdout.endswith("\n")
    parse_messages(stopped.stdout)
    assert stopped.stderr.strip().splitlines()[-1] == \
        "CRITICAL Stopped by SIGTERM; the last STATE written is the resume point"


def test_sigterm_stops_the_workers_at_once(world, tap):
    fake, config = world
    fake.latency = 0.3
    proc = tap.start(config, catalog=catalog(tap, fake))
    deadline = time.monotonic() + 30
    while fake.api_request_count < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stopped = tap.finish(proc, timeout=30)
    assert time.monotonic() - sent < 3
    assert stopped.returncode == 143 and stopped.stdout.endswith("\n")


@pytest.mark.parametrize("fail_at", [5, 30])
def test_a_fatal_error_in_one_worker_ends_the_run_and_moves_no_bookmark_past_written_records(world, tap, fail_at):
    fake, config = world
    cat = catalog(tap, fake)
    fake.latency = 0.01
    fake.fail(fail_at, 400)
    failed = tap.run(config, catalog=cat)
    assert failed.returncode == 1, failed.stderr
    critical = log_lines(failed.stderr, "CRITICAL")
    assert len(critical) == 1 and "HTTP 400" in critical[0], failed.stderr
    check_singer_order(failed)
    state = failed.states()[-1] if failed.states() else None
    day_bookmark = ((state or {}).get("bookmarks") or {}).get(DAY_STREAM, {}).get("date")
    if day_bookmark is not None:
        assert day_bookmark <= max(r["date"] for r in failed.records(DAY_STREAM))
    resumed = tap.run(config, catalog=cat, state=state)
    assert resumed.returncode == 0, resumed.stderr
    got = keys_of(failed, resumed)
    for stream in STREAMS:
        assert {row["id"] for row in fake.records(stream)} <= {key for s, key in got if s == stream}, stream
    assert len({key for s, key in got if s == DAY_STREAM}) == DAYS + 1


def test_a_refused_optional_stream_is_skipped_while_the_others_go_on(world, tap):
    fake, config = world
    fake.refuse("nps_summary", 403)
    run = tap.run(config, catalog=catalog(tap, fake))
    assert run.returncode == 0, run.stderr
    assert len(log_lines(run.stderr, "WARNING", "nps_summary skipped")) == 1
    assert not run.records(DAY_STREAM) and DAY_STREAM not in run.final_state["bookmarks"]
    for stream in STREAMS:
        assert {row["id"] for row in fake.records(stream)} <= set(run.ids(stream)), stream


def test_rate_budgets_provoke_no_429_with_several_workers(world, tap):
    fake, config = world
    fake.rate_limit = 3
    fake.window_seconds = 1
    run = tap.run(config, catalog=catalog(tap, fake, (*STREAMS, DAY_STREAM, "email_stats")))
    assert run.returncode == 0, run.stderr
    assert [r for r in fake.requests if r["status"] == 429] == []
    assert "pausing" in run.stderr
    assert len(run.records(DAY_STREAM)) == DAYS + 1 and len(run.records("email_stats")) == DAYS + 1


def normalised_requests(fake, since: float) -> List[str]:
    """The API requests a run sent, in order, as path and parameters, with the times that follow the clock
    (the signpost, the probe's hour ahead: different in every run) replaced by a mark."""
    lines = []
    for request in fake.requests:
        if request["path"] == "/oauth/token":
            continue
        params = {key: ("<now>" if value.isdigit() and abs(int(value) - since) < 7200 else value)
                  for key, value in request["params"].items()}
        lines.append(f"{request['path']} {json.dumps(params, sort_keys=True)}")
    return lines


@pytest.mark.slow
def test_one_worker_reads_the_streams_one_after_another_exactly_as_each_alone(make_fake, tap):
    """workers: 1 is the sequential read it always was: one request at a time, stream after stream in the
    catalog's order, each stream sending the very requests it sends when it is synced alone, and the
    records in the same order; no 'Reading with' line. The reference is each stream synced by itself,
    which no interleaving can pass."""
    fake = make_fake(seed=23)
    now = datetime.now(timezone.utc)
    # The account's today, not UTC's: from 00:00 UTC to its midnight they are different days.
    first = datetime.now(ZoneInfo(fake.account_tz)).date() - timedelta(days=6)
    fill(fake, (120, 160, 60), fake.day_bounds(first)[0] + timedelta(hours=1), now - timedelta(hours=2))
    config = fake.config(start_date=midnight(fake, first), workers=1)
    order = (*STREAMS, DAY_STREAM)
    fake.latency = 0.02  # what in_flight_at_once assumes
    discovered = tap.discover(fake.config())
    alone_requests: List[str] = []
    alone_records: List[Tuple[str, Any]] = []
    for stream in order:
        fake.clear_log()
        run = tap.run(config, catalog=select(copy.deepcopy(discovered), {stream: None}))
        assert run.returncode == 0, run.stderr
        alone_requests += normalised_requests(fake, time.time())
        alone_records += [(m["stream"], m["record"]) for m in run.messages if m["type"] == "RECORD"]
    fake.clear_log()
    together = tap.run(config, catalog=select(discovered, {name: None for name in order}))
    assert together.returncode == 0, together.stderr
    assert in_flight_at_once(fake.requests) == 1
    assert normalised_requests(fake, time.time()) == alone_requests
    assert [(m["stream"], m["record"]) for m in together.messages if m["type"] == "RECORD"] == alone_records
    assert "Reading with" not in together.stderr
    # currently_syncing names each stream in turn, in the catalog's order.
    named = [s["currently_syncing"] for s in together.states()]
    assert [name for i, name in enumerate(named) if name and name != named[i - 1]] == list(order)
