"""How many requests may be in flight at once: `workers` for each stream, ACCOUNT_IN_FLIGHT for the account.

The cap is per stream because the API's costs are: a stream is an endpoint, whose latency bounds how fast
it can be read, and the streams of a sync are independent, so the run is as slow as its slowest stream,
not as the sum of all. The account's cap keeps a sync of every stream polite to an API that sends no rate
headers; where it does send them, the limiter paces the requests whatever the caps allow.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Optional

# Four streams' worth of the default `workers`: the three core streams and a day stream read at full speed.
ACCOUNT_IN_FLIGHT = 16
# How often a thread waiting for a slot looks up to see whether the run is ending.
POLL_SECONDS = 0.1


class InFlight:
    """Slots for requests: a request takes its stream's, then the account's, and gives both back."""

    def __init__(self, per_stream: int, check: Callable[[], None], account: int = ACCOUNT_IN_FLIGHT):
        self.per_stream = max(1, per_stream)
        # With one worker per stream the streams are read one after another: one request in flight in all.
        self.account = 1 if self.per_stream == 1 else max(self.per_stream, account)
        self._check = check
        self._account = threading.BoundedSemaphore(self.account)
        self._streams: Dict[Optional[str], threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def _stream(self, stream: Optional[str]) -> threading.BoundedSemaphore:
        with self._lock:
            slots = self._streams.get(stream)
            if slots is None:
                slots = self._streams[stream] = threading.BoundedSemaphore(self.per_stream)
            return slots

    def take(self, stream: Optional[str]) -> None:
        """Wait for a slot of `stream` (None: requests of no stream) and one of the account's; a run that
        is ending raises the cancellation's exception instead, holding neither."""
        own = self._stream(stream)
        self._acquire(own)
        try:
            self._acquire(self._account)
        except BaseException:
            own.release()
            raise

    def release(self, stream: Optional[str]) -> None:
        self._account.release()
        self._stream(stream).release()

    def _acquire(self, slots: threading.BoundedSemaphore) -> None:
        while not slots.acquire(timeout=POLL_SECONDS):
            self._check()
        try:
            self._check()
        except BaseException:
            slots.release()
            raise
