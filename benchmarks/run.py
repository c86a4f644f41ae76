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

The original tap is installed from PyPI into benchmarks/.venv-original on first use.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake import STREAMS, FakeWootric  # noqa: E402

ORIGINAL_VENV = HERE / ".venv-original"
ORIGINAL_VERSION = "0.5.3"
PER_PAGE = 50
REQUEST_TARGET_FACTOR, REQUEST_TARGET_SLACK = 1.05, 2


@dataclass(frozen=True)
class Burst:
    stream: str
    count: int
    days_before_end: float
    span_seconds: float  # 0: all in one second
    field: str = "created_at"


@dataclass(frozen=True)
class Dataset:
    name: str
    years: float
    counts: Dict[str, int]  # totals, bursts included
    bursts: tuple = ()
    rate_budget: int = 100  # requests per window per endpoint
    window_seconds: float = 1.0


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


def build_fake(dataset: Dataset, end: datetime, seed: int = 2026) -> FakeWootric:
    fake = FakeWootric(seed=seed)
    start = end - timedelta(days=365.25 * dataset.years)
    for stream in STREAMS:  # end users first: responses and declines point at them
        in_bursts = sum(b.count for b in dataset.bursts if b.stream == stream)
        fake.generate(stream, dataset.counts[stream] - in_bursts, start, end)
        for burst in (b for b in dataset.bursts if b.stream == stream):
            at = end - timedelta(days=burst.days_before_end)
            if burst.span_seconds:
                fake.generate(stream, burst.count, at, at + timedelta(seconds=burst.span_seconds))
            else:
                fake.add_burst(stream, at, burst.count, field=burst.field)
    return fake


# -- the two taps ------------------------------------------------------------------------------------------


@dataclass
class Tap:
    name: str
    argv: List[str]
    scalable: bool  # takes TAP_WOOTRIC_TIME_SCALE
    rate_limited: bool = True  # run the rate-limited sync too

    def env(self, fake: FakeWootric, time_scale: float) -> Dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "WOOTRIC_FAKE_URL": fake.url}
        if self.scalable:
            env["TAP_WOOTRIC_TIME_SCALE"] = repr(time_scale)
        return env


def our_tap() -> Tap:
    exe = Path(sys.executable).parent / "tap-wootric"
    return Tap("tap-wootric (this)", [str(exe)], True)


def original_tap(rate_limited: bool) -> Tap:
    python = ORIGINAL_VENV / "bin" / "python"
    if not python.exists():
        print(f"Installing tap-wootric=={ORIGINAL_VERSION} into {ORIGINAL_VENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(ORIGINAL_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"tap-wootric=={ORIGINAL_VERSION}"],
                       check=True)
    return Tap(f"tap-wootric {ORIGINAL_VERSION}", [str(python), str(HERE / "original_wrapper.py")], False,
               rate_limited)


# -- one run -----------------------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    wall: float
    cpu: float  # the tap's own user + system CPU seconds
    peak_rss_mb: float
    requests: Dict[str, int]
    ok_requests: Dict[str, int]
    token_requests: int
    rate_limited: int
    emitted: Dict[str, int]
    distinct: Dict[str, set]
    final_state: Optional[Dict[str, Any]]
    stderr_tail: str = ""

    @property
    def records(self) -> int:
        return sum(self.emitted.values())


def high_water_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # the process has just ended
        pass
    return 0


def run_tap(tap: Tap, fake: FakeWootric, config: Dict[str, Any], workdir: Path, *,
            state: Optional[Dict[str, Any]] = None, time_scale: float = 1.0) -> Run:
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    argv = [*tap.argv, "--config", str(config_path)]
    if state is not None:
        state_path = workdir / "state.json"
        state_path.write_text(json.dumps(state))
        argv += ["--state", str(state_path)]
    out_path, err_path = workdir / "out.jsonl", workdir / "err.log"
    fake.clear_log()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=tap.env(fake, time_scale))
        peak_kb = 0
        # VmHWM of the running process, not wait4's ru_maxrss: Linux carries the high-water mark across
        # exec, so the latter would report the forked copy of this process, fake and data included.
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, high_water_kb(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)

    emitted = {stream: 0 for stream in STREAMS}
    distinct: Dict[str, set] = {stream: set() for stream in STREAMS}
    final_state = None
    with open(out_path) as out:
        for line in out:
            message = json.loads(line)
            if message["type"] == "RECORD":
                emitted[message["stream"]] += 1
                distinct[message["stream"]].add(message["record"]["id"])
            elif message["type"] == "STATE":
                final_state = message["value"]
    log = fake.requests
    requests = {s: sum(1 for r in log if r["path"] == f"/v1/{s}") for s in STREAMS}
    ok = {s: sum(1 for r in log if r["path"] == f"/v1/{s}" and r["status"] == 200) for s in STREAMS}
    return Run(proc.returncode, wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024, requests, ok,
               sum(1 for r in log if r["path"] == "/oauth/token"), sum(1 for r in log if r["status"] == 429),
               emitted, distinct, final_state, err_path.read_text()[-2000:])


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


def budget_minimum(run: Run, dataset: Dataset) -> float:
    """Least wall time the budget allows for the requests this run needed: streams run one after the
    other, each endpoint with its own budget, and each window after the first costs a full window."""
    waits = sum(max(0, math.ceil(n / dataset.rate_budget) - 1) for n in run.ok_requests.values())
    return waits * dataset.window_seconds


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
                    minimum = budget_minimum(limited, dataset)
                result.taps.append(TapResult(tap.name, full, incremental, incremental_b, incremental_honoured, limited,
                                             minimum))
        return result
    finally:
        fake.stop()


def check(run: Run, tap: Tap, what: str) -> None:
    if run.returncode != 0:
        raise SystemExit(f"{tap.name} failed its {what} (exit {run.returncode}):\n{run.stderr_tail}")


# -- report ------------------------------------------------------------------------------------------------


def ideal(n: int) -> int:
    return max(1, math.ceil(n / PER_PAGE))


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
            "stream's requests beyond its first window cost one full window each.",
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


def bench_edits(dataset: Dataset, taps: List[Tap]) -> List[EditsRow]:
    """After a full sync, edit E responses spread over the whole history; the next run's requests to
    /responses and how many of the edits it emitted at their new version, in each API world."""
    rows: List[EditsRow] = []
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    start_date = (end - timedelta(days=365.25 * dataset.years + 2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for world in WORLDS:
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
                    for count in EDIT_COUNTS:
                        step = len(ids) // count
                        for record_id in ids[::step][:count]:
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="small,sparse,large",
                        help=f"comma-separated, from {', '.join(DATASETS)}")
    parser.add_argument("--no-original", action="store_true", help="skip tap-wootric 0.5.3")
    parser.add_argument("--no-rate-limit", action="store_true", help="skip the rate-limited runs")
    parser.add_argument("--original-rate-limited", action="store_true",
                        help="also run 0.5.3 under the rate budget (slow: it ignores the budget headers and "
                             "backs off 2, 4, 8 ... real seconds per 429)")
    parser.add_argument("--edits", metavar="DATASET", choices=sorted(DATASETS),
                        help="also run the edits scenario on this dataset (each API world the fake can express, "
                             "E = 50 and 2,000 edited rows spread over the history)")
    parser.add_argument("--markdown", help="also write the report to this file")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.datasets.split(",") if name.strip()]
    unknown = [name for name in names if name not in DATASETS]
    if unknown:
        parser.error(f"unknown datasets: {', '.join(unknown)}")
    taps = [our_tap()] + ([] if args.no_original else [original_tap(args.original_rate_limited)])
    results = [bench_dataset(DATASETS[name], taps, not args.no_rate_limit) for name in names]
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = markdown(results, command.strip())
    if args.edits:
        report += edits_markdown(bench_edits(DATASETS[args.edits], taps), DATASETS[args.edits])
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
