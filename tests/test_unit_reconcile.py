"""ReconcilePass arithmetic and state: budgets, slice ends, runs left, the state round trip, versions,
and a simulated pass that completes within reconcile_runs runs, each reading about N/runs rows."""

import math

import pytest

from tap_wootric import stream_run
from tap_wootric.incremental.reconcile import STATE_KEY, ReconcilePass
from tap_wootric.stream_run import new_version
from tap_wootric.timeutil import format_epoch

START = 1_500_000_000


def test_runs_left_is_never_below_one():
    running = ReconcilePass(version=1, cursor=START)
    assert [running.runs_left(4) for running.runs in range(7)] == [4, 3, 2, 1, 1, 1, 1]
    assert ReconcilePass(version=1, cursor=START).runs_left(0) == 1


def test_row_budget_shares_what_is_left_over_the_runs_left():
    running = ReconcilePass(version=1, cursor=START, estimate=1000)
    assert running.row_budget(4) == 250
    running.runs, running.read = 1, 300
    assert running.row_budget(4) == math.ceil(700 / 3) == 234
    running.runs, running.read = 2, 990
    assert running.row_budget(4) == 5
    running.read = 1200  # more rows than the estimate: still a row at least, never zero or negative
    assert running.row_budget(4) == 1
    running.runs = 3  # the last run reads to the end
    assert running.row_budget(4) is None
    assert ReconcilePass(version=1, cursor=START, estimate=1000).row_budget(1) is None
    assert ReconcilePass(version=1, cursor=START).row_budget(4) is None  # no estimate: sized in time


def test_slice_end_with_and_without_an_estimate():
    assert ReconcilePass(version=1, cursor=1000, estimate=50).slice_end(4, 2000) == 2000
    timed = ReconcilePass(version=1, cursor=1000)
    assert timed.slice_end(4, 2000) == 1250
    timed.runs, timed.cursor = 1, 1251
    assert timed.slice_end(4, 2000) == 1251 + (2000 - 1251) // 3
    timed.cursor = 1999
    assert timed.slice_end(4, 2000) == 2000  # always at least a second further
    timed.runs = 3
    assert timed.slice_end(4, 2000) == 2000


def test_state_round_trip():
    running = ReconcilePass(version=1_733_000_000_000, cursor=START + 86_400, runs=3, read=3000, estimate=10_000,
                            shortfall="1 second(s) held more rows than the API can reach")
    state = running.to_state()
    assert state["cursor"] == format_epoch(START + 86_400)
    assert ReconcilePass.from_state({STATE_KEY: state}, start=START) == running
    # A start date raised past the cursor moves the cursor, and only the cursor.
    raised = ReconcilePass.from_state({STATE_KEY: state}, start=START + 10**6)
    assert (raised.cursor, raised.version, raised.runs, raised.read) == (START + 10**6, running.version, 3, 3000)


@pytest.mark.parametrize("raw", [None, {}, {"version": "7", "cursor": "2020-01-01T00:00:00Z"},
                                 {"version": 7, "cursor": "not a time"}, {"version": 7}])
def test_no_pass_in_state_starts_a_new_one_at_start(raw):
    bookmark = {} if raw is None else {STATE_KEY: raw}
    fresh = ReconcilePass.from_state(bookmark, start=START)
    assert (fresh.cursor, fresh.runs, fresh.read, fresh.shortfall) == (START, 0, 0, None)
    assert fresh.version > 1_600_000_000_000  # milliseconds since the epoch


def test_completed_state_sizes_the_next_pass_and_raises_its_version():
    done = ReconcilePass.completed_state(version=10**15, rows=4321)
    assert done == {"previous_version": 10**15, "estimate": 4321}
    fresh = ReconcilePass.from_state({STATE_KEY: done}, start=START)
    assert fresh.version == 10**15 + 1 and fresh.estimate == 4321
    assert (fresh.cursor, fresh.runs, fresh.read, fresh.shortfall) == (START, 0, 0, None)


def test_new_version_is_milliseconds_and_always_above_the_previous(monkeypatch):
    monkeypatch.setattr(stream_run.time, "time", lambda: 1_700_000_000.1234)
    assert new_version() == 1_700_000_000_123
    assert new_version(1_700_000_000_000) == 1_700_000_000_123
    assert new_version(1_700_000_000_123) == 1_700_000_000_124  # the same millisecond
    assert new_version(1_800_000_000_000) == 1_800_000_000_001  # a clock that went back
    versions = [new_version()]
    for _ in range(5):
        versions.append(new_version(versions[-1]))
    assert versions == sorted(set(versions))


def test_note_shortfall_keeps_the_first_reason():
    running = ReconcilePass(version=1, cursor=START)
    running.note_shortfall("first")
    running.note_shortfall("second")
    assert running.shortfall == "first"


def simulate(rows, estimate, runs, start_state=None):
    """Runs of a pass over `rows` rows, each reading its row budget (the last, the rest), through state
    saved and loaded between runs as the tap does. Returns the rows each run read."""
    bookmark = {STATE_KEY: start_state or ReconcilePass.completed_state(10**12, estimate)}
    reads = []
    for _ in range(runs + 5):
        running = ReconcilePass.from_state(bookmark, start=START)
        budget = running.row_budget(runs)
        take = rows - running.read if budget is None else min(budget, rows - running.read)
        running.read += take
        running.runs += 1
        running.cursor += take  # a row a second
        reads.append(take)
        if budget is None or running.read >= rows:
            return reads
        bookmark = {STATE_KEY: running.to_state()}
    raise AssertionError(f"the pass did not complete: {reads}")


@pytest.mark.parametrize("runs", [1, 2, 3, 7, 10, 30])
@pytest.mark.parametrize("rows", [1, 9, 100, 1001, 250_000])
def test_a_pass_with_a_right_estimate_completes_within_its_runs_in_even_slices(rows, runs):
    reads = simulate(rows, rows, runs)
    assert sum(reads) == rows and len(reads) <= runs
    assert max(reads) <= math.ceil(rows / runs) + 1
    if rows >= runs:
        assert len(reads) == runs and min(reads) >= rows // runs - 1


@pytest.mark.parametrize("growth", [0.5, 0.9, 1.1, 2.0])
def test_a_pass_over_a_table_that_grew_or_shrank_still_completes_within_its_runs(growth):
    estimate, runs = 10_000, 10
    rows = int(estimate * growth)
    reads = simulate(rows, estimate, runs)
    assert sum(reads) == rows and len(reads) <= runs
    assert max(reads[:-1]) <= math.ceil(estimate / runs) + 1  # the slices before the last keep to plan
