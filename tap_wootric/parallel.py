"""Parallel reads: worker threads fetch, the main thread alone writes.

Each selected stream runs in a worker thread with a private copy of its bookmark. Its StreamRun is
given a `QueuedWriter` instead of the MessageWriter, so every SCHEMA, page of RECORDs, STATE and
ACTIVATE_VERSION it would write becomes an item on one bounded queue, in the order the reader made
them. The main thread takes the items in that order and writes them through the one MessageWriter. A
STATE item carries a snapshot of the stream's bookmark taken when the reader saved it, after the items
of every record it covers: the writer copies it into the state it owns and writes that, so a STATE
never covers a record that is not on stdout before it, and never mixes half-updated bookmarks.

Stopping: a signal is handled in the main thread (workers block both signals), which stops taking
items and tells the workers to stop at their next safe point; the last STATE written is the resume
point. A worker's fatal error travels to the main thread as an item, after that worker's earlier
items, and is raised there; the items of other workers still queued are dropped unwritten, their
bookmarks with them.
"""

from __future__ import annotations

import copy
import logging
import queue
import signal
import threading
from collections import deque
from datetime import datetime
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple, TypeVar

from tap_wootric.cancel import STOP_SIGNALS, Cancellation, Cancelled, WorkerStopped

LOGGER = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Items (a page each, at most) waiting for the writer: enough to keep it busy while every worker waits
# on the network, few enough that memory stays flat when stdout is slower than the API.
QUEUE_ITEMS_PER_WORKER = 8
# How often a blocked thread looks up to see whether the run is ending.
POLL_SECONDS = 0.1
# A stream is started beside the running ones when, over at least PACE_SECONDS since the last start, the
# tap spent less than BUSY_SHARE of the time on the CPU (see Pacer).
PACE_SECONDS = 0.5
BUSY_SHARE = 0.5
# How long the main thread waits for workers to notice a stop before it exits anyway (they are daemons).
JOIN_SECONDS = 1.0


def block_stop_signals() -> None:
    """In a worker thread: leave SIGTERM and SIGINT to the main thread, so that they never interrupt a
    worker's system call, and the main thread's masked writes defer them as they should."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def start_worker(name: str, target: Callable[[], None]) -> threading.Thread:
    def body() -> None:
        block_stop_signals()
        target()

    # Daemon: a worker stuck in a request must not hold up the exit of a stopped or failed run.
    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread


class ItemQueue:
    """The bounded queue between the workers and the writer; a put gives up when the run is ending."""

    def __init__(self, workers: int, cancellation: Cancellation):
        self._queue: queue.Queue[Tuple[Any, ...]] = queue.Queue(maxsize=max(1, workers) * QUEUE_ITEMS_PER_WORKER)
        self._cancellation = cancellation

    def put(self, item: Tuple[Any, ...]) -> None:
        while True:
            self._cancellation.check()
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def get(self) -> Optional[Tuple[Any, ...]]:
        """The next item, on the main thread, or None when none came for POLL_SECONDS: a signal ends
        the wait at once (Cancelled)."""
        with self._cancellation.interruptible():
            try:
                return self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                return None


class Pacer:
    """Whether the streams read so far leave the tap waiting, so that one more read at once pays.

    Against an API that answers at once the tap is bound by its own CPU: another stream's thread only
    takes turns on it, and the switching among threads costs a fifth more CPU. Against one with latency,
    or a rate budget that holds requests, the tap mostly waits, and another stream fills the wait. The
    evidence: an API that sends rate-limit headers at all (`limited`: every stream starts at once, so that
    they share each window's budget from the first), a thread sleeping out a spent budget or a backoff right
    now (`waiting`), or else the process's CPU time against the wall time since the last stream was started.
    """

    def __init__(self, wall: Callable[[], float], cpu: Callable[[], float], waiting: Callable[[], int],
                 limited: Callable[[], bool]):
        self._wall = wall
        self._cpu = cpu
        self._waiting = waiting
        self._limited = limited
        self.started()

    def started(self) -> None:
        self._since = (self._wall(), self._cpu())

    def another_pays(self) -> bool:
        if self._waiting() > 0 or self._limited():
            return True
        wall, cpu = self._wall() - self._since[0], self._cpu() - self._since[1]
        return wall >= PACE_SECONDS and cpu < BUSY_SHARE * wall


class QueuedWriter:
    """Stands in for the MessageWriter in a worker's StreamRun: each message becomes a queue item.

    Records are transformed already (on the worker); the writer only encodes them. A STATE item holds a
    deep copy of this stream's bookmark only: the rest of the state is the writer's.
    """

    def __init__(self, stream: str, items: ItemQueue):
        self.stream = stream
        self._items = items

    def schema(self, stream: str, schema: Dict[str, Any], key_properties: List[str],
               bookmark_properties: Optional[List[str]] = None) -> None:
        self._items.put(("schema", stream, schema, key_properties, bookmark_properties))

    def records(self, stream: str, records: Iterable[Dict[str, Any]], time_extracted: datetime,
                version: Optional[int] = None) -> int:
        page = list(records)
        if page:
            self._items.put(("records", stream, page, time_extracted, version))
        return len(page)

    def state(self, value: Dict[str, Any]) -> None:
        bookmark = (value.get("bookmarks") or {}).get(self.stream)
        self._items.put(("state", self.stream, copy.deepcopy(bookmark)))

    def activate_version(self, stream: str, version: int) -> None:
        self._items.put(("activate_version", stream, version))


def ordered_map(fetch: Callable[[T], R], items: Iterable[T], workers: int,
                cancellation: Cancellation) -> Iterator[R]:
    """`fetch` of each item, yielded in the items' order, with up to `workers` fetches at once and at
    most twice that many results held ahead of the consumer. A fetch's exception is raised when its
    turn comes, so everything before it is consumed first, as in a sequential loop. With one worker it
    is a plain loop on the calling thread."""
    if workers <= 1:
        for item in items:
            yield fetch(item)
        return
    source = iter(items)
    lock = threading.Lock()
    slots = threading.Semaphore(2 * workers)  # results fetched or in flight, not yet consumed
    done = threading.Event()
    results: Dict[int, Tuple[bool, Any]] = {}
    arrived = threading.Condition(lock)
    counter = iter(range(1 << 62))

    def take() -> Optional[Tuple[int, T]]:
        with lock:
            for item in source:
                return next(counter), item
            return None

    def work() -> None:
        while not done.is_set():
            while not slots.acquire(timeout=POLL_SECONDS):
                if done.is_set() or cancellation.stopping:
                    return
            task = take()
            if task is None:
                slots.release()
                return
            index, item = task
            try:
                outcome: Tuple[bool, Any] = (True, fetch(item))
            except (WorkerStopped, Cancelled):
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                outcome = (False, exc)
            with arrived:
                results[index] = outcome
                arrived.notify_all()
            if not outcome[0]:
                return

    threads = [start_worker(f"{threading.current_thread().name}-fetch-{n}", work) for n in range(workers)]
    try:
        index = 0
        while True:
            with arrived:
                while index not in results:
                    if not any(thread.is_alive() for thread in threads) and index not in results:
                        # The fetchers ran out of items, or were told to stop: only the first ends the loop.
                        cancellation.check()
                        return
                    arrived.wait(POLL_SECONDS)
                    cancellation.check()
                ok, value = results.pop(index)
            slots.release()
            if not ok:
                raise value
            yield value
            index += 1
    finally:
        done.set()


class StreamPool:
    """Hands the selected streams, in order, to the workers that ask for the next one."""

    def __init__(self, names: List[str], skip: Callable[[str], bool]):
        self._pending: Deque[str] = deque(names)
        self._skip = skip
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def next(self) -> Optional[str]:
        with self._lock:
            while self._pending:
                name = self._pending.popleft()
                if not self._skip(name):
                    return name
            return None
