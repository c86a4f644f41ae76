"""Rate budgets with several workers, through the real CLI against the fake: whether the API keeps one
budget per endpoint or one for all its endpoints (`rate_limit_shared`), the tap provokes no 429, emits
every row, and finishes close to the earliest moment the budget allows (it paces, not merely waits); a
429 holds every endpoint of a shared budget until its reset; a stop during a retry wait ends at once."""

from __future__ import annotations

import math
import signal
import subprocess
import time
from typing import Any, Dict, List

import pytest
from helpers import STREAMS, TapRun, log_lines, parse_messages, recent_days, select

DAY_STREAM = "nps_summary"
DAYS = 40
WORKERS = 4
LIMIT = 8  # requests per window
WINDOW = 1.0  # seconds; the fake's X-Rate-Limit-Reset is a whole second, so windows are too


@pytest.fixture
def world(make_fake):
    fake = make_fake(seed=33)
    # responses and the day stream each need about as many windows, so both bind at once.
    _, start_date = recent_days(fake, DAYS, (400, 2000, 200))
    return fake, fake.config(start_date=start_date, workers=WORKERS)


def catalog(tap, fake) -> Dict[str, Any]:
    return select(tap.discover(fake.config()), {name: None for name in (*STREAMS, DAY_STREAM)})


def api_requests(fake) -> List[Dict[str, Any]]:
    return [r for r in fake.requests if r["path"].startswith("/v1/")]


def earliest_finish(first: float, count: int) -> float:
    """The earliest moment `count` requests can be answered from `first` on, LIMIT per fixed window."""
    return max(first, (math.floor(first / WINDOW) + math.ceil(count / LIMIT) - 1) * WINDOW)


def limited(fake, shared: bool) -> None:
    fake.rate_limit, fake.window_seconds, fake.rate_limit_shared = LIMIT, WINDOW, shared
    # Without a Date header the tap times the resets on this machine's clock, which is the fake's: the
    # header's whole second would make every wait up to a second longer than the window needs.
    fake.send_date = False


@pytest.mark.slow
@pytest.mark.parametrize("shared", [False, True], ids=["per-endpoint", "shared"])
def test_several_workers_pace_on_either_budget_without_a_429(world, tap, shared):
    fake, config = world
    cat = catalog(tap, fake)
    limited(fake, shared)
    started = time.monotonic()
    run = tap.run(config, catalog=cat)
    wall = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    served = api_requests(fake)
    assert [r for r in fake.requests if r["status"] == 429] == []
    for stream in STREAMS:
        assert {row["id"] for row in fake.records(stream)} <= set(run.ids(stream)), stream
    assert len({row["date"] for row in run.records(DAY_STREAM)}) == DAYS + 1
    # Pacing: the last answer came within 1.2 x the least time the budget needs for these requests.
    first, last = served[0]["time"], served[-1]["time"]
    counts: Dict[str, int] = {}
    for r in served:
        counts[r["path"]] = counts.get(r["path"], 0) + 1
    bound = earliest_finish(first, len(served)) if shared else max(earliest_finish(first, n) for n in counts.values())
    print(f"{'shared' if shared else 'per-endpoint'}: {len(served)} requests ({counts}), answered over "
          f"{last - first:.2f} s, the budget's least {bound - first:.2f} s; wall {wall:.2f} s")
    assert bound - first >= 3 * WINDOW  # the budget binds: what is measured is pacing
    assert last - first <= 1.2 * (bound - first) + 0.1


@pytest.mark.slow
def test_a_429_on_one_endpoint_of_a_shared_budget_holds_every_endpoint_until_the_reset(world, tap):
    fake, config = world
    cat = catalog(tap, fake)
    limited(fake, True)
    fake.fail(30, 429, headers={"Retry-After": "2"})
    run = tap.run(config, catalog=cat)
    assert run.returncode == 0, run.stderr
    served = api_requests(fake)
    at = next(i for i, r in enumerate(served) if r["status"] == 429)
    limited_at = served[at]["time"]
    # Requests already sent when the 429 came are answered at once; after them none goes out, to any
    # endpoint, until the 2 s are over.
    later = [r for r in served[at + 1:] if r["time"] > limited_at + 0.2]
    assert later and later[0]["time"] >= limited_at + 2
    assert {r["path"] for r in served[at + 1:]} - {served[at]["path"]}, "only one endpoint was read after it"
    assert sum(r["status"] == 429 for r in fake.requests) == 1
    # The retry's WARNING names the stream that met the 429 before its request.
    stream = served[at]["path"].rsplit("/", 1)[-1]
    assert [line for line in log_lines(run.stderr, "WARNING", "rate limited (429)")
            if line.startswith(f"WARNING {stream}: GET /{stream} ")], run.stderr[-3000:]
    assert len({row["date"] for row in run.records(DAY_STREAM)}) == DAYS + 1


def test_sigterm_during_a_long_retry_wait_with_several_workers_ends_at_once(world, tap):
    fake, config = world
    cat = catalog(tap, fake)
    fake.on_request(12, lambda server: server.chaos(1.0, (503,)))  # from then on, every request fails
    # Retry waits 30 times as long as a run's (up to 30, 60, 120 ... s, jittered), so a stop finds the
    # workers waiting. (The process would exit within JOIN_SECONDS anyway, its workers being daemons; that
    # the wait itself ends at once is proved in tests/test_unit_limiter.py.)
    # stdout goes to a file, as a target would read it: a pipe nobody reads would hold the writer, and no
    # stream starts beside the others while the writer cannot write.
    out_path = tap.tmp_path / "stdout.jsonl"
    with open(out_path, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(tap.argv(config, catalog=cat), stdout=out, stderr=subprocess.PIPE, text=True,
                                env=tap.env(TAP_WOOTRIC_TIME_SCALE="30"))
        deadline = time.monotonic() + 30
        while len(fake.faults_served) < 2 * WORKERS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fake.faults_served) >= 2 * WORKERS
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    stdout = out_path.read_text(encoding="utf-8")
    stopped = TapRun(proc.returncode, stdout, stderr, parse_messages(stdout))
    assert time.monotonic() - sent < 2
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.stdout.endswith("\n")
    assert isinstance(stopped.states()[-1], dict)
