"""Created-range partitions: one keyset read split across worker threads while it runs.

A first sync, a resumed scan and a reconciliation slice read a long created range that nothing
else orders: its parts can be read at once. How the rows spread over the range is unknown (an
account may have answered nothing for years, then thousands a month), so the range is not cut in
advance: it starts as one part (or the parts a resumed run left), and a worker with nothing to do
splits the running part with the most rows still ahead of it, estimated from the rows per second
that part has read so far, at the middle of its unread time. The part keeps [its position, the
middle); the new part takes [the middle, its end). Each split may cost one page more (two short
pages where there was one), so a part is split only while it has several pages left, and splits
may add at most 1 % to the read's pages: a read of 10,000 rows is split once at most, one of
100,000 up to 19 times, and a small stream asks exactly the requests of a sequential read. And a split is
made only when it pays (`split_pays`): when the read's round trips have left the tap idle longer than its
parts computed. Against an API that answers at once the tap is bound by its own CPU, and another part would
only take turns on it.

Every part pages with the keyset scanner. Its position is where it resumes: every row below it has
been emitted. A split takes a second past the highest row its part has been handed, so no row the
part emitted is in the new part; rows at or past the middle that a page in flight brings back are
dropped, as the new part reads them. After each page the part's rows are emitted and then the
remaining ranges are handed to `progress` (the reader puts them in its bookmark and saves a STATE),
under one lock: a STATE never covers a row not queued before it. The low-water mark (the least
position) is the classic single resume point; the ranges make a resumed run read only what is
unfinished.

With one worker nothing is split and the parts are read one after another on the calling thread.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from tap_wootric.api import waits
from tap_wootric.api.apis import MAX_PER_PAGE
from tap_wootric.cancel import Cancelled, WorkerStopped
from tap_wootric.incremental.paging import KeysetScanner
from tap_wootric.parallel import POLL_SECONDS, start_worker
from tap_wootric.stream_run import StreamRun
from tap_wootric.timeutil import format_epoch, parse_bookmark

LOGGER = logging.getLogger(__name__)

Row = Dict[str, Any]
Range = Tuple[int, int]

# A part is split only while it has at least this many pages left (estimated): one split may cost a page.
SPLIT_MIN_PAGES = 8
# Splits may add at most this share of the read's pages (estimated): a sequential keyset read already asks
# about 2 % more pages than rows / 50 (each page re-reads its last second), and a full read stays within 3 %.
# So a read of 10,000 rows or fewer (200 pages) is split at most once, one of 100,000 rows up to 19 times.
SPLIT_PAGE_SHARE = 0.01


@dataclass
class Part:
    position: int  # every row of the part below this second has been emitted
    end: int  # exclusive; it only shrinks, when the part is split
    first: Optional[int] = None  # the lowest second of a row it has been handed: an empty stretch before the
    # first row (years before an account's first answer) says nothing about the rows ahead
    frontier: Optional[int] = None  # the highest second of a row it has been handed
    rows: int = 0  # rows it has read
    # Rows per second of created time, read or inherited from the part it was split from.
    density: Optional[float] = None
    running: bool = False
    done: bool = False
    # What its pages have cost so far: the time its requests left the tap idle, and its thread's CPU time.
    waited: float = 0.0
    worked: float = 0.0

    def saw(self, seconds: List[int]) -> None:
        """The seconds of a page's rows: they bound what the part has been handed."""
        if seconds:
            low, high = min(seconds), max(seconds)
            self.frontier = high if self.frontier is None else max(self.frontier, high)
            self.first = low if self.first is None else min(self.first, low)

    def advance(self, checkpoint: Optional[int]) -> None:
        """Every row below `checkpoint` has been emitted (None: the scan reached its end)."""
        self.done = checkpoint is None or checkpoint >= self.end
        if self.done:
            self.running = False
            self.position = self.end
        else:
            assert checkpoint is not None
            self.position = max(self.position, checkpoint)

    def rows_ahead(self) -> Optional[float]:
        if self.rows and self.frontier is not None and self.first is not None:
            self.density = self.rows / max(1, self.frontier - self.first + 1)
        if self.density is None:
            return None
        return self.density * (self.end - self._split_floor())

    def _split_floor(self) -> int:
        return self.position if self.frontier is None else self.frontier + 1

    def split(self) -> Optional[Part]:
        """Cut the unread time in two; the new part takes the upper half."""
        floor = self._split_floor()
        middle = floor + (self.end - floor) // 2
        if middle <= floor or middle >= self.end:
            return None
        upper = Part(middle, self.end, density=self.density)
        self.end = middle
        return upper


def split_pays(waited: float, worked: float) -> bool:
    """Whether a read whose parts have cost this much gains from one part more: when their requests left the
    tap idle longer than the parts computed (round trips that nothing else filled), another part can work in
    that time. When they did not, the tap is bound by its own CPU, and another thread only adds switching
    among threads (about a fifth more CPU against an API that answers at once). Waits for the rate budget are
    no evidence: they are not round trips, and a split cannot shorten them."""
    return waited > worked


def ranges_state(ranges: List[Range], upper: int) -> List[List[Optional[str]]]:
    """Unfinished ranges as the state keeps them: times, and null for "to the end of the scan" (the
    next run's end lies further on)."""
    return [[format_epoch(start), None if end >= upper else format_epoch(end)] for start, end in ranges]


def ranges_within(stored: Any, start: int, upper: int) -> List[Range]:
    """Stored ranges (see ranges_state) clipped to [start, upper); [] when there are none."""
    ranges: List[Range] = []
    for first, last in stored or []:
        begin = max(start, parse_bookmark(first) or start)
        end = upper if last is None else min(upper, parse_bookmark(last) or upper)
        if begin < end:
            ranges.append((begin, end))
    return ranges


class PartitionedRead:
    """The parts of one keyset read and the threads that read them (see the module's docstring).

    `scanner()` makes a fresh KeysetScanner over the read's field; `keep(row)` says which rows to emit;
    `progress(ranges)` is called under the lock after every page with the unfinished ranges, in order;
    `stop_after_rows` ends the read at the first page boundary after that many rows (a reconciliation
    slice's share), leaving its unfinished parts to the next run.
    """

    def __init__(self, run: StreamRun, ranges: List[Range], scanner: Callable[[], KeysetScanner],
                 second_of: Callable[[Row], int], keep: Callable[[Row], bool],
                 progress: Callable[[List[Range]], None], *, workers: int,
                 stop_after_rows: Optional[float] = None, split_share: float = SPLIT_PAGE_SHARE,
                 idle: Callable[[], float] = waits.idle_seconds, cpu: Callable[[], float] = time.thread_time):
        self.run = run
        self.parts = [Part(start, end) for start, end in ranges if start < end]
        self._scanner = scanner
        self._second_of = second_of
        self._keep = keep
        self._progress = progress
        self.workers = max(1, workers)
        self._split_share = split_share
        # This thread's idle round-trip time and CPU time so far (what `split_pays` weighs).
        self._idle = idle
        self._cpu = cpu
        self._budget = float("inf") if stop_after_rows is None else stop_after_rows
        self.read = 0
        self.splits = 0
        self._lock = threading.Condition()
        self._halted = False
        self._error: Optional[BaseException] = None

    @property
    def completed(self) -> bool:
        """Whether every part was read to its end."""
        return all(part.done for part in self.parts)

    def remaining(self) -> List[Range]:
        return sorted((part.position, part.end) for part in self.parts if not part.done)

    def run_all(self) -> bool:
        """Read the parts; returns whether every one was read to its end."""
        helpers = [start_worker(f"{threading.current_thread().name}-part-{n}", self._help)
                   for n in range(1, self.workers)]
        try:
            self._work()
        finally:
            with self._lock:
                self._halted = True  # helpers still waiting for a split stop now
                self._lock.notify_all()
        if self._error is not None:
            raise self._error
        if not self.completed and self.read < self._budget:
            # Halted with no error and no budget spent: a helper was told to stop, so the run is ending.
            self.run.client.cancellation.check()
            raise WorkerStopped()
        for thread in helpers:
            thread.join(POLL_SECONDS)
        if len(self.parts) > 1:
            LOGGER.info("%s: read the created range in %d parts (%d splits)", self.run.name, len(self.parts),
                        self.splits)
        LOGGER.debug("%s: parts' idle round trips / CPU: %s", self.run.name,
                     ", ".join(f"{part.waited:.2f} / {part.worked:.2f} s" for part in self.parts))
        return self.completed

    # -- threads ------------------------------------------------------------------------

    def _help(self) -> None:
        try:
            self._work()
        except (WorkerStopped, Cancelled):
            self._halt(None)
        except BaseException as exc:  # noqa: BLE001 - the calling thread raises it
            self._halt(exc)

    def _halt(self, exc: Optional[BaseException]) -> None:
        with self._lock:
            if exc is not None and self._error is None:
                self._error = exc
            self._halted = True
            self._lock.notify_all()

    def _work(self) -> None:
        while True:
            part = self._take()
            if part is None:
                return
            self._read_part(part)

    def _take(self) -> Optional[Part]:
        """The next part to read: one not started, else a split of the fullest running one; None when
        every part is done or the read halted. Waits while running parts may still be split."""
        cancellation = self.run.client.cancellation
        with self._lock:
            while not self._halted:
                part = next((part for part in self.parts if not part.running and not part.done), None)
                if part is None and self.workers > 1:
                    part = self._split()
                if part is not None:
                    part.running = True
                    return part
                if not any(part.running for part in self.parts):
                    return None
                self._lock.wait(POLL_SECONDS)
                cancellation.check()
            return None

    def _split(self) -> Optional[Part]:
        # The evidence is the read's: a part just split off has none of its own yet.
        if not split_pays(sum(part.waited for part in self.parts), sum(part.worked for part in self.parts)):
            return None
        fullest = self._worth_splitting()
        upper = None if fullest is None else fullest.split()
        if upper is None:
            return None
        self.parts.append(upper)
        self.parts.sort(key=lambda part: part.position)
        self.splits += 1
        return upper

    def _worth_splitting(self) -> Optional[Part]:
        """The running part with the most rows ahead, if one more split pays and the read's share allows it."""
        estimates = [(rows, part) for rows, part in ((part.rows_ahead(), part) for part in self.parts
                                                      if part.running and not part.done) if rows is not None]
        if not estimates:
            return None
        ahead, fullest = max(estimates, key=lambda pair: pair[0])
        # The estimate rests on a page or two of rows at first: a page of margin keeps a read whose rows
        # turn out fewer than estimated within the share.
        pages = min(self.read + sum(rows for rows, _ in estimates), self._budget) / MAX_PER_PAGE
        if ahead < SPLIT_MIN_PAGES * MAX_PER_PAGE or self.splits + 1 > self._split_share * pages - 1:
            return None
        return fullest

    def _read_part(self, part: Part) -> None:
        idle, cpu = self._idle(), self._cpu()
        for batch in self._scanner().scan(part.position, part.end):
            with self._lock:
                if self._halted:
                    return
                over = self._page(part, batch.records, batch.checkpoint)
                # The page's cost, from the end of the last page: its requests and its rows.
                now_idle, now_cpu = self._idle(), self._cpu()
                part.waited += now_idle - idle
                part.worked += now_cpu - cpu
                idle, cpu = now_idle, now_cpu
                if over:
                    return

    def _page(self, part: Part, records: List[Row], checkpoint: Optional[int]) -> bool:
        """One page of a part, under the lock: emit, move its position, report the ranges. Returns
        whether the part (or the read) is over."""
        seconds = [self._second_of(row) for row in records]
        part.saw(seconds)
        rows = [(row, second) for row, second in zip(records, seconds) if second < part.end]
        rows, checkpoint = self._within_budget(rows, checkpoint)
        kept = [row for row, _ in rows if self._keep(row)]
        self.run.skipped += len(rows) - len(kept)
        self.run.emit(kept)
        part.rows += len(rows)
        self.read += len(rows)
        part.advance(checkpoint)
        self._progress(self.remaining())
        self._halted = self._halted or self.read >= self._budget
        if part.done or self._halted:
            self._lock.notify_all()
            return True
        return False

    def _within_budget(self, rows: List[Tuple[Row, int]],
                       checkpoint: Optional[int]) -> Tuple[List[Tuple[Row, int]], Optional[int]]:
        """The rows of a page the budget has room for, and where the part resumes. When the budget ends
        inside the page, rows come in scan order, so the first row left unread is where this part resumes
        (its second is read again, as at every resume point)."""
        room = self._budget - self.read
        if len(rows) <= room:
            return rows, checkpoint
        taken = max(0, int(room))
        return rows[:taken], rows[taken][1]
