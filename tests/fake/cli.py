"""``python -m fake`` (from tests/) or ``python tests/fake_wootric.py``: serve a fake filled with generated data
until SIGTERM or SIGINT, after printing a tap config for it on one line."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import timedelta

from .common import utc_now
from .server import FakeWootric


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake Wootric API filled with generated data.")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-users", type=int, default=300)
    parser.add_argument("--responses", type=int, default=1200)
    parser.add_argument("--declines", type=int, default=200)
    parser.add_argument("--years", type=float, default=3, help="span of the data, ending one hour ago")
    parser.add_argument("--token-ttl", type=int, default=7200, help="access token lifetime in seconds")
    args = parser.parse_args(argv)

    fake = FakeWootric(seed=args.seed, token_ttl=args.token_ttl)
    end = utc_now() - timedelta(hours=1)
    start = end - timedelta(days=365.25 * args.years)
    # End users first, so that responses and declines point at existing users.
    for stream, count in (("end_users", args.end_users), ("responses", args.responses), ("declines", args.declines)):
        fake.generate(stream, count, start, end)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    fake.start(args.port)
    config = fake.config()
    del config["start_date"]  # the user's choice
    print(json.dumps(config), flush=True)
    # A timed wait keeps the main thread responsive to signals on every platform.
    while not stopping.wait(0.5):
        pass
    fake.stop()
    return 0
