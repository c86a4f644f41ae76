"""What every benchmark scenario shares: seeded datasets in the fake API, the two taps, and one run of a
tap through its real command line, measured (requests per path, wall and CPU time, peak RSS, records,
the tap's partition lines)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake import STREAMS, FakeWootric  # noqa: E402
from helpers import select  # noqa: E402

ORIGINAL_VENV = HERE / ".venv-original"
ORIGINAL_VERSION = "0.5.3"
PER_PAGE = 50
# What the tap logs when it splits a stream's created range into parts read at once.
PARTS_LINE = re.compile(r"\b(\w+): read the created range in (\d+) parts")


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


def spread(ids: Sequence[int], count: int) -> List[int]:
    """`count` of the ids evenly spaced over the whole list (all of them if there are fewer)."""
    count = min(count, len(ids))
    return [ids[i * len(ids) // count] for i in range(count)]


# -- the two taps ------------------------------------------------------------------------------------------


@dataclass
class Tap:
    name: str
    argv: List[str]
    scalable: bool  # takes TAP_WOOTRIC_TIME_SCALE; also: this tap, with a catalog and the newer settings
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


def selected_catalog(tap: Tap, fake: FakeWootric, config: Dict[str, Any], streams: Sequence[str],
                     workdir: Path) -> Dict[str, Any]:
    """This tap's discovered catalog with exactly these streams selected."""
    config_path = workdir / "discover-config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.run([*tap.argv, "--config", str(config_path), "--discover"], capture_output=True, text=True,
                          env=tap.env(fake, 1.0), check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{tap.name} --discover failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return select(json.loads(proc.stdout), {name: None for name in streams})


# -- one run -----------------------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    wall: float
    cpu: float  # the tap's own user + system CPU seconds
    peak_rss_mb: float
    paths: Dict[str, int]  # API GETs per path, whatever their status
    ok_paths: Dict[str, int]  # the same, answered 200
    token_requests: int
    rate_limited: int
    emitted: Dict[str, int]
    distinct: Dict[str, set]
    final_state: Optional[Dict[str, Any]]
    partitions: Dict[str, int]  # streams whose created range the tap split: into how many parts
    stderr_tail: str = ""

    @property
    def records(self) -> int:
        return sum(self.emitted.values())

    @property
    def requests(self) -> Dict[str, int]:
        """List requests of each core stream."""
        return {stream: self.paths.get(f"/v1/{stream}", 0) for stream in STREAMS}

    @property
    def ok_requests(self) -> Dict[str, int]:
        return {stream: self.ok_paths.get(f"/v1/{stream}", 0) for stream in STREAMS}


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
            state: Optional[Dict[str, Any]] = None, time_scale: float = 1.0,
            catalog: Optional[Dict[str, Any]] = None) -> Run:
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    argv = [*tap.argv, "--config", str(config_path)]
    if state is not None:
        state_path = workdir / "state.json"
        state_path.write_text(json.dumps(state))
        argv += ["--state", str(state_path)]
    if catalog is not None:
        catalog_path = workdir / "catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        argv += ["--catalog", str(catalog_path)]
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

    emitted: Dict[str, int] = defaultdict(int, {stream: 0 for stream in STREAMS})
    distinct: Dict[str, set] = defaultdict(set, {stream: set() for stream in STREAMS})
    final_state = None
    with open(out_path) as out:
        for line in out:
            message = json.loads(line)
            if message["type"] == "RECORD":
                record = message["record"]
                emitted[message["stream"]] += 1
                # Day streams have no id: a day is their key.
                distinct[message["stream"]].add(record["id"] if "id" in record else record.get("date"))
            elif message["type"] == "STATE":
                final_state = message["value"]
    paths: Dict[str, int] = defaultdict(int)
    ok_paths: Dict[str, int] = defaultdict(int)
    for entry in fake.requests:
        if entry["method"] == "GET":
            paths[entry["path"]] += 1
            ok_paths[entry["path"]] += entry["status"] == 200
    stderr = err_path.read_text()
    partitions = {match.group(1): int(match.group(2)) for match in PARTS_LINE.finditer(stderr)}
    return Run(proc.returncode, wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024, dict(paths), dict(ok_paths),
               sum(1 for r in fake.requests if r["path"] == "/oauth/token"),
               sum(1 for r in fake.requests if r["status"] == 429), emitted, distinct, final_state, partitions,
               stderr[-2000:])


def check(run: Run, tap: Tap, what: str) -> None:
    if run.returncode != 0:
        raise SystemExit(f"{tap.name} failed its {what} (exit {run.returncode}):\n{run.stderr_tail}")


# -- bounds ------------------------------------------------------------------------------------------------


def ideal(n: int) -> int:
    return max(1, math.ceil(n / PER_PAGE))


def budget_minimum(run: Run, dataset: Dataset, *, parallel: bool = False, shared: bool = False) -> float:
    """Least wall time the budget allows for the successful requests this run made; each window after the
    first costs a full window. One budget per endpoint: the endpoints' windows add up when streams run one
    after the other, and the slowest endpoint's count when they run at once (`parallel`). One budget
    shared by every endpoint (`shared`): all the requests, in one queue of windows."""
    def windows(requests: int) -> int:
        return max(0, math.ceil(requests / dataset.rate_budget) - 1)

    counts = list(run.ok_paths.values())
    if shared:
        waits = windows(sum(counts))
    elif parallel:
        waits = max(map(windows, counts), default=0)
    else:
        waits = sum(map(windows, counts))
    return waits * dataset.window_seconds
