"""Created-range partitions (incremental/partitions.py) against the in-memory model API: every row read,
every progress report a safe resume point, splits only where they pay, a budget that stops and resumes."""

from __future__ import annotations

import bisect
import math
import threading
import time
from typing import Any, Dict, List, Optional, Set

import pytest
from model_api import ModelApi, burst, spread

from tap_wootric.api import waits
from tap_wootric.cancel import Cancellation
from tap_wootric.incremental.paging import KeysetScanner
from tap_wootric.incremental.partitions import (
    SPLIT_MIN_PAGES,
    SPLIT_PAGE_SHARE,
    PartitionedRead,
    ranges_state,
    ranges_within,
    split_pays,
)

START, END = 1_600_000_000, 1_600_000_000 + 2 * 365 * 86400


class FakeRun:
    """The parts of StreamRun a partitioned read uses: emit, the skipped count, the client's cancellation."""

    def __init__(self) -> None:
        self.name = "responses"
        self.emitted: List[Any] = []
        self.skipped = 0
        self.client = type("Client", (), {"cancellation": Cancellation()})()

    def emit(self, rows: List[Dict[str, Any]]) -> int:
        self.emitted.extend(row["id"] for row in rows)
        return len(rows)


class SlowModel(ModelApi):
    """The model API with a little latency, so that several threads really overlap, and its rows kept
    sorted (re-sorted when their number changes) so that large reads stay fast."""

    def __init__(self, rows, latency: float = 0.0, **kwargs):
        super().__init__(rows, **kwargs)
        self.latency = latency
        self._lock = threading.Lock()
        self._sorted: List = []
        self._times: List[float] = []

    def fetch(self, query):
        if self.latency:
            # The model's latency is its network: a round trip, as api/http.py counts the API's.
            with waits.round_trip():
                time.sleep(self.latency)
        with self._lock:
            if self.before_request:
                self.before_request(self)
            self.calls.append(query)
            if len(self._sorted) != len(self.rows):
                self._sorted = sorted((t, i) for i, t in self.rows.items())
                self._times = [t for t, _ in self._sorted]
            low = bisect.bisect_left(self._times, query.gte)
            high = len(self._times) if query.lt is None else bisect.bisect_left(self._times, query.lt)
            selected = self._sorted[low:high]
            if query.descending:
                selected = selected[::-1]
            window = selected[(query.page - 1) * query.per_page: query.page * query.per_page]
            return [{"id": i, "t": t} for t, i in window]


def read(model: ModelApi, ranges, *, workers: int, budget: Optional[int] = None, check_progress: bool = True,
         share: float = 1.0, keep=lambda row: True):
    """A partitioned read over the model; `share`: the splits' page share (1.0: as many as pay; the
    default share has a test of its own)."""
    run = FakeRun()
    reports: List[List] = []
    checking = threading.local()  # the CPU time each thread spent in the checks below

    def progress(remaining):
        reports.append(list(remaining))
        if check_progress:
            started = time.thread_time()
            # The resume point's promise: every row outside the unfinished ranges is emitted already.
            outside = {row_id for row_id, t in model.rows.items()
                       if any(start <= int(t) < end for start, end in ranges)
                       and not any(start <= int(t) < end for start, end in remaining)}
            missing = outside - set(run.emitted)
            assert not missing, f"a progress report covers {len(missing)} rows not emitted"
            checking.spent = getattr(checking, "spent", 0.0) + time.thread_time() - started

    def cpu() -> float:
        # The checks are the test's work, not the read's: they must not make the read look CPU bound.
        return time.thread_time() - getattr(checking, "spent", 0.0)

    def scanner():
        return KeysetScanner(model.fetch, lambda row: int(row["t"]), stream="responses",
                             logger=__import__("logging").getLogger("test"))

    parts = PartitionedRead(run, list(ranges), scanner, lambda row: int(row["t"]), keep, progress,
                            workers=workers, stop_after_rows=budget, split_share=share, cpu=cpu)
    completed = parts.run_all()
    return run, parts, completed, reports


def within(model: ModelApi, start: int, end: int) -> Set[Any]:
    return {row_id for row_id, t in model.rows.items() if start <= int(t) < end}


DISTRIBUTIONS = {
    "uniform": lambda: spread(5000, START, END, seed=3),
    "recent": lambda: spread(5000, END - 30 * 86400, END, seed=4),  # an account that began last month
    "old": lambda: {**spread(4500, START, START + 86400, seed=5), **spread(500, START, END, seed=6, first_id=10**6)},
    "bursts": lambda: {**spread(2000, START, END, seed=7), **burst(1200, START + 86400 * 100, 10**6),
                       **burst(200, END - 86400, 2 * 10**6)},
}


@pytest.mark.parametrize("shape", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("workers", [1, 4])
def test_every_row_once_or_more_and_progress_is_a_resume_point(shape, workers):
    model = SlowModel(DISTRIBUTIONS[shape](), latency=0.001)
    run, parts, completed, reports = read(model, [(START, END + 1)], workers=workers)
    assert completed and reports[-1] == []
    assert set(run.emitted) == within(model, START, END + 1)
    if workers == 1:
        assert len(parts.parts) == 1 and parts.splits == 0
    # Requests do not rise: each split may cost one page (two short ones where there was one) over the
    # sequential scan of the same rows.
    sequential = SlowModel(DISTRIBUTIONS[shape]())
    read(sequential, [(START, END + 1)], workers=1, check_progress=False)
    assert len(model.calls) <= len(sequential.calls) + parts.splits


def test_several_workers_split_a_long_range_into_balanced_parts():
    model = SlowModel(spread(5000, START, END, seed=8), latency=0.002)
    run, parts, completed, _ = read(model, [(START, END + 1)], workers=4)
    assert completed
    assert parts.splits >= 3
    sizes = sorted(part.rows for part in parts.parts)
    # The largest part holds well under half the rows: the parts really shared the work.
    assert sizes[-1] < 0.45 * len(model.rows)
    assert len(model.calls) <= math.ceil(1.03 * 100) + 3


@pytest.mark.parametrize("rows, least, most", [(5000, 0, 0), (10_400, 0, 1), (20_400, 1, 3), (40_000, 3, 7)])
def test_splits_add_at_most_one_percent_of_the_pages(rows, least, most):
    # Latency enough for splits to pay (at 0.5 ms the model's pages cost more CPU than their wait: no split).
    model = SlowModel(spread(rows, START, END, seed=13), latency=0.003)
    run, parts, completed, _ = read(model, [(START, END + 1)], workers=4, share=SPLIT_PAGE_SHARE,
                                    check_progress=False)
    assert completed and set(run.emitted) == within(model, START, END + 1)
    assert least <= parts.splits <= most
    sequential = SlowModel(model.rows)
    read(sequential, [(START, END + 1)], workers=1, check_progress=False)
    assert len(model.calls) <= math.ceil(1.03 * math.ceil(rows / 50))
    assert len(model.calls) <= len(sequential.calls) + parts.splits


def test_a_split_pays_only_when_round_trips_leave_the_tap_idle_longer_than_the_part_computes():
    assert split_pays(waited=0.3, worked=0.1)
    assert not split_pays(waited=0.1, worked=0.3)
    assert not split_pays(waited=0.0, worked=0.0)


def burning(seconds_per_row: float):
    """A `keep` that costs CPU time, as transforming a row does."""

    def keep(row) -> bool:
        until = time.thread_time() + seconds_per_row
        while time.thread_time() < until:
            pass
        return True

    return keep


@pytest.mark.parametrize("latency, split", [(0.0005, False), (0.02, True)])
def test_a_read_bound_by_its_own_cpu_is_not_split_and_one_bound_by_latency_is(latency, split):
    # The same rows and the same 2 ms of CPU a page: against an API that answers at once the parts would only
    # take turns on the CPU; with 20 ms a page, a second part works while the first waits.
    model = SlowModel(spread(5000, START, END, seed=8), latency=latency)
    run, parts, completed, _ = read(model, [(START, END + 1)], workers=4, check_progress=False,
                                    keep=burning(0.00004))
    assert completed and set(run.emitted) == within(model, START, END + 1)
    assert (parts.splits > 0) is split, [(part.waited, part.worked) for part in parts.parts]
    assert (len(parts.parts) > 1) is split
    if not split:
        assert parts.parts[0].worked > parts.parts[0].waited > 0


def test_a_short_range_is_never_split():
    model = SlowModel(spread(SPLIT_MIN_PAGES * 50 - 100, START, END, seed=9), latency=0.002)
    run, parts, completed, _ = read(model, [(START, END + 1)], workers=4)
    assert completed and parts.splits == 0
    sequential = SlowModel(model.rows)
    read(sequential, [(START, END + 1)], workers=1)
    assert len(model.calls) == len(sequential.calls)


def test_a_budget_stops_the_read_and_the_remaining_ranges_finish_it():
    model = SlowModel(spread(3000, START, END, seed=10), latency=0.001)
    run, parts, completed, reports = read(model, [(START, END + 1)], workers=4, budget=1000)
    assert not completed
    remaining = reports[-1]
    assert remaining and 1000 <= len(set(run.emitted)) < 3000
    # The state round trip, then the rest in a later run, sequentially: nothing is missing.
    stored = ranges_state(remaining, END + 1)
    assert stored[-1][1] is None or ranges_within(stored, START, END + 1) == remaining
    later, _, done, _ = read(model, ranges_within(stored, START, END + 1), workers=1)
    assert done
    assert set(run.emitted) | set(later.emitted) == within(model, START, END + 1)
    # The later run read only what was unfinished, not the whole range again.
    assert len(set(later.emitted)) < 3000 - 900


def test_rows_created_while_the_parts_run_are_read():
    added = {"n": 0}

    def arrive(model):
        added["n"] += 1
        if added["n"] % 7 == 0:
            model.rows[10**7 + added["n"]] = END - 5 + 0.5  # a new row, near the range's end

    model = SlowModel(spread(4000, START, END - 60, seed=11), latency=0.001, before_request=arrive)
    run, parts, completed, _ = read(model, [(START, END + 1)], workers=4, check_progress=False)
    assert completed
    before_last_request = {row_id for row_id in model.rows if row_id < 10**7}
    assert before_last_request <= set(run.emitted)


def test_a_failing_part_stops_the_read_with_its_error():
    calls = {"n": 0}

    def fail(model):
        calls["n"] += 1
        if calls["n"] == 12:
            raise RuntimeError("boom")

    model = SlowModel(spread(5000, START, END, seed=12), latency=0.001, before_request=fail)
    with pytest.raises(RuntimeError, match="boom"):
        read(model, [(START, END + 1)], workers=4)


def test_ranges_state_round_trip():
    ranges = [(START, START + 100), (START + 500, END + 1)]
    stored = ranges_state(ranges, END + 1)
    assert stored[-1][1] is None
    assert ranges_within(stored, START, END + 1) == ranges
    # A later run's end lies further on: the open range reaches it.
    assert ranges_within(stored, START, END + 1000)[-1] == (START + 500, END + 1000)
    assert ranges_within(stored, START + 200, END + 1) == [(START + 500, END + 1)]
