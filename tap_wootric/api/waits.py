"""How long each thread's requests have left the whole tap idle: the evidence that reading more at once pays.

A request's round trip (sending it, waiting for the answer, reading the body; not the waits for the rate
budget or a free slot before it) counts for the part of its wall time the process did not spend on the CPU:
time that no thread of the tap had work for. Against an API with latency that is nearly the whole round
trip; against one that answers at once, while other threads transform and write, it is nearly none.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

_totals = threading.local()


def idle_seconds() -> float:
    """The idle time of this thread's round trips so far."""
    return getattr(_totals, "idle", 0.0)


@contextmanager
def round_trip(wall: Callable[[], float] = time.perf_counter,
               cpu: Callable[[], float] = time.process_time) -> Iterator[None]:
    """Count the block as a round trip of this thread (see the module's docstring)."""
    started, used = wall(), cpu()
    try:
        yield
    finally:
        idle = (wall() - started) - (cpu() - used)
        if idle > 0:
            _totals.idle = idle_seconds() + idle
