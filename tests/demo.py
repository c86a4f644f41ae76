"""`make demo`: discover and sync against the bundled fake API, then summarise what came out.

No Wootric account needed. Output lands in demo-output/: the catalog, the Singer messages,
the final state and the tap's log.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fake import FakeWootric  # noqa: E402

# DEMO_OUTPUT moves the files elsewhere (the test of the demo uses it).
OUT = Path(os.environ.get("DEMO_OUTPUT") or Path(__file__).resolve().parent.parent / "demo-output")
TAP = str(Path(sys.executable).parent / "tap-wootric")
# Incremental streams: "... records emitted, N older unchanged rows skipped, N requests, ..."; FULL_TABLE
# streams: "... records emitted (full table, version N), N requests, ...".
DONE = re.compile(r"(\w+): done: (\d+) records? emitted(?:, \d+ older unchanged rows skipped| \([^)]*\)), "
                  r"(\d+) requests?, ([\d.]+) s")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    fake = FakeWootric(seed=2026)
    end = datetime.now(timezone.utc) - timedelta(hours=1)
    for stream, count in (("end_users", 400), ("responses", 2400), ("declines", 300)):
        fake.generate(stream, count, end - timedelta(days=2 * 365), end)
    fake.generate_segments(12)
    fake.start()
    try:
        config = OUT / "config.json"
        config.write_text(json.dumps(fake.config(start_date="2020-01-01T00:00:00Z"), indent=2))
        print(f"Fake Wootric API on {fake.url}; config in {config}")
        catalog = OUT / "catalog.json"
        messages, log = OUT / "messages.jsonl", OUT / "tap.log"
        # Discovery's log goes to the tap's log too: the terminal shows only the summary.
        with catalog.open("w") as handle, log.open("w") as stderr:
            subprocess.run([TAP, "--config", str(config), "--discover"], stdout=handle, stderr=stderr, check=True)
        print(f"Discovered {len(json.loads(catalog.read_text())['streams'])} streams into {catalog}")
        with messages.open("w") as stdout, log.open("a") as stderr:
            subprocess.run([TAP, "--config", str(config), "--catalog", str(catalog)],
                           stdout=stdout, stderr=stderr, check=True)
    finally:
        fake.stop()

    state = None
    months = defaultdict(lambda: [0, 0, 0])  # promoters, passives, detractors
    for line in messages.open():
        message = json.loads(line)
        if message["type"] == "STATE":
            state = message["value"]
        elif message["type"] == "RECORD" and message["stream"] == "responses":
            record = message["record"]
            if not record.get("excluded_from_calculations"):
                score = record["score"]
                months[record["created_at"][:7]][0 if score >= 9 else 1 if score >= 7 else 2] += 1
    (OUT / "state.json").write_text(json.dumps(state, indent=2))

    print(f"\n{'stream':<10} {'records':>8} {'requests':>9} {'ideal':>6} {'seconds':>8}")
    for match in DONE.finditer(log.read_text()):
        stream, records, requests, seconds = match.groups()
        ideal = -(-int(records) // 50)
        print(f"{stream:<10} {records:>8} {requests:>9} {ideal:>6} {seconds:>8}")
    print("(ideal: the fewest requests that can return that many records, at 50 a page)")
    shown = sorted(months)[-12:]
    this_month = datetime.now(timezone.utc).strftime("%Y-%m")
    print(f"\nNPS by month (responses, UTC; the last {len(shown)} of {len(months)} months):")
    for month in shown:
        promoters, passives, detractors = months[month]
        total = promoters + passives + detractors
        nps = round(100 * (promoters - detractors) / total) if total else 0
        partial = "  partial: the month is not over" if month == this_month else ""
        print(f"  {month}  NPS {nps:>4}  ({total} responses){partial}")
    print(f"\nSinger messages: {messages}\nFinal state:     {OUT / 'state.json'}\nTap log:         {log}")


if __name__ == "__main__":
    main()
