"""Keyset paging under Wootric's limits: 50 records a page, 30 pages a query, no cursor.

Every ordinary request is page 1 of "scan field >= the last second seen", sorted
ascending, and the ids already emitted at that second are skipped. So no query goes
deep enough to meet the 1,500-record ceiling, and rows that move while the sync runs
cannot shift a page boundary past an unread row.

Only when one second fills a whole page does the scanner page inside that second
("dense second"). There it asks for pages that overlap what it already read by at least
one row, and checks that each page starts with a row it already read; otherwise rows
moved and the walk backs up. When the ascending walk hits the 1,500-row ceiling it reads
the same second newest-first until the two walks meet. Only if they cannot meet
(more than 3,000 rows in one second) are rows left unreached, and that is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from tap_wootric.api.apis import MAX_PAGE, MAX_PER_PAGE, MAX_REACH
from tap_wootric.errors import ApiError

# How often a walk may back up after rows moved under it.
MAX_WALK_BACKUPS = 40
# Inside one dense second: a walk that must back up this often meets an order that changes from
# request to request (ties), which backing up cannot fix; re-reading the second does.
DENSE_WALK_BACKUPS = 2
# Re-reads of a dense second whose rows were not all reached: at most this many times ceil(N/50)
# requests more (N at most 1,500), in the other order and on the other sort key.
RESAMPLE_ROUNDS = 3
# Near the ceiling the page grid leaves only thin pages (20 to 30 new rows a request, about 40 elsewhere): a
# walk whose caller can narrow the listing instead ends before them.
THIN_PAGES_FROM = MAX_REACH - 2 * MAX_PER_PAGE
THIN_PAGE_ROWS = 35


class QueryNotHonoured(ApiError):
    """The API answered with rows outside the requested filter or out of the requested order."""


@dataclass(frozen=True)
class PageQuery:
    gte: int
    lt: Optional[int]
    page: int = 1
    per_page: int = MAX_PER_PAGE
    descending: bool = False
    # Sort on the stream's other sort key (inside one second of the scan field), where the API has one.
    alternative_sort: bool = False


@dataclass
class Batch:
    """Rows not emitted before, and a checkpoint: every row whose scan second is below
    it has now been yielded. None means the scan is complete."""

    records: List[Dict[str, Any]]
    checkpoint: Optional[int]


Fetch = Callable[[PageQuery], Sequence[Dict[str, Any]]]
SecondOf = Callable[[Dict[str, Any]], int]


def plan_overlapping_page(offset: int) -> Tuple[int, int]:
    """(page, per_page) that re-reads at least the row at `offset - 1` and reaches furthest.

    With offset 0 there is nothing to overlap: the first full page.
    """
    if offset <= 0:
        return 1, MAX_PER_PAGE
    best: Optional[Tuple[int, int, int]] = None
    for per_page in range(MAX_PER_PAGE, 0, -1):
        # The furthest page of this size that still starts at or before offset - 1.
        page = min(MAX_PAGE, (offset - 1) // per_page + 1)
        end = page * per_page
        if end > offset and (best is None or end > best[0]):
            best = (end, page, per_page)
    if best is None:
        raise ValueError(f"no page reaches past offset {offset}")
    return best[1], best[2]


class WalkEnd:
    STOPPED = "stopped"  # reached a row the caller's stop test accepts
    EXHAUSTED = "exhausted"  # a short page: the listing ended
    CEILING = "ceiling"  # the API's 1,500-row reach ran out first
    GAVE_UP = "gave up"  # rows kept moving under the walk


class OffsetWalk:
    """Offset pages through one fixed listing (a filter and an order), past rows already read.

    `known` holds the ids of the rows at offsets [0, offset) of the listing; every id read is
    added to it. Each page overlaps what was read, and its first row must be one already read, so
    no row can slide past a page boundary unseen: a row that moves to the front (an edit, in a
    newest-first listing) pushes later rows back and is simply read again where it was; a row that
    leaves the listing (a deletion, or an edit in an oldest-first one) pulls later rows forward, and
    if that makes the page start with an unread row, the walk backs up a page. `rows()` yields the
    new rows page by page; `end` says why the walk stopped. With `narrowable`, the walk meets its ceiling
    before the thin pages near it.
    """

    def __init__(
        self,
        fetch_page: Callable[[int, int], List[Dict[str, Any]]],
        id_of: Callable[[Dict[str, Any]], Any],
        known: Set[Any],
        offset: int,
        stop: Optional[Callable[[Dict[str, Any]], bool]] = None,
        *,
        logger: logging.Logger,
        label: str,
        max_backups: int = MAX_WALK_BACKUPS,
        narrowable: bool = False,
    ):
        self._fetch_page = fetch_page
        self._narrowable = narrowable
        self._max_backups = max_backups
        # How many rows the listing holds (up to the first row the stop test accepts), once a short page
        # or that row has proved it, whatever order tied rows come in.
        self.count: Optional[int] = None
        self._id_of = id_of
        self.known = known
        self.offset = offset
        self._stop = stop
        self._logger = logger
        self._label = label
        self.end: Optional[str] = None
        self.backups = 0

    def rows(self) -> Iterator[List[Dict[str, Any]]]:
        offset = self.offset
        while offset < MAX_REACH:
            page_number, per_page = plan_overlapping_page(offset)
            if self._narrowable and offset >= THIN_PAGES_FROM and page_number * per_page - offset < THIN_PAGE_ROWS:
                break
            start = (page_number - 1) * per_page
            page = self._fetch_page(page_number, per_page)
            if start > 0 and (not page or self._id_of(page[0]) not in self.known):
                if not self._back_up(offset):
                    return
                offset = max(0, start - MAX_PER_PAGE)
                continue
            new_rows, stopped_at = self._take(page)
            if new_rows:
                yield new_rows
            offset = self.offset = start + len(page)
            if self._ended(start, page, per_page, stopped_at):
                return
        self.end = WalkEnd.CEILING

    def _ended(self, start: int, page: List[Dict[str, Any]], per_page: int, stopped_at: Optional[int]) -> bool:
        """Whether the page ends the walk, at a row the stop test accepts or at a short page; either proves
        how many rows the listing holds before it (every row before the stop belongs to its head)."""
        if stopped_at is not None:
            self.count, self.end = start + stopped_at, WalkEnd.STOPPED
        elif len(page) < per_page:
            self.count, self.end = start + len(page), WalkEnd.EXHAUSTED
        return self.end is not None

    def _back_up(self, offset: int) -> bool:
        """Rows moved under the walk: back up a page, unless it has done so too often (then it ends)."""
        self.backups += 1
        if self.backups > self._max_backups:
            self._logger.warning("%s keep moving between requests; the walk stops at offset %d and "
                                 "some rows may not have been reached", self._label, offset)
            self.end = WalkEnd.GAVE_UP
            return False
        self._logger.info("%s moved while being paged; backing up", self._label)
        return True

    def _take(self, page: List[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], Optional[int]]:
        """The page's rows not read before, up to the first row the stop test accepts (and its index)."""
        new_rows = []
        for index, row in enumerate(page):
            if self._stop is not None and self._stop(row):
                return new_rows, index
            row_id = self._id_of(row)
            if row_id not in self.known:
                self.known.add(row_id)
                new_rows.append(row)
        return new_rows, None


class KeysetScanner:
    """Yields every row with scan second in [start, upper), in batches with checkpoints."""

    def __init__(
        self,
        fetch: Fetch,
        second_of: SecondOf,
        *,
        stream: str,
        logger: logging.Logger,
        id_of: Callable[[Dict[str, Any]], Any] = lambda record: record["id"],
        alternative_sort: bool = False,
        note_shortfall: Callable[[str], None] = lambda reason: None,
    ):
        """`note_shortfall(reason)` hears of every second whose rows could not all be reached."""
        self._fetch_page = fetch
        self._note_shortfall = note_shortfall
        self._alternative_sort = alternative_sort
        self._second_of = second_of
        self._id_of = id_of
        self._stream = stream
        self._logger = logger
        # Seconds that held more rows than one page, and needed the dense-second walk.
        self.dense_seconds = 0

    def _fetch(self, query: PageQuery) -> List[Tuple[int, Dict[str, Any]]]:
        """One page as (scan second, row) pairs, checked against the query it answers."""
        rows = list(self._fetch_page(query))
        if len(rows) > query.per_page:
            raise ApiError(f"{self._stream}: asked for {query.per_page} rows a page, got {len(rows)}")
        page = [(self._second_of(row), row) for row in rows]
        upper = query.lt if query.lt is not None else float("inf")
        for second, row in page:
            if not query.gte <= second < upper:
                raise QueryNotHonoured(
                    f"{self._stream}: the API returned a row (id {self._id_of(row)}) outside the requested "
                    "time filter; it may have ignored the filter, so paging cannot be trusted"
                )
        seconds = [second for second, _ in page]
        if seconds != sorted(seconds, reverse=query.descending):
            raise QueryNotHonoured(f"{self._stream}: the API did not return rows in the requested order")
        return page

    def scan(self, start: int, upper: Optional[int]) -> Iterator[Batch]:
        cursor = start
        emitted_at_cursor: Set[Any] = set()
        while True:
            page = self._fetch(PageQuery(gte=cursor, lt=upper))
            fresh = [row for second, row in page if not (second == cursor and self._id_of(row) in emitted_at_cursor)]
            if len(page) < MAX_PER_PAGE:
                yield Batch(fresh, None)
                return
            if page[-1][0] == cursor:
                yield from self._dense(cursor, page, fresh, emitted_at_cursor)
                cursor, emitted_at_cursor = cursor + 1, set()
                continue
            cursor = page[-1][0]
            emitted_at_cursor = {self._id_of(row) for second, row in page if second == cursor}
            yield Batch(fresh, cursor)

    def _dense(self, second: int, page: List[Tuple[int, Dict[str, Any]]], fresh: List[Dict[str, Any]],
               emitted: Set[Any]) -> Iterator[Batch]:
        """A full page of one second: emit it, then walk the rest of that second."""
        yield Batch(fresh, second)
        emitted.update(self._id_of(row) for row in fresh)
        yield from self._walk_dense_second(second, [row for _, row in page], emitted)

    # -- one second with more rows than a page ------------------------------

    def _walk_dense_second(
        self, second: int, first_page: List[Dict[str, Any]], emitted: Set[Any]
    ) -> Iterator[Batch]:
        """Yield the rest of one second. `first_page` is its first 50 rows ascending; `emitted` holds
        the ids emitted at this second (it grows as rows are emitted).

        Page sizes prove how many rows share the second when there are at most 1,500: a page that
        comes back short at offset s with n rows means s + n, whatever order the API gives tied rows
        (a database may give them a new order on every request). The walk claims completeness only
        when that many distinct ids were emitted, or, past 1,500, when both ends were read in a proven
        stable order and met. Otherwise it re-reads the second (other order, other sort key) at most
        RESAMPLE_ROUNDS times, and says what it could not reach.
        """
        self.dense_seconds += 1
        ascending = OffsetWalk(self._dense_page(second, False, False), self._id_of, set(emitted), len(first_page),
                               logger=self._logger, label=f"{self._stream}: the records sharing the second {second}",
                               max_backups=DENSE_WALK_BACKUPS)
        yield from self._emit_walk(ascending, second, emitted)
        count = ascending.count
        if ascending.end == WalkEnd.CEILING:
            # More than one query reaches: read from the other end until the walks meet. Meeting
            # proves nothing unless the order held still (no page ever failed its overlap check).
            descending = OffsetWalk(self._dense_page(second, True, False), self._id_of, set(), 0,
                                    lambda row: self._id_of(row) in ascending.known, logger=self._logger,
                                    label=f"{self._stream}: the records sharing the second {second}",
                                    max_backups=DENSE_WALK_BACKUPS)
            yield from self._emit_walk(descending, second, emitted)
            if descending.end == WalkEnd.STOPPED and not ascending.backups and not descending.backups:
                self._logger.warning(
                    "%s: %d records share one second (%s), more than one API query can reach (%d); all of them "
                    "were reached by also reading that second newest-first", self._stream, len(emitted), second,
                    MAX_REACH)
                yield Batch([], second + 1)
                return
            count = descending.count
        elif count is None or len(emitted) < count:
            count = yield from self._resample(second, emitted, count)
        self._report_dense(second, len(emitted), count)
        yield Batch([], second + 1)

    def _report_dense(self, second: int, reached: int, count: Optional[int]) -> None:
        """Say whether every row of a dense second was reached; a shortfall is noted, never silent."""
        if count is not None and reached >= count:
            self._logger.info("%s: all %d records sharing the second %s reached", self._stream, count, second)
        elif count is not None:
            self._note_shortfall(f"{count - reached} of the {count} rows sharing the second {second} "
                                 "could not be reached")
            self._logger.warning(
                "%s: %d records share the second %s, but the API returned them in a different order on every "
                "request and only %d of them were reached (%d missing) after %d re-reads; the scan moves on",
                self._stream, count, second, reached, count - reached, RESAMPLE_ROUNDS)
        else:
            self._note_shortfall(f"more rows share the second {second} than the API can reach")
            self._logger.warning(
                "%s: at least %d records share one second (%s), so how many is unknown (the API exposes no count "
                "and reaches %d from each end); %d were emitted and the rest could not be reached. The scan "
                "moves on to the next second.", self._stream, max(MAX_REACH, reached), second, MAX_REACH, reached)

    def _dense_page(self, second: int, descending: bool,
                    alternative: bool) -> Callable[[int, int], List[Dict[str, Any]]]:
        def fetch_page(page_number: int, per_page: int) -> List[Dict[str, Any]]:
            query = PageQuery(gte=second, lt=second + 1, page=page_number, per_page=per_page, descending=descending,
                              alternative_sort=alternative)
            return [row for _, row in self._fetch(query)]

        return fetch_page

    def _emit_walk(self, walk: OffsetWalk, second: int, emitted: Set[Any]) -> Iterator[Batch]:
        for rows in walk.rows():
            fresh = self._take_new(rows, emitted)
            if fresh:
                yield Batch(fresh, second)

    def _resample(self, second: int, emitted: Set[Any], count: Optional[int]):
        """Read the whole second again, page after page to its short page, in other orders, until as
        many distinct ids were emitted as page sizes prove exist. Returns the count (None past 1,500)."""
        orders = [(True, False), (False, True), (True, True), (False, False)] if self._alternative_sort else \
            [(True, False), (False, False)]
        for round_number in range(RESAMPLE_ROUNDS):
            if count is not None and len(emitted) >= count:
                break
            descending, alternative = orders[round_number % len(orders)]
            count = yield from self._reread(self._dense_page(second, descending, alternative), second, emitted, count)
        return count

    def _reread(self, fetch_page: Callable[[int, int], List[Dict[str, Any]]], second: int, emitted: Set[Any],
                count: Optional[int]):
        """One re-read of a second in one order; returns the count its short page proves (None past 1,500,
        the count it was given when it stopped because every row was out)."""
        for page_number in range(1, MAX_PAGE + 1):
            rows = fetch_page(page_number, MAX_PER_PAGE)
            fresh = self._take_new(rows, emitted)
            if fresh:
                yield Batch(fresh, second)
            if len(rows) < MAX_PER_PAGE:
                return (page_number - 1) * MAX_PER_PAGE + len(rows)
            if count is not None and len(emitted) >= count:
                return count
        return None

    def _take_new(self, rows: List[Dict[str, Any]], emitted: Set[Any]) -> List[Dict[str, Any]]:
        fresh = []
        for row in rows:
            row_id = self._id_of(row)
            if row_id not in emitted:
                emitted.add(row_id)
                fresh.append(row)
        return fresh
