"""Benchmark tap-wootric against the ideal and against the original tap-wootric 0.5.3.

Starts the fake API (tests/fake_wootric.py) with seeded datasets and, for each one, runs both taps
through their real command lines:

- a full sync with the fake answering at once: requests per stream against ceil(N/50), wall time,
  records per second, peak RSS, and coverage (distinct records emitted against the truth);
- an incremental run from that sync's final state with nothing new at the source;
- a full sync under a rate budget of B requests per window per endpoint, the window standing in
  for the API's minute (the tap's own waits are scaled by the same factor), against the least
  time the budget allows.

    python benchmarks/run.py                       # small, sparse and large; writes nothing
    python benchmarks/run.py --markdown docs/benchmarks.md
    python benchmarks/run.py --datasets smoke      # seconds; what CI runs

The parallel reads (this tap with `workers: 1` and with several workers), each scenario by its flag:

    python benchmarks/run.py --datasets none --latency --budgets --edits [--workers 4]
    python benchmarks/run.py --datasets none --latency --budgets --edits --tiny   # seconds: a smoke check

- `--latency`: 150 ms per request, the core and day streams, against sequential and parallel bounds;
  then the day streams' backfill alone (`--original-latency` adds 0.5.3, about 10 minutes);
- `--budgets`: the core streams under a budget per endpoint and under one budget for every endpoint;
- `--edits`: 2,000 edits spread over a year of 3,000 responses, in worlds A and B (`--edits large` adds
  the edits scenario on `large` in every world).

The original tap is installed from PyPI into benchmarks/.venv-original on first use.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from harness import (
    STREAMS,
    Burst,
    Dataset,
    FakeWootric,
    Run,
    Tap,
    budget_minimum,
    build_fake,
    check,
    ideal,
    original_tap,
    our_tap,
    run_tap,
    spread,
)
from parallel_scenarios import (
    BUDGET_DATASETS,
    LATENCY_SIZES,
    bench_budgets,
    bench_latency,
    budgets_markdown,
    default_workers,
    latency_markdown,
    worker_counts,
)

REQUEST_TARGET_FACTOR, REQUEST_TARGET_SLACK = 1.05, 2


DATASETS = {
    "smoke": Dataset("smoke", 2, {"end_users": 150, "responses": 260, "declines": 120},
                     (Burst("responses", 120, 40, 0),), rate_budget=4, window_seconds=0.5),
    "sparse": Dataset("sparse", 8, {"end_users": 50, "responses": 50, "declines": 50}),
    "small": Dataset("small", 5, {"end_users": 2000, "responses": 2000, "declines": 2000}, rate_budget=10),
    "large": Dataset("large", 5, {"end_users": 20000, "responses": 100000, "declines": 20000}, (
        # Import days: thousands of rows inside one hour.
        Burst("responses", 3000, 400, 3600), Burst("responses", 3000, 700, 3600),
        Burst("responses", 3000, 1100, 3600), Burst("end_users", 4000, 300, 3600, "updated_at"),
        Burst("declines", 2000, 500, 3600),
        # And 300 rows in one second.
        Burst("responses", 300, 90, 0), Burst("end_users", 300, 60, 0, "updated_at"),
        Burst("declines", 300, 120, 0),
    )),
}


# -- a dataset ---------------------------------------------------------------------------------------------


@dataclass
class TapResult:
    tap: str
    full: Run
    incremental: Run
    incremental_no_pass: Run
    incremental_honoured: Run
    limited: Optional[Run]
    limited_minimum: float = 0.0


@dataclass
class DatasetResult:
    dataset: Dataset
    truth: Dict[str, int]
    taps: List[TapResult] = field(default_factory=list)


def bench_dataset(dataset: Dataset, taps: List[Tap], rate_limited: bool) -> DatasetResult:
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    fake = build_fake(dataset, end)
    fake.warm()  # both taps then meet an equally warm fake, whichever runs first
    fake.start()
    try:
        truth_ids = {stream: fake.ids(stream) for stream in STREAMS}
        result = DatasetResult(dataset, {s: len(ids) for s, ids in truth_ids.items()})
        start_date = (end - timedelta(days=365.25 * dataset.years + 2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        config = {**fake.config(start_date=start_date)}
        for tap in taps:
            with tempfile.TemporaryDirectory() as tmp:
                workdir = Path(tmp)
                print(f"[{dataset.name}] {tap.name}: full sync", file=sys.stderr)
                full = run_tap(tap, fake, config, workdir)
                check(full, tap, "full sync")
                for stream in STREAMS:
                    full.distinct[stream] &= truth_ids[stream]
                print(f"[{dataset.name}] {tap.name}: incremental run, nothing new", file=sys.stderr)
                incremental = run_tap(tap, fake, config, workdir, state=full.final_state)
                check(incremental, tap, "incremental run")
                # The read strategies alone (no reconciliation slice), in the fake's default world B and in A.
                no_pass = {**config, "reconcile_runs": 0}
                print(f"[{dataset.name}] {tap.name}: incremental run, nothing new, no pass", file=sys.stderr)
                incremental_b = run_tap(tap, fake, no_pass, workdir, state=full.final_state)
                check(incremental_b, tap, "incremental run")
                print(f"[{dataset.name}] {tap.name}: incremental run, nothing new, no pass, updated[...] honoured",
                      file=sys.stderr)
                fake.honour_updated_filter = {"responses", "declines"}
                try:
                    incremental_honoured = run_tap(tap, fake, no_pass, workdir, state=full.final_state)
                finally:
                    fake.honour_updated_filter = set()
                check(incremental_honoured, tap, "incremental run")
                limited = None
                minimum = 0.0
                if rate_limited and tap.rate_limited:
                    print(f"[{dataset.name}] {tap.name}: full sync under a budget of {dataset.rate_budget} "
                          f"requests per {dataset.window_seconds:g} s", file=sys.stderr)
                    fake.rate_limit, fake.window_seconds = dataset.rate_budget, dataset.window_seconds
                    try:
                        limited = run_tap(tap, fake, config, workdir, time_scale=dataset.window_seconds / 60)
                    finally:
                        fake.rate_limit = None
                    check(limited, tap, "rate-limited sync")
                    # This tap reads the streams at once (its default workers); 0.5.3 one after another.
                    minimum = budget_minimum(limited, dataset,
                                             parallel=tap.name == our_tap().name and default_workers() > 1)
                result.taps.append(TapResult(tap.name, full, incremental, incremental_b, incremental_honoured, limited,
                                             minimum))
        return result
    finally:
        fake.stop()


# -- report ------------------------------------------------------------------------------------------------


def request_target(n: int) -> float:
    return REQUEST_TARGET_FACTOR * ideal(n) + REQUEST_TARGET_SLACK


def markdown(results: List[DatasetResult], command: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on {platform.machine()} ({os.cpu_count()} cores), "
        f"Python {platform.python_version()}, by",
        "",
        "```bash",
        command,
        "```",
    ]
    if not results:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "Both taps run through their command lines against the fake API in `tests/fake_wootric.py` "
        "(50 records a page, 30 pages a query, times in whole seconds). The fake runs in the benchmark's "
        "process with no simulated latency, its pages rendered before either tap runs so that neither "
        "pays for the fake's first pass; its own work (under 1 ms a request) is part of the wall "
        "time, so `tap CPU s` (the tap process's user + system time) shows the taps' own cost. "
        "`ideal` is ceil(N/50) list requests; the target is at most 1.05 x ideal + 2 per stream.",
        "",
        "## Requests and coverage (full sync)",
        "",
        "| dataset | tap | stream | records at source | distinct emitted | coverage | requests | ideal "
        "| ratio | within target |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        for tap in result.taps:
            for stream in STREAMS:
                n = result.truth[stream]
                got = len(tap.full.distinct[stream])
                requests = tap.full.requests[stream]
                lines.append(
                    f"| {result.dataset.name} | {tap.tap} | {stream} | {n:,} | {got:,} | "
                    f"{100 * got / n if n else 100:.2f}% | {requests:,} | {ideal(n):,} | "
                    f"{requests / ideal(n):.2f} | {'yes' if requests <= request_target(n) else 'no'} |")
    lines += [
        "",
        "## Speed, memory and incremental cost",
        "",
        "Incremental: a second run from the first run's final state with nothing new at the source; "
        "list requests per stream (end_users / responses / declines) plus OAuth token requests. With "
        "tap-wootric's defaults the run also reads its tenth of each stream for the reconciliation pass "
        "(`reconcile_runs: 10`), which re-emits those rows (`incremental records`). The last two columns "
        "are the read strategies alone (`reconcile_runs: 0`): in the fake's default world, which sorts "
        "/responses on `updated_at` but ignores `updated[...]` (strategy B; declines are never edited, so "
        "they take the created keyset), and where it honours `updated[...]` as well (strategy A). Each "
        "figure includes the two probe requests on responses and declines. tap-wootric 0.5.3 knows no "
        "such setting and rescans everything every run.",
        "",
        "| dataset | tap | records emitted | wall s | records/s | tap CPU s | records per CPU s | peak RSS MB "
        "| incremental requests (defaults) | incremental records (defaults) | incremental requests, no pass "
        "(world B) | incremental requests, no pass (world A) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for result in results:
        for tap in result.taps:
            full, inc = tap.full, tap.incremental

            def per_stream(run: Run) -> str:
                return " / ".join(str(run.requests[s]) for s in STREAMS) + f" + {run.token_requests} token"

            lines.append(
                f"| {result.dataset.name} | {tap.tap} | {full.records:,} | {full.wall:.2f} | "
                f"{full.records / full.wall:,.0f} | {full.cpu:.2f} | {full.records / full.cpu:,.0f} | "
                f"{full.peak_rss_mb:.0f} | {per_stream(inc)} | {inc.records:,} | {per_stream(tap.incremental_no_pass)} "
                f"| {per_stream(tap.incremental_honoured)} |")
    limited_rows = [(r, t) for r in results for t in r.taps if t.limited is not None]
    if limited_rows:
        lines += [
            "",
            "## Under a rate budget",
            "",
            "The fake enforces a budget of B requests per window per endpoint and sends "
            "`X-Rate-Limit-Limit/Remaining/Reset`; the window stands in for the API's minute, and "
            "tap-wootric's own waits are scaled by the same factor (`TAP_WOOTRIC_TIME_SCALE`). The "
            "minimum is what the budget allows for the successful requests the run made: each "
            "stream's requests beyond its first window cost one full window each, the streams' windows "
            "added up for a tap that reads them one after another (0.5.3) and the slowest stream's for "
            "one that reads them at once (this tap's default workers). On `large` this tap's own CPU "
            "(about 17 s for 140,000 records on this machine) bounds the run more than the budget does.",
            "",
            "| dataset | tap | budget | requests | 429s provoked | wall s | budget minimum s | ratio |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for result, tap in limited_rows:
            run = tap.limited
            assert run is not None
            minimum = max(tap.limited_minimum, tap.full.wall)
            lines.append(
                f"| {result.dataset.name} | {tap.tap} | {result.dataset.rate_budget} per "
                f"{result.dataset.window_seconds:g} s | {sum(run.requests.values()):,} | {run.rate_limited} | "
                f"{run.wall:.1f} | {tap.limited_minimum:.1f} | {run.wall / minimum:.2f} |")
    return "\n".join(lines) + "\n"


# -- the edits scenario --------------------------------------------------------------------------------------

# API worlds the fake can express on /responses: (updated[...] honoured, sort_key=updated_at honoured).
WORLDS = {"A (filter and sort)": (True, True), "B (sort only)": (False, True),
          "filter only": (True, False), "C (neither)": (False, False)}
EDIT_COUNTS = (50, 2000)
# Edits of every age: most of a year's responses edited, spread uniformly over the whole history, so the
# newest-first walk meets edits in every part of the created range.
EVERY_AGE = {"full": (Dataset("every-age", 1, {"end_users": 600, "responses": 3000, "declines": 300}), 2000),
             "tiny": (Dataset("every-age-tiny", 1, {"end_users": 60, "responses": 300, "declines": 30}), 200)}
EVERY_AGE_WORLDS = ("A (filter and sort)", "B (sort only)")
EVERY_AGE_FACTOR, EVERY_AGE_SLACK = 1.25, 5


@dataclass
class EditsRow:
    world: str
    tap: str
    edits: int
    requests: int
    caught: int
    slice_requests: Optional[int] = None  # the same run with the default reconcile_runs


def set_world(fake: FakeWootric, world: str) -> None:
    honour_filter, honour_sort = WORLDS[world]
    fake.honour_updated_filter = {"responses"} if honour_filter else set()
    fake.ignore_updated_sort = set() if honour_sort else {"responses"}


def bench_edits(dataset: Dataset, taps: List[Tap], worlds: Sequence[str] = tuple(WORLDS),
                counts: Sequence[int] = EDIT_COUNTS) -> List[EditsRow]:
    """After a full sync, edit E responses spread over the whole history; the next run's requests to
    /responses and how many of the edits it emitted at their new version, in each API world. Each count
    adds to the edits of the one before it."""
    rows: List[EditsRow] = []
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    start_date = (end - timedelta(days=365.25 * dataset.years + 2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for world in worlds:
        for tap in taps:
            if not tap.scalable and world != "B (sort only)":
                continue  # 0.5.3 sends neither updated[...] nor the sort to /responses: one world is enough
            fake = build_fake(dataset, end)
            fake.warm()
            fake.start()
            try:
                set_world(fake, world)
                config = fake.config(start_date=start_date)
                with tempfile.TemporaryDirectory() as tmp:
                    workdir = Path(tmp)
                    print(f"[edits, {world}] {tap.name}: full sync", file=sys.stderr)
                    full = run_tap(tap, fake, config, workdir)
                    check(full, tap, "full sync")
                    ids = sorted(fake.ids("responses"))
                    edited: List[int] = []
                    for count in counts:
                        for record_id in spread(ids, count):
                            if record_id not in edited:
                                fake.update("responses", record_id, text=f"edited {count}")
                                edited.append(record_id)
                        time.sleep(1)  # the edits lie before the next run's start second
                        print(f"[edits, {world}] {tap.name}: {len(edited)} edits", file=sys.stderr)
                        run = run_tap(tap, fake, {**config, "reconcile_runs": 0}, workdir, state=full.final_state)
                        check(run, tap, "run after the edits")
                        slice_requests = None
                        if tap.scalable:
                            with_pass = run_tap(tap, fake, config, workdir, state=full.final_state)
                            slice_requests = with_pass.requests["responses"] - run.requests["responses"]
                        caught = len(run.distinct["responses"] & set(edited))
                        rows.append(EditsRow(world, tap.name, len(edited), run.requests["responses"], caught,
                                             slice_requests))
            finally:
                fake.stop()
    return rows


def edits_markdown(rows: List[EditsRow], dataset: Dataset) -> str:
    lines = [
        "",
        f"## Edits: the run after E edits to responses spread over the whole history ({dataset.name})",
        "",
        "After a full sync, E responses spread evenly over the history are edited; the next run starts "
        "from the full sync's state. `requests` are to /responses (probes included) with "
        "`reconcile_runs: 0`, so they are the read strategy's own cost; `edits caught` counts the edited "
        "rows the run emitted. `+ pass slice` is what the default `reconcile_runs` (10) adds to that run. "
        "In world C, edits older than the 30-day lookback are caught by the reconciliation pass, within "
        "`reconcile_runs` runs, not by the next run.",
        "",
        "| API world | tap | E | requests | ceil(E/50) | edits caught | + pass slice |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row.world} | {row.tap} | {row.edits:,} | {row.requests:,} | {ideal(row.edits):,} | "
                     f"{row.caught:,} ({100 * row.caught / row.edits:.1f}%) | "
                     f"{'' if row.slice_requests is None else row.slice_requests} |")
    return "\n".join(lines) + "\n"


def every_age_markdown(rows: List[EditsRow], dataset: Dataset, edits: int) -> str:
    lines = [
        "",
        f"## Edits of every age: {edits:,} edits spread over a year of {dataset.counts['responses']:,} responses",
        "",
        f"{dataset.counts['responses']:,} responses created over {dataset.years:g} year; after a full sync, "
        "E of them, spread evenly over the whole history, are edited, and the next run (`reconcile_runs: 0`) "
        "starts from the full sync's state. `requests` are to /responses, probes included. Target: at most "
        f"{EVERY_AGE_FACTOR} x ceil(E/50) + {EVERY_AGE_SLACK}, every edit caught.",
        "",
        "| API world | tap | E | requests | ceil(E/50) | target | within target | edits caught |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        target = EVERY_AGE_FACTOR * ideal(row.edits) + EVERY_AGE_SLACK
        met = row.requests <= target and row.caught == row.edits
        lines.append(f"| {row.world} | {row.tap} | {row.edits:,} | {row.requests:,} | {ideal(row.edits):,} | "
                     f"{target:g} | {'yes' if met else 'no'} | {row.caught:,} ({100 * row.caught / row.edits:.1f}%) |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="small,sparse,large",
                        help=f"comma-separated, from {', '.join(DATASETS)}")
    parser.add_argument("--no-original", action="store_true", help="skip tap-wootric 0.5.3")
    parser.add_argument("--no-rate-limit", action="store_true", help="skip the rate-limited runs")
    parser.add_argument("--original-rate-limited", action="store_true",
                        help="also run 0.5.3 under the rate budget (slow: it ignores the budget headers and "
                             "backs off 2, 4, 8 ... real seconds per 429)")
    parser.add_argument("--edits", metavar="DATASET", nargs="?", const="", choices=["", *sorted(DATASETS)],
                        help="also run the edits of every age (2,000 edits spread over a year of 3,000 responses, "
                             "worlds A and B) and, given a dataset, the edits scenario on it (each API world the "
                             "fake can express, E = 50 and 2,000 edited rows spread over the history)")
    parser.add_argument("--latency", action="store_true",
                        help="also run the parallel reads with 150 ms per request (about 10 minutes)")
    parser.add_argument("--original-latency", action="store_true",
                        help="also run 0.5.3 in the latency scenario, on the core streams (about 10 minutes more)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="the several-workers runs of --latency and --budgets use N workers (default: the "
                             "tap's default workers)")
    parser.add_argument("--budgets", action="store_true",
                        help="also run the core streams under a budget per endpoint and under one shared budget, "
                             "with workers 1 and several")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes for --latency, --budgets and --edits' every-age case (a smoke check)")
    parser.add_argument("--markdown", help="also write the report to this file")
    args = parser.parse_args(argv)
    # "none" (or nothing) runs only the scenarios asked for by the other flags.
    names = [name.strip() for name in args.datasets.split(",") if name.strip() not in ("", "none")]
    unknown = [name for name in names if name not in DATASETS]
    if unknown:
        parser.error(f"unknown datasets: {', '.join(unknown)}")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    size = "tiny" if args.tiny else "full"
    with_original = not args.no_original and bool(names or args.edits)
    taps = [our_tap()] + ([original_tap(args.original_rate_limited)] if with_original else [])
    results = [bench_dataset(DATASETS[name], taps, not args.no_rate_limit) for name in names]
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = markdown(results, command.strip())
    if args.edits:
        report += edits_markdown(bench_edits(DATASETS[args.edits], taps), DATASETS[args.edits])
    if args.edits is not None:
        dataset, edits = EVERY_AGE[size]
        report += every_age_markdown(bench_edits(dataset, taps[:1], EVERY_AGE_WORLDS, (edits,)), dataset, edits)
    if args.latency or args.original_latency:
        original = original_tap(False) if args.original_latency else None
        report += latency_markdown(bench_latency(LATENCY_SIZES[size], worker_counts(args.workers), original))
    if args.budgets:
        dataset = BUDGET_DATASETS[size]
        report += budgets_markdown(bench_budgets(dataset, worker_counts(args.workers)), dataset)
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
