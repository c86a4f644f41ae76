"""Crashes with several workers: SIGKILL or SIGTERM a sync of the three core streams and a day stream read
at once, resume from the last STATE written before the stop, again and again until a run finishes, and
nothing is lost.

test_crash_resume.py kills the sequential read (workers: 1) at every kind of point; here the read is the
default, 4 workers, where the pages of four streams reach the writer interleaved. What a target keeps of a
stopped run is what came before the last STATE it saw, so only those records count for a stopped run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional, Set, Tuple
from zoneinfo import ZoneInfo

import pytest
from helpers import STREAMS, TapRun, fill, parse_messages, select

pytestmark = pytest.mark.slow  # Chains of killed and resumed syncs.

WORKERS = 4
DAY_STREAM = "nps_summary"
DAYS = 20
# Several pages a stream: 6 of end users, 8 of responses, 4 of declines, and a request a day.
COUNTS = (260, 380, 160)
# A stopped run's resume is stopped at the same point again, up to this many times; then it runs to the end.
STOPS_PER_CHAIN = 3
# Kill points spread from the first messages to the last pages: the undisturbed sync emits about 820
# records over about 40 requests.
AFTER_RECORDS = (1, 60, 250, 500, 780)
AFTER_REQUESTS = (2, 8, 17, 26, 35)
SIGTERM_AFTER_REQUESTS = (3, 12, 24, 34)
LATENCY = 0.02


@pytest.fixture
def world(make_fake, tap):
    """A fake whose core rows and day rows cover the last DAYS days, a config from the first of them with
    4 workers, and a catalog selecting the three core streams and the day stream."""
    fake = make_fake(seed=37)
    now = datetime.now(timezone.utc)
    first = datetime.now(ZoneInfo(fake.account_tz)).date() - timedelta(days=DAYS)
    start = fake.day_bounds(first)[0]
    fill(fake, COUNTS, start + timedelta(hours=1), now - timedelta(hours=2))
    config = fake.config(start_date=start.strftime("%Y-%m-%dT%H:%M:%SZ"), workers=WORKERS)
    catalog = select(tap.discover(fake.config()), {name: None for name in (*STREAMS, DAY_STREAM)})
    fake.latency = LATENCY
    return fake, config, catalog


def key_of(message: Dict[str, Any]) -> Any:
    return message["record"]["date"] if message["stream"] == DAY_STREAM else message["record"]["id"]


def keys_by_stream(messages: List[Dict[str, Any]]) -> Dict[str, Set[Any]]:
    found: Dict[str, Set[Any]] = {stream: set() for stream in (*STREAMS, DAY_STREAM)}
    for message in messages:
        if message["type"] == "RECORD":
            found[message["stream"]].add(key_of(message))
    return found


def source(fake) -> Dict[str, Set[Any]]:
    """Every row the sync must deliver: the fake's rows, and a day row for every day of the account's
    zone from the first (DAYS ago) to today."""
    truth = {stream: {row["id"] for row in fake.records(stream)} for stream in STREAMS}
    today = datetime.now(ZoneInfo(fake.account_tz)).date()
    truth[DAY_STREAM] = {(today - timedelta(days=n)).isoformat() for n in range(DAYS + 1)}
    return truth


def kept_by_target(messages: List[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]:
    """The messages up to the last STATE, and that STATE (None when there was none)."""
    last = max((i for i, m in enumerate(messages) if m["type"] == "STATE"), default=None)
    if last is None:
        return [], None
    return messages[:last], messages[last]["value"]


def sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- one run, stopped at a point ---------------------------------------------------------------------------------

Stopper = Callable[[Any, Any, Dict[str, Any], Dict[str, Any], Optional[Dict[str, Any]]], TapRun]


def killed_after_records(k: int) -> Stopper:
    """SIGKILL the run as soon as it has printed its k-th RECORD line; what it printed before dying counts."""

    def run(tap, fake, config, catalog, state) -> TapRun:
        proc = tap.start(config, catalog=catalog, state=state)
        lines: List[str] = []
        records = 0
        for line in proc.stdout:
            lines.append(line)
            if line.startswith('{"type": "RECORD"') or line.startswith('{"type":"RECORD"'):
                records += 1
                if records == k:
                    sigkill(proc.pid)
        stderr = proc.stderr.read()
        proc.wait()
        stdout = "".join(lines)
        tap.outputs += [stdout, stderr]
        return TapRun(proc.returncode, stdout, stderr, parse_messages(stdout))

    return run


def killed_at_request(n: int) -> Stopper:
    """SIGKILL the run just before the fake serves its n-th API request."""

    def run(tap, fake, config, catalog, state) -> TapRun:
        holder: Dict[str, Any] = {}
        fake.on_request(fake.api_request_count + n, lambda _: sigkill(holder["proc"].pid))
        holder["proc"] = tap.start(config, catalog=catalog, state=state)
        return tap.finish(holder["proc"])

    return run


def chain(tap, fake, config, catalog, stop: Stopper) -> List[TapRun]:
    """Runs, each resumed from the last STATE of the one before, each stopped by `stop` until
    STOPS_PER_CHAIN runs were, then one left to finish. A run that finishes before its stop ends the chain."""
    runs: List[TapRun] = []
    state = None
    while True:
        if len(runs) < STOPS_PER_CHAIN:
            run = stop(tap, fake, config, catalog, state)
        else:
            run = tap.run(config, catalog=catalog, state=state)
        runs.append(run)
        if run.returncode == 0:
            return runs
        assert run.returncode == -signal.SIGKILL, run.stderr[-3000:]
        _, last = kept_by_target(run.messages)
        state = last if last is not None else state


def assert_nothing_lost(fake, runs: List[TapRun]) -> None:
    """The rows a target keeps of the chain (each stopped run's up to its last STATE, all of the last run)
    are the source: no row lost, none invented. And every stopped run's last STATE was a resume point on
    its own: the rows kept up to it plus the runs after it (which start from it) cover the source, which
    fails if a STATE covered a row that was not on stdout before it."""
    truth = source(fake)
    kept = [kept_by_target(run.messages)[0] for run in runs[:-1]] + [runs[-1].messages]
    union = keys_by_stream([m for messages in kept for m in messages])
    for stream, rows in truth.items():
        assert rows - union[stream] == set(), f"{len(rows - union[stream])} {stream} rows lost"
        assert union[stream] - rows == set(), f"{stream}: rows the source does not have"
    assert runs[-1].final_state["currently_syncing"] is None
    for stopped in range(len(runs) - 1):
        # What the target holds after this stop, and only what the resumed runs then add.
        before = keys_by_stream([m for messages in kept[:stopped + 1] for m in messages])
        after = keys_by_stream([m for messages in kept[stopped + 1:] for m in messages])
        for stream, rows in truth.items():
            missing = rows - before[stream] - after[stream]
            assert missing == set(), f"stop {stopped + 1}: {len(missing)} {stream} rows lost"
    assert_day_bookmarks_follow_written_days(fake, runs)


def assert_day_bookmarks_follow_written_days(fake, runs: List[TapRun]) -> None:
    """Checked at every STATE, not only the last: the day stream's bookmark never names a day that no run
    has written yet (the kept days of earlier runs, the days before this STATE in this one)."""
    first_day = min(source(fake)[DAY_STREAM])
    kept_before: Set[str] = set()
    for run in runs:
        written = set(kept_before)
        for message in run.messages:
            if message["type"] == "RECORD" and message["stream"] == DAY_STREAM:
                written.add(message["record"]["date"])
            elif message["type"] == "STATE":
                bookmark = ((message["value"].get("bookmarks") or {}).get(DAY_STREAM) or {}).get("date")
                if bookmark is None:
                    continue
                day = datetime.strptime(first_day, "%Y-%m-%d").date()
                while day.isoformat() <= bookmark:
                    assert day.isoformat() in written, f"a STATE bookmarked {bookmark} before {day} was written"
                    day += timedelta(days=1)
        kept_before |= keys_by_stream(kept_by_target(run.messages)[0])[DAY_STREAM]


@pytest.mark.parametrize("k", AFTER_RECORDS)
def test_sigkill_after_k_records_with_four_workers_then_resume_loses_nothing(world, tap, k):
    fake, config, catalog = world
    runs = chain(tap, fake, config, catalog, killed_after_records(k))
    assert any(run.returncode == -signal.SIGKILL for run in runs), "no run was killed"
    assert "Reading with 4 workers" in runs[0].stderr
    assert_nothing_lost(fake, runs)


@pytest.mark.parametrize("n", AFTER_REQUESTS)
def test_sigkill_at_request_n_with_four_workers_then_resume_loses_nothing(world, tap, n):
    fake, config, catalog = world
    runs = chain(tap, fake, config, catalog, killed_at_request(n))
    assert runs[0].returncode == -signal.SIGKILL
    assert_nothing_lost(fake, runs)


@pytest.mark.parametrize("n", SIGTERM_AFTER_REQUESTS)
def test_sigterm_with_four_workers_exits_at_once_on_a_resume_point(world, tap, n):
    fake, config, catalog = world
    fake.latency = 0.05  # requests in flight on every worker when the signal comes
    holder: Dict[str, Any] = {}

    def terminate(_) -> None:
        holder["sent"] = time.monotonic()
        holder["proc"].send_signal(signal.SIGTERM)

    fake.on_request(fake.api_request_count + n, terminate)
    holder["proc"] = tap.start(config, catalog=catalog)
    stopped = tap.finish(holder["proc"], timeout=60)
    exited = time.monotonic()
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert exited - holder["sent"] < 2
    # The last line on stdout is whole JSON: nothing cut off mid-message.
    assert stopped.stdout.endswith("\n")
    json.loads(stopped.stdout.splitlines()[-1])
    assert stopped.stderr.strip().splitlines()[-1] == \
        "CRITICAL Stopped by SIGTERM; the last STATE written is the resume point"
    fake.latency = LATENCY
    resumed = tap.run(config, catalog=catalog, state=kept_by_target(stopped.messages)[1])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_nothing_lost(fake, [stopped, resumed])
