"""Tap CPU side by side against an instantly answering fake: medians of several rounds, the runs of a round one
after another, so that a busy machine slows every tap alike.

    python benchmarks/cpu.py large --rounds 3 4 1 orig
    python benchmarks/cpu.py large --rounds 3 --base ../checkout-of-main 4 base4 orig

A setting is a number of `workers` for this tap (`reconcile_runs: 0`, a first sync), `base<N>` the same for the
code of another checkout (`--base`, put first on PYTHONPATH), or `orig` for tap-wootric 0.5.3 (installed by
harness.py on first use). Each line gives the median CPU seconds, records per CPU second and, with `orig`
among the settings, that against 0.5.3's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import build_fake, original_tap, our_tap, run_tap  # noqa: E402
from run import DATASETS  # noqa: E402


def measure(dataset: str, rounds: int, settings: List[str], base: Optional[str]) -> Dict[str, List[Tuple[float, int]]]:
    fake = build_fake(DATASETS[dataset], datetime.now(timezone.utc)).start()
    fake.warm()  # every row rendered now: the runs measure the tap, not the fake's first pass
    runs: Dict[str, List[Tuple[float, int]]] = {setting: [] for setting in settings}
    try:
        for _ in range(rounds):
            for setting in settings:
                env_before = os.environ.get("PYTHONPATH")
                if setting.startswith("base"):
                    os.environ["PYTHONPATH"] = str(Path(base or ".").resolve())
                tap = original_tap(False) if setting == "orig" else our_tap()
                workers = setting.removeprefix("base")
                config = fake.config() if setting == "orig" else fake.config(workers=int(workers), reconcile_runs=0)
                result = run_tap(tap, fake, config, Path(tempfile.mkdtemp()))
                os.environ.pop("PYTHONPATH", None)
                if env_before is not None:
                    os.environ["PYTHONPATH"] = env_before
                runs[setting].append((result.cpu, result.records))
    finally:
        fake.stop()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("settings", nargs="+", help="workers (4, 1), base<workers> (base4) or orig")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", help="a checkout whose code the base<N> settings run")
    args = parser.parse_args()
    runs = measure(args.dataset, args.rounds, args.settings, args.base)
    rates = {setting: statistics.median(records / cpu for cpu, records in rs) for setting, rs in runs.items()}
    for setting, rs in runs.items():
        against = f"  {rates[setting] / rates['orig']:.2f} x 0.5.3" if "orig" in rates else ""
        print(f"{args.dataset} {setting:>6}: CPU median {statistics.median(cpu for cpu, _ in rs):6.2f} s, "
              f"{rs[0][1]} records, {rates[setting]:7.0f} records per CPU s{against}  "
              f"(runs: {', '.join(f'{cpu:.2f}' for cpu, _ in rs)})")


if __name__ == "__main__":
    main()
