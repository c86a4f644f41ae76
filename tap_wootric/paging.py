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

from tap_wootric.errors import ApiError

MAX_PER_PAGE = 50
MAX_PAGE = 30
MAX_REACH = MAX_PER_PAGE * MAX_PAGE
# How often a walk through one dense second may back up after rows moved under it.
MAX_WALK_BACKUPS = 40


class QueryNotHonoured(ApiError):
    """The API answered with rows outside the requested filter or out of the requested order."""


@dataclass(frozen=True)
class PageQuery:
    gte: int
    lt: Optional[int]
    page: int = 1
    per_page: int = MAX_PER_PAGE
    descending: bool = False


@dataclass
class Batch:
    """Rows not emitted before, and a checkpoint: every row whose scan second is below
    it has now been yielded. None means the scan is complete."""

    records: List[Dict[str, Any]]
    checkpoint: Optional[int]


@dataclass
class ScanStats:
    requests: int = 0
    dense_seconds: int = 0
    unreached_seconds: int = 0
    gave_up_seconds: int = 0
    rows_read: int = 0
    completed: bool = False

    @property
    def incomplete(self) -> bool:
        """Whether rows may have been left unread (a second past the API's reach, or rows that kept moving)."""
        return bool(self.unreached_seconds or self.gave_up_seconds)


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
    new rows page by page; `end` says why the walk stopped.
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
    ):
        self._fetch_page = fetch_page
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
            start = (page_number - 1) * per_page
            page = self._fetch_page(page_number, per_page)
            if start > 0 and (not page or self._id_of(page[0]) not in self.known):
                self.backups += 1
                if self.backups > MAX_WALK_BACKUPS:
                    self._logger.warning("%s keep moving between requests; the walk stops at offset %d and "
                                         "some rows may not have been reached", self._label, offset)
                    self.end = WalkEnd.GAVE_UP
                    return
                self._logger.info("%s moved while being paged; backing up", self._label)
                offset = max(0, start - MAX_PER_PAGE)
                continue
            new_rows = []
            stopped = False
            for row in page:
                if self._stop is not None and self._stop(row):
                    stopped = True
                    break
                row_id = self._id_of(row)
                if row_id not in self.known:
                    self.known.add(row_id)
                    new_rows.append(row)
            if new_rows:
                yield new_rows
            offset = self.offset = start + len(page)
            if stopped:
                self.end = WalkEnd.STOPPED
                return
            if len(page) < per_page:
                self.end = WalkEnd.EXHAUSTED
                return
        self.end = WalkEnd.CEILING


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
    ):
        self._fetch_page = fetch
        self._second_of = second_of
        self._id_of = id_of
        self._stream = stream
        self._logger = logger
        self.stats = ScanStats()

    def _fetch(self, query: PageQuery) -> List[Tuple[int, Dict[str, Any]]]:
        """One page as (scan second, row) pairs, checked against the query it answers."""
        self.stats.requests += 1
        rows = list(self._fetch_page(query))
        if len(rows) > query.per_page:
            raise ApiError(f"{self._stream}: asked for {query.per_page} rows a page, got {len(rows)}")
        page = [(self._second_of(row), row) for row in rows]
        previous: Optional[int] = None
        for second, row in page:
            if second < query.gte or (query.lt is not None and second >= query.lt):
                raise QueryNotHonoured(
                    f"{self._stream}: the API returned a row (id {self._id_of(row)}) outside the requested "
                    "time filter; it may have ignored the filter, so paging cannot be trusted"
                )
            if previous is not None and (second < previous if not query.descending else second > previous):
                raise QueryNotHonoured(f"{self._stream}: the API did not return rows in the requested order")
            previous = second
        return page

    def scan(self, start: int, upper: Optional[int]) -> Iterator[Batch]:
        cursor = start
        emitted_at_cursor: Set[Any] = set()
        while True:
            page = self._fetch(PageQuery(gte=cursor, lt=upper))
            fresh = [
                row for second, row in page
                if not (second == cursor and self._id_of(row) in emitted_at_cursor)
            ]
            if len(page) < MAX_PER_PAGE:
                yield Batch(fresh, None)
                return
            last_second = page[-1][0]
            if last_second == cursor:
                yield Batch(fresh, cursor)
                emitted_at_cursor.update(self._id_of(row) for row in fresh)
                yield from self._walk_dense_second(cursor, [row for _, row in page], emitted_at_cursor)
                cursor += 1
                emitted_at_cursor = set()
                continue
            cursor = last_second
            emitted_at_cursor = {self._id_of(row) for second, row in page if second == last_second}
            yield Batch(fresh, cursor)

    # -- one second with more rows than a page ------------------------------

    def _walk_dense_second(
        self, second: int, first_page: List[Dict[str, Any]], emitted: Set[Any]
    ) -> Iterator[Batch]:
        """Yield the rest of one second. `first_page` is its first 50 rows ascending."""
        self.stats.dense_seconds += 1
        gave_up_before = self.stats.gave_up_seconds
        ascending_ids, complete = yield from self._walk(second, first_page, emitted, descending=False)
        if complete and self.stats.gave_up_seconds > gave_up_before:
            yield Batch([], second + 1)
            return
        if complete:
            self._logger.info("%s: %d records share the second %s; all reached by paging inside it",
                              self._stream, len(emitted), second)
            yield Batch([], second + 1)
            return
        _, met = yield from self._walk(second, [], emitted, descending=True, stop_at=set(ascending_ids))
        if met:
            self._logger.warning(
                "%s: %d records share one second (%s), more than one API query can reach (%d); "
                "all of them were reached by also reading that second newest-first",
                self._stream, len(emitted), second, MAX_REACH,
            )
        else:
            self.stats.unreached_seconds += 1
            self._logger.warning(
                "%s: at least %d records share one second (%s). The API reaches at most %d from each end "
                "and exposes no count, so the records between the two ends (an unknown number) could not "
                "be reached; %d were emitted. The scan moves on to the next second.",
                self._stream, 2 * MAX_REACH, second, MAX_REACH, len(emitted),
            )
        yield Batch([], second + 1)

    def _walk(
        self,
        second: int,
        first_page: List[Dict[str, Any]],
        emitted: Set[Any],
        *,
        descending: bool,
        stop_at: Optional[Set[Any]] = None,
    ):
        """Offset-page through one second in one order (see OffsetWalk). Returns (ids read,
        complete): complete means the second was read to its end, or (with stop_at) that the walk
        reached a row the other walk had already read."""
        walk_ids: Set[Any] = {self._id_of(row) for row in first_page}

        def fetch_page(page_number: int, per_page: int) -> List[Dict[str, Any]]:
            query = PageQuery(gte=second, lt=second + 1, page=page_number, per_page=per_page, descending=descending)
            return [row for _, row in self._fetch(query)]

        stop = None if stop_at is None else (lambda row: self._id_of(row) in stop_at)
        walk = OffsetWalk(fetch_page, self._id_of, walk_ids, len(first_page), stop,
                          logger=self._logger, label=f"{self._stream}: the records sharing the second {second}")
        for rows in walk.rows():
            fresh = self._take_new(rows, emitted)
            if fresh:
                yield Batch(fresh, second)
        if walk.end == WalkEnd.GAVE_UP:
            self.stats.gave_up_seconds += 1
        return walk_ids, walk.end != WalkEnd.CEILING
    def _take_new(self, rows: List[Dict[str, Any]], emitted: Set[Any]) -> List[Dict[str, Any]]:
        fresh = []
        for row in rows:
            row_id = self._id_of(row)
            if row_id not in emitted:
                emitted.add(row_id)
                fresh.append(row)
        return fresh
