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
        ascending_ids, complete = yield from self._walk(second, first_page, emitted, descending=False)
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
        """Offset-page through one second in one order.

        Each page overlaps what was read; its first row must be one already read, so no
        row can have slid past a page boundary unseen. Rows of a past second can only
        leave it (an update moves a row to "now"), which shifts later rows towards the
        front: the walk then simply continues after the last row it knows. If even the
        first row of a page is new, rows may have been skipped, so the walk backs up.

        Returns (ids read, complete): complete means the second was read to its end, or
        (with stop_at) that the walk reached a row the other walk had already read.
        """
        walk_ids: Set[Any] = {self._id_of(row) for row in first_page}
        offset = len(first_page)
        backups = 0
        while offset < MAX_REACH:
            page_number, per_page = plan_overlapping_page(offset)
            start = (page_number - 1) * per_page
            page = [row for _, row in self._fetch(
                PageQuery(gte=second, lt=second + 1, page=page_number, per_page=per_page, descending=descending)
            )]
            if start > 0 and (not page or self._id_of(page[0]) not in walk_ids):
                backups += 1
                if backups > MAX_WALK_BACKUPS:
                    self._logger.warning(
                        "%s: the records sharing the second %s keep moving between requests; %d of them were "
                        "emitted and some may not have been reached",
                        self._stream, second, len(emitted),
                    )
                    return walk_ids, True
                self._logger.info("%s: rows moved while paging the second %s; backing up", self._stream, second)
                offset = max(0, start - MAX_PER_PAGE)
                continue
            met = False
            new_rows = []
            for row in page:
                row_id = self._id_of(row)
                if stop_at is not None and row_id in stop_at:
                    met = True
                    break
                if row_id not in walk_ids:
                    walk_ids.add(row_id)
                    new_rows.append(row)
            fresh = self._take_new(new_rows, emitted)
            if fresh:
                yield Batch(fresh, second)
            offset = start + len(page)
            if met or len(page) < per_page:
                return walk_ids, True
        return walk_ids, False

    def _take_new(self, rows: List[Dict[str, Any]], emitted: Set[Any]) -> List[Dict[str, Any]]:
        fresh = []
        for row in rows:
            row_id = self._id_of(row)
            if row_id not in emitted:
                emitted.add(row_id)
                fresh.append(row)
        return fresh
