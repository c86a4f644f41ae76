"""The parallel-read scenarios: this tap with `workers: 1` (one request after another) and with several
workers, against bounds that say how fast a run could be.

- Latency (`--latency`): every API GET waits `latency` seconds, with no rate limit; the three core
  streams and the two day streams. Each run is set against the sequential bound (every request after
  the other) and the parallel bound (the slowest stream, its requests shared among its parts: the
  created-range partitions the tap logs for a core stream, the workers for a day stream, whose days are
  independent requests). Then the day streams' backfill alone, whose days are where a first sync spends
  its time.
- Budgets (`--budgets`): the core streams under one budget per endpoint and under one budget shared by
  every endpoint (the fake's `rate_limit_shared`), against the least time the budget allows.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from harness import STREAMS, Dataset, Run, Tap, budget_minimum, build_fake, check, our_tap, run_tap, selected_catalog

from tap_wootric.api.in_flight import ACCOUNT_IN_FLIGHT
from tap_wootric.settings import SETTING
from tap_wootric.streams import STREAMS as STREAM_SPECS
from tap_wootric.streams import get_stream

DAY_STREAMS = tuple(spec.name for spec in STREAM_SPECS if spec.day_params)  # nps_summary, email_stats
LATENCY_STREAMS = (*STREAMS, *DAY_STREAMS)
PARALLEL_TARGET = 1.3  # wall / parallel bound
BACKFILL_TARGET = 0.3  # wall(several workers) / wall(workers 1), day streams alone
SEPARATE_TARGET, SHARED_TARGET = 1.15, 1.1  # wall / budget minimum
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def default_workers() -> int:
    return int(SETTING["workers"].default)


def stream_path(name: str) -> str:
    """The path of the fake's log that a stream's requests go to."""
    spec = get_stream(name)
    assert spec is not None, name
    return f"/{spec.api.name}/{spec.path}"


def worker_counts(workers: Optional[int]) -> List[int]:
    """workers: 1 (the sequential read), then the default or the given count, if different."""
    other = workers if workers is not None else default_workers()
    return [1] if other == 1 else [1, other]


def verdict(ratio: float, target: float) -> str:
    return "yes" if ratio <= target else "no"


# -- latency -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencySize:
    rows: int  # in each core stream
    days: float  # of history, and how far back start_date is
    latency: float  # seconds each API GET waits


LATENCY_SIZES = {"full": LatencySize(5000, 2 * 365.25, 0.15), "tiny": LatencySize(300, 20, 0.02)}


@dataclass
class LatencyRun:
    tap: str
    streams: Tuple[str, ...]
    workers: int  # 1 for tap-wootric 0.5.3, which reads one request after another
    latency: float
    run: Run

    def requests(self, stream: str) -> int:
        return self.run.paths.get(stream_path(stream), 0)

    def parts(self, stream: str) -> int:
        """What of a stream runs at once: its days, or the parts of its created range, `workers` at a time."""
        return self.workers if stream in DAY_STREAMS else min(self.workers, self.run.partitions.get(stream, 1))

    @property
    def sequential_bound(self) -> float:
        return sum(self.run.paths.values()) * self.latency

    @property
    def parallel_bound(self) -> float:
        return max(self.requests(stream) * self.latency / self.parts(stream) for stream in self.streams)

    @property
    def in_flight_bound(self) -> float:
        """The client keeps at most `workers` requests in flight for a stream, ACCOUNT_IN_FLIGHT in all."""
        cap = 1 if self.workers == 1 else min(ACCOUNT_IN_FLIGHT, self.workers * len(self.streams))
        return self.sequential_bound / cap

    @property
    def least(self) -> float:
        return max(self.parallel_bound, self.in_flight_bound)


@dataclass
class LatencyResult:
    size: LatencySize
    runs: List[LatencyRun]  # every stream
    backfills: List[LatencyRun]  # the day streams alone


def bench_latency(size: LatencySize, workers: Sequence[int], original: Optional[Tap]) -> LatencyResult:
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    fake = build_fake(Dataset("latency", size.days / 365.25, dict.fromkeys(STREAMS, size.rows)), end)
    fake.warm()
    fake.start()
    tap = our_tap()
    result = LatencyResult(size, [], [])
    try:
        config = fake.config(start_date=(end - timedelta(days=size.days)).strftime(TIME_FORMAT))
        fake.latency = size.latency
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            every = selected_catalog(tap, fake, config, LATENCY_STREAMS, workdir)
            days = selected_catalog(tap, fake, config, DAY_STREAMS, workdir)
            for count in workers:
                for streams, catalog, into in ((LATENCY_STREAMS, every, result.runs),
                                               (DAY_STREAMS, days, result.backfills)):
                    print(f"[latency {size.latency:g} s] {tap.name}: workers {count}, {', '.join(streams)}",
                          file=sys.stderr)
                    run = run_tap(tap, fake, {**config, "workers": count}, workdir, catalog=catalog)
                    check(run, tap, f"sync with latency and {count} workers")
                    into.append(LatencyRun(tap.name, streams, count, size.latency, run))
            if original is not None:
                print(f"[latency {size.latency:g} s] {original.name}: core streams", file=sys.stderr)
                run = run_tap(original, fake, config, workdir)
                check(run, original, "sync with latency")
                result.runs.append(LatencyRun(original.name, STREAMS, 1, size.latency, run))
    finally:
        fake.stop()
    return result


def per_stream(row: LatencyRun, value: Callable[[str], int]) -> str:
    """A figure for each stream of the scenario, "-" for those the run did not read."""
    return " / ".join(str(value(stream)) if stream in row.streams else "-" for stream in LATENCY_STREAMS)


def latency_markdown(result: LatencyResult) -> str:
    size = result.size
    lines = [
        "",
        "## Parallel reads under latency",
        "",
        f"Every API GET waits {size.latency * 1000:.0f} ms (the fake's `latency`), with no rate limit: "
        f"{size.rows:,} rows in each core stream over {size.days:g} days, and the day streams "
        f"({', '.join(DAY_STREAMS)}: a request a day) from `start_date` {size.days:g} days back. "
        "Sequential bound: total requests x latency. Parallel bound: the slowest stream's requests x latency "
        "/ its parts read at once (a core stream's parts are what the tap logs as `<stream>: read the created "
        "range in <N> parts`, 1 without, at most `workers` at a time; a day stream's days are independent "
        "requests: `workers` at a time). "
        f"Target with several workers: wall / parallel bound <= {PARALLEL_TARGET}. The tap also keeps at most "
        f"{ACCOUNT_IN_FLIGHT} requests in flight in all, so no run can beat the in-flight bound (sequential "
        f"bound / the lesser of {ACCOUNT_IN_FLIGHT} and workers x streams) either; the last ratio is against "
        f"the larger of the two. The default `workers` is {default_workers()}.",
        "",
        f"| tap | workers | wall s | requests ({' / '.join(LATENCY_STREAMS)}) | parts | sequential bound s "
        "| parallel bound s | wall / sequential bound | wall / parallel bound | within target | in-flight bound s "
        "| wall / larger bound |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in result.runs:
        ratio = row.run.wall / row.parallel_bound
        lines.append(
            f"| {row.tap} | {row.workers} | {row.run.wall:.1f} | {per_stream(row, row.requests)} | "
            f"{per_stream(row, row.parts)} | {row.sequential_bound:.1f} | "
            f"{row.parallel_bound:.1f} | {row.run.wall / row.sequential_bound:.2f} | {ratio:.2f} | "
            f"{verdict(ratio, PARALLEL_TARGET) if row.workers > 1 else ''} | {row.in_flight_bound:.1f} | "
            f"{row.run.wall / row.least:.2f} |")
    lines += [
        "",
        "### The day streams' backfill alone",
        "",
        f"Only {' and '.join(DAY_STREAMS)} selected, the same days and latency. Target: wall / wall with "
        f"`workers: 1` <= {BACKFILL_TARGET}.",
        "",
        f"| workers | wall s | requests ({' / '.join(DAY_STREAMS)}) | sequential bound s | parallel bound s "
        "| wall / parallel bound | in-flight bound s | wall / larger bound | wall / wall with workers 1 "
        "| within target |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    sequential = next((row.run.wall for row in result.backfills if row.workers == 1), None)
    for row in result.backfills:
        against_one = row.run.wall / sequential if sequential else float("nan")
        lines.append(
            f"| {row.workers} | {row.run.wall:.1f} | {' / '.join(str(row.requests(s)) for s in DAY_STREAMS)} | "
            f"{row.sequential_bound:.1f} | {row.parallel_bound:.1f} | {row.run.wall / row.parallel_bound:.2f} | "
            f"{row.in_flight_bound:.1f} | {row.run.wall / row.least:.2f} | {against_one:.2f} | "
            f"{verdict(against_one, BACKFILL_TARGET) if row.workers > 1 else ''} |")
    return "\n".join(lines) + "\n"


# -- budgets -------------------------------------------------------------------------------------------------

# small's rows under a smaller budget per window, so that a run lasts 10 to 30 s whichever way it is paced.
BUDGET_DATASETS = {
    "full": Dataset("budgets", 5, dict.fromkeys(STREAMS, 2000), rate_budget=10, window_seconds=2.0),
    "tiny": Dataset("budgets-tiny", 2, dict.fromkeys(STREAMS, 150), rate_budget=2, window_seconds=0.5),
}


@dataclass
class BudgetRun:
    shared: bool
    enforced: bool  # whether the fake knows rate_limit_shared (else every endpoint keeps its own budget)
    workers: int
    run: Run
    minimum: float

    @property
    def ratio(self) -> float:
        return self.run.wall / self.minimum if self.minimum else float("nan")

    @property
    def target(self) -> float:
        return SHARED_TARGET if self.shared else SEPARATE_TARGET


def bench_budgets(dataset: Dataset, workers: Sequence[int]) -> List[BudgetRun]:
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    fake = build_fake(dataset, end)
    fake.warm()
    fake.start()
    # Until the fake counts a shared budget it has no such attribute, and setting one changes nothing.
    enforced = hasattr(fake, "rate_limit_shared")
    tap = our_tap()
    runs: List[BudgetRun] = []
    try:
        config = fake.config(start_date=(end - timedelta(days=365.25 * dataset.years + 2)).strftime(TIME_FORMAT))
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            catalog = selected_catalog(tap, fake, config, STREAMS, workdir)
            for shared in (False, True):
                for count in workers:
                    print(f"[budgets] {tap.name}: workers {count}, {dataset.rate_budget} requests per "
                          f"{dataset.window_seconds:g} s {'shared by every endpoint' if shared else 'per endpoint'}",
                          file=sys.stderr)
                    # The previous run's requests must not spend this run's first window.
                    time.sleep(dataset.window_seconds)
                    fake.rate_limit, fake.window_seconds = dataset.rate_budget, dataset.window_seconds
                    fake.rate_limit_shared = shared
                    try:
                        run = run_tap(tap, fake, {**config, "workers": count}, workdir, catalog=catalog,
                                      time_scale=dataset.window_seconds / 60)
                    finally:
                        fake.rate_limit, fake.rate_limit_shared = None, False
                    check(run, tap, "rate-limited sync")
                    minimum = budget_minimum(run, dataset, parallel=count > 1, shared=shared)
                    runs.append(BudgetRun(shared, enforced or not shared, count, run, minimum))
    finally:
        fake.stop()
    return runs


def budgets_markdown(runs: List[BudgetRun], dataset: Dataset) -> str:
    lines = [
        "",
        "## Parallel reads under a rate budget",
        "",
        f"The core streams ({', '.join(f'{dataset.counts[s]:,}' for s in STREAMS)} rows over {dataset.years:g} "
        f"years) under {dataset.rate_budget} requests per {dataset.window_seconds:g} s window, the window standing "
        "in for the API's minute (the tap's own waits scaled by the same factor): one budget per endpoint, then "
        "one budget shared by every endpoint of the v1 API (the fake's `rate_limit_shared`). The minimum is "
        "what the budget allows for the successful requests made, each window after the first costing a full "
        "window: per endpoint, the slowest endpoint's windows with several workers (streams at once) and the "
        "endpoints' windows added up with `workers: 1`; shared, all requests / budget per window. Targets: "
        f"wall / minimum <= {SEPARATE_TARGET} per endpoint, <= {SHARED_TARGET} shared, and no 429.",
        "",
        f"| budget | enforced by the fake | workers | requests ({' / '.join(STREAMS)}) | 429s | wall s "
        "| minimum s | wall / minimum | within target |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in runs:
        requests = " / ".join(str(row.run.requests[s]) for s in STREAMS)
        met = "yes" if row.ratio <= row.target and row.run.rate_limited == 0 else "no"
        lines.append(
            f"| {'shared' if row.shared else 'per endpoint'} | {'yes' if row.enforced else 'no (per endpoint)'} | "
            f"{row.workers} | {requests} | {row.run.rate_limited} | {row.run.wall:.1f} | {row.minimum:.1f} | "
            f"{row.ratio:.2f} | {met if row.enforced else 'not measured'} |")
    return "\n".join(lines) + "\n"

