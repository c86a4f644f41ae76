"""The newest-first edit walk: every row updated since a second, where the API sorts on
updated_at but does not filter on it.

Newest first, the rows updated since the bookmark come before all others, so a walk from the
top that stops at the first older row has read all of them. One listing reaches 1,500 rows. When
more rows changed than that, the walk narrows by `created[...]`, which the API does filter on:
it splits the created range at the median creation second of the rows it read, and walks each
part newest first. What it read already is the top of each part's listing (the same order,
restricted), so each part's walk starts right after those rows instead of at its first page, and
the overlap check of OffsetWalk proves the start: the row just before it must be one already
read. Parts are split again until every part reaches the bookmark, so every edit is reached
whatever their number, and no query asks for page 31.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from tap_wootric.incremental.paging import MAX_PER_PAGE, OffsetWalk, QueryNotHonoured, WalkEnd

Row = Dict[str, Any]


@dataclass(frozen=True)
class EditQuery:
    """Rows sorted on updated_at, newest first, created in [created_gte, created_lt) (None: unbounded)."""

    page: int
    per_page: int
    created_gte: Optional[int] = None
    created_lt: Optional[int] = None


@dataclass
class EditWalkStats:
    requests: int = 0
    parts: int = 1
    # Why the walk may have missed rows; empty when it proved it reached every edit.
    shortfalls: Optional[List[str]] = None


class EditWalk:
    def __init__(
        self,
        fetch: Callable[[EditQuery], List[Row]],
        updated_second_of: Callable[[Row], int],
        created_second_of: Callable[[Row], int],
        *,
        stream: str,
        logger: logging.Logger,
        id_of: Callable[[Row], Any] = lambda row: row["id"],
    ):
        self._fetch = fetch
        self._updated = updated_second_of
        self._created = created_second_of
        self._id_of = id_of
        self._stream = stream
        self._logger = logger
        self.stats = EditWalkStats(shortfalls=[])
        self._prefetched: Optional[List[Row]] = None

    def _page(self, query: EditQuery) -> List[Row]:
        prefetched, self._prefetched = self._prefetched, None
        if (prefetched is not None and query.page == 1 and query.per_page == MAX_PER_PAGE
                and query.created_gte is None and query.created_lt is None):
            rows = prefetched
        else:
            self.stats.requests += 1
            rows = list(self._fetch(query))
        previous: Optional[int] = None
        for row in rows:
            created = self._created(row)
            if (query.created_gte is not None and created < query.created_gte) or (
                    query.created_lt is not None and created >= query.created_lt):
                raise QueryNotHonoured(f"{self._stream}: the API returned a row (id {self._id_of(row)}) outside "
                                       "the requested created[...] range")
            updated = self._updated(row)
            if previous is not None and updated > previous:
                raise QueryNotHonoured(f"{self._stream}: the API did not return rows newest-updated first")
            previous = updated
        return rows

    def walk(self, since: int, first_page: Optional[List[Row]] = None) -> Iterator[List[Row]]:
        """Yield, page by page, every row whose updated second is `since` or later (each once).

        `first_page` is page 1 of the whole listing (50 rows) when the caller already holds it.
        """
        self._prefetched = first_page
        # Each part: (created_gte, created_lt, {id: created second} of the rows read in it, and whether
        # those rows are the head of its listing, so that its walk can start right after them).
        parts: List[Tuple[Optional[int], Optional[int], Dict[Any, int], bool]] = [(None, None, {}, True)]
        while parts:
            low, high, read, resume = parts.pop()
            known = set(read) if resume else set()

            def fetch_page(page: int, per_page: int, low=low, high=high) -> List[Row]:
                return self._page(EditQuery(page, per_page, low, high))

            walk = OffsetWalk(fetch_page, self._id_of, known, len(known),
                              lambda row: self._updated(row) < since, logger=self._logger,
                              label=f"{self._stream}: rows updated since the bookmark")
            for rows in walk.rows():
                for row in rows:
                    read[self._id_of(row)] = self._created(row)
                yield rows
            # Where the walk stopped proves how many rows of the part changed, whatever order tied rows
            # come in; the part is done only when that many distinct rows were read.
            if walk.count is not None and len(read) >= walk.count:
                continue
            split = self._split(low, high, read)
            if split is None:
                shortfall = (f"{len(read)} of the {walk.count} rows updated since the bookmark and created in one "
                             "second were reached" if walk.count is not None else
                             f"more than {len(read)} rows created in one second were updated since the bookmark, "
                             "more than one query reaches")
                self.stats.shortfalls.append(shortfall)
                self._logger.warning("%s: %s; the rest could not be read", self._stream, shortfall)
                continue
            self.stats.parts += 1
            # Only a walk that met its ceiling in an order that held still read the head of each part;
            # otherwise each part is walked from its first page.
            head = walk.end == WalkEnd.CEILING and not walk.backups
            parts.append((split, high, {key: value for key, value in read.items() if value >= split}, head))
            parts.append((low, split, {key: value for key, value in read.items() if value < split}, head))

    @staticmethod
    def _split(low: Optional[int], high: Optional[int], read: Dict[Any, int]) -> Optional[int]:
        """A created second that leaves rows already read on both sides, near their median; None when
        they were all created in one second (which no created range can split)."""
        seconds = sorted(read.values())
        if not seconds or seconds[0] == seconds[-1]:
            return None
        middle = seconds[len(seconds) // 2]
        if middle == seconds[0]:
            middle += 1
        return middle
