"""The newest-first edit walk: every row updated since a second, where the API sorts on
updated_at but does not filter on it.

Newest first, the rows updated since the bookmark come before all others, so a walk from the
top that stops at the first older row has read all of them. One listing reaches 1,500 rows. When
more rows changed than that, the walk narrows by `created[...]`, which the API does filter on:
it splits the created range in two, and walks each part newest first. What it read already is the
top of each part's listing (the same order, restricted), so each part's walk starts right after
those rows instead of at its first page, and the overlap check of OffsetWalk proves the start: the
row just before it must be one already read. Parts are split again until every part reaches the
bookmark, so every edit is reached whatever their number, and no query asks for page 31.

Cost: overlapping pages on the API's page grid bring about 40 new rows a request, so E edits cost
about 1.25 x ceil(E / 50) requests. What adds to that is kept small: a split leaves its busier part
the least work (the rows not read yet lie where the rows read last do: with edits made in creation
order, all on one side), a walk that can be split ends before the thin pages just under the ceiling,
and rows created or edited while the walk runs (above the signpost, at the top of the listing, above
where the walk is) cost a read of the top and a count taken again instead of parts walked again.
"""
from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Generator, Iterator, List, Optional, Tuple

from tap_wootric.api.apis import MAX_PER_PAGE, MAX_REACH
from tap_wootric.incremental.paging import OffsetWalk, QueryNotHonoured, WalkEnd
from tap_wootric.stream_run import plural
from tap_wootric.timeutil import format_epoch

if TYPE_CHECKING:
    from tap_wootric.incremental.keyset import KeysetEngine

Row = Dict[str, Any]
# The rows read last in a part (the least recently updated it read) that say where its unread rows lie.
TAIL_ROWS = 250
# How many unread rows a part that met its ceiling is taken to have: at least as many as one query reaches.
UNREAD_GUESS = MAX_REACH
# How often a part is counted again after rows that arrived in it were read, before it is split instead.
MAX_RECOUNTS = 3


@dataclass(frozen=True)
class EditQuery:
    """Rows sorted on updated_at, newest first, created in [created_gte, created_lt) (None: unbounded)."""

    page: int
    per_page: int
    created_gte: Optional[int] = None
    created_lt: Optional[int] = None


@dataclass
class _Part:
    """A created range [low, high) of the listing (None: unbounded), the rows read in it ({id: (created
    second, the order the row was read in)}), and whether those rows are the head of its listing, so that
    its walk can start right after them."""

    low: Optional[int]
    high: Optional[int]
    read: Dict[Any, Tuple[int, int]]
    resume: bool
    # How many rows updated since the bookmark its last walk proved the part holds (None: it met its ceiling).
    count: Optional[int] = None
    # Where its next walk starts when not right after its rows read, and how often it was counted again.
    start: Optional[int] = None
    recounts: int = 0

    def fetcher(self, page_of: Callable[[EditQuery], List[Row]]) -> Callable[[int, int], List[Row]]:
        return lambda page, per_page: page_of(EditQuery(page, per_page, self.low, self.high))

    def holds(self, created: int) -> bool:
        return (self.low is None or created >= self.low) and (self.high is None or created < self.high)

    def narrowable(self) -> bool:
        """Whether a created range can split it: it spans more than one second."""
        return self.low is None or self.high is None or self.high - self.low > 1

    def settled(self) -> bool:
        return self.count is not None and len(self.read) >= self.count


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
        note_shortfall: Callable[[str], None] = lambda reason: None,
    ):
        """`note_shortfall(reason)` hears why the walk could not reach every edit, if it could not."""
        self._fetch = fetch
        self._note_shortfall = note_shortfall
        self._updated = updated_second_of
        self._created = created_second_of
        self._id_of = id_of
        self._stream = stream
        self._logger = logger
        # Created ranges walked.
        self.parts = 1
        self._prefetched: Optional[List[Row]] = None
        self._reads = 0

    def _page(self, query: EditQuery) -> List[Row]:
        prefetched, self._prefetched = self._prefetched, None
        whole_listing_head = (query.page == 1 and query.per_page == MAX_PER_PAGE
                              and query.created_gte is None and query.created_lt is None)
        rows = prefetched if prefetched is not None and whole_listing_head else list(self._fetch(query))
        self._check(query, rows)
        return rows

    def _check(self, query: EditQuery, rows: List[Row]) -> None:
        """The page must hold rows of the requested created range only, newest-updated first."""
        low = query.created_gte if query.created_gte is not None else float("-inf")
        high = query.created_lt if query.created_lt is not None else float("inf")
        previous: Optional[int] = None
        for row in rows:
            if not low <= self._created(row) < high:
                raise QueryNotHonoured(f"{self._stream}: the API returned a row (id {self._id_of(row)}) outside "
                                       "the requested created[...] range")
            updated = self._updated(row)
            if previous is not None and updated > previous:
                raise QueryNotHonoured(f"{self._stream}: the API did not return rows newest-updated first")
            previous = updated

    def walk(self, since: int, first_page: Optional[List[Row]] = None,
             until: Optional[int] = None) -> Iterator[List[Row]]:
        """Yield, page by page, every row whose updated second is `since` or later (each once).

        `first_page` is page 1 of the whole listing (50 rows) when the caller already holds it. `until` is
        the run's signpost: a row created or edited while the walk runs is updated at or after it, and sits
        at the top of the listing, above where the walk is. Without it, such a row makes the part it lands
        in split and walk again.
        """
        self._prefetched = first_page
        yielded: set = set()
        parts = [_Part(None, None, {}, True)]
        while parts:
            unsettled: List[_Part] = []
            while parts:
                part = parts.pop()
                yield from self._walk_part(part, since, yielded)
                parts += self._parts_left(part, unsettled, until is not None)
            if unsettled:
                assert until is not None
                arrivals = yield from self._read_arrivals(until, yielded)
                parts += self._recount(unsettled, arrivals)

    def _walk_part(self, part: _Part, since: int, yielded: set) -> Iterator[List[Row]]:
        walk = self._walk_of(part, since)
        for rows in walk.rows():
            yield from self._take(part, rows, yielded)
        part.count, part.start = walk.count, None
        # Only a walk that met its ceiling in an order that held still read the head of each part;
        # otherwise each part is walked from its first page.
        part.resume = walk.end == WalkEnd.CEILING and not walk.backups

    def _take(self, part: _Part, rows: List[Row], yielded: set) -> Iterator[List[Row]]:
        for row in rows:
            self._reads += 1
            part.read.setdefault(self._id_of(row), (self._created(row), self._reads))
        fresh = [row for row in rows if self._id_of(row) not in yielded]
        yielded.update(self._id_of(row) for row in fresh)
        if fresh:
            yield fresh

    def _walk_of(self, part: _Part, since: int) -> OffsetWalk:
        """A part's walk, from just after the rows already read when they are the head of its listing (or
        from where it stopped, to count it again)."""
        known = set(part.read) if part.resume else set()
        start = len(known) if part.start is None else part.start
        # A count taken again must reach the row that ends the part, thin pages or not.
        narrowable = part.narrowable() and part.start is None
        return OffsetWalk(part.fetcher(self._page), self._id_of, known, start,
                          lambda row: self._updated(row) < since, logger=self._logger,
                          label=f"{self._stream}: rows updated since the bookmark", narrowable=narrowable)

    def _parts_left(self, part: _Part, unsettled: List[_Part], arrivals_readable: bool) -> List[_Part]:
        """Where the walk stopped proves how many rows of the part changed, whatever order tied rows come
        in; the part is done only when that many distinct rows were read. A walk that proved a count but
        read fewer waits for the rows that arrived above it to be read (they count too) and is counted
        again; one that met its ceiling is split in two by created range."""
        if part.settled():
            return []
        if part.count is not None and arrivals_readable:
            unsettled.append(part)
            return []
        return self._split_part(part, part.resume)

    def _read_arrivals(self, until: int, yielded: set) -> Generator[List[Row], None, Dict[Any, Tuple[int, int]]]:
        """Read the top of the whole listing, the rows updated at or after the signpost: the rows that
        arrived while the walk ran, which the counts of the parts below include but their walks passed.
        Returns them as {id: (created second, order read)}."""
        top = _Part(None, None, {}, False)
        walk = OffsetWalk(top.fetcher(self._page), self._id_of, set(), 0, lambda row: self._updated(row) < until,
                          logger=self._logger, label=f"{self._stream}: rows updated since the run started")
        for rows in walk.rows():
            yield from self._take(top, rows, yielded)
        return top.read

    def _recount(self, unsettled: List[_Part], arrivals: Dict[Any, Tuple[int, int]]) -> List[_Part]:
        """The parts whose rows read and the arrivals in their range make up their count, to be counted again
        from where their walk stopped; the others split. Only a count taken after the arrivals were read
        proves a part: a row arriving after its count was taken would pass for a row its walk missed (a tied
        row, seen in a new order on every request). Newest-created range first, where rows arrive most."""
        again: List[_Part] = []
        for part in sorted(unsettled, key=lambda part: float("-inf") if part.low is None else part.low):
            part.read.update({key: value for key, value in arrivals.items()
                              if key not in part.read and part.holds(value[0])})
            assert part.count is not None
            if len(part.read) >= part.count and part.recounts < MAX_RECOUNTS:
                part.recounts, part.start, part.resume = part.recounts + 1, part.count, True
                again.append(part)
            else:
                again += self._split_part(part, False)
        return again

    def _split_part(self, part: _Part, resume: bool) -> List[_Part]:
        """The part in two by created range or, when its rows were all created in one second, its shortfall."""
        split = self._split(part)
        if split is None:
            self._cannot_split(len(part.read), part.count)
            return []
        self.parts += 1
        upper = {key: value for key, value in part.read.items() if value[0] >= split}
        lower = {key: value for key, value in part.read.items() if value[0] < split}
        return [_Part(split, part.high, upper, resume), _Part(part.low, split, lower, resume)]

    def _cannot_split(self, read: int, count: Optional[int]) -> None:
        """Rows created in one second cannot be narrowed further: say how many were reached."""
        shortfall = (f"{read} of the {count} rows updated since the bookmark and created in one second were "
                     "reached" if count is not None else f"more than {read} rows created in one second were updated "
                     "since the bookmark, more than one query reaches")
        self._note_shortfall(shortfall)
        self._logger.warning("%s: %s; the rest could not be read", self._stream, shortfall)

    @staticmethod
    def _split(part: _Part) -> Optional[int]:
        """The created second to split the part at, None when none is left.

        Rows were read in both parts when the walk proved a count but read fewer (tied rows moved between
        requests; both parts are walked again from their first page). A part that met its ceiling may also
        shed a range where it read nothing (its rows read may all share one second that its unread rows
        do not).
        """
        seconds = sorted({created for created, _ in part.read.values()})
        candidates = seconds[1:]
        if part.count is None:
            candidates += [second for second in seconds[:1] if second != part.low]
            candidates += [second + 1 for second in seconds[-1:] if part.high is None or second + 1 < part.high]
        return _least_work(part.read, candidates) if candidates else None


def _least_work(read: Dict[Any, Tuple[int, int]], candidates: List[int]) -> int:
    """The split that leaves its busier part the least work, counting the rows each part has read (they fill
    its listing's reach) and where the rows not read yet likely are: they were updated just before the rows
    read last, so they are likely created where those were (with edits made in creation order, all on one
    side). Between equals, the one that halves the rows read."""
    by_order = sorted(read.values(), key=lambda value: value[1])
    known = sorted(created for created, _ in by_order)
    tail = sorted(created for created, _ in by_order[-TAIL_ROWS:])

    def work(second: int) -> Tuple[float, int]:
        known_lower = bisect.bisect_left(known, second)
        tail_lower = bisect.bisect_left(tail, second) / len(tail)
        lower = known_lower + UNREAD_GUESS * tail_lower
        upper = len(known) - known_lower + UNREAD_GUESS * (1 - tail_lower)
        return max(lower, upper), abs(len(known) - 2 * known_lower)

    return min(candidates, key=work)


def walk_edits(engine: KeysetEngine, since: int, first_page: List[Row]) -> None:
    """Emit every row updated since `since` through the engine's stream run, then move the bookmark
    to the signpost."""
    run, spec = engine.run, engine.spec
    requests_before = run.requests

    def fetch(query: EditQuery) -> List[Row]:
        params: Dict[str, Any] = {"page": query.page, "per_page": query.per_page,
                                  "sort_key": spec.replication_key, "sort_order": "desc"}
        if query.created_gte is not None:
            params[f"{spec.filter_param}[gte]"] = query.created_gte
        if query.created_lt is not None:
            params[f"{spec.filter_param}[lt]"] = query.created_lt
        return run.get_rows(params)

    walk = EditWalk(fetch, lambda row: run.second_of(row, spec.replication_key),
                    lambda row: run.second_of(row, spec.created_field), stream=spec.name,
                    logger=logging.getLogger(__name__), note_shortfall=run.note_shortfall)
    emitted: set = set()
    for rows in walk.walk(since, first_page, engine.signpost):
        fresh = [row for row in rows if row["id"] not in emitted
                 and run.second_of(row, spec.created_field) >= engine.start_date]
        emitted.update(row["id"] for row in fresh)
        run.emit(fresh)
    logging.getLogger(__name__).info(
        "%s: the newest-first walk read %d rows updated since %s in %s over %d created range(s)",
        spec.name, len(emitted), format_epoch(since), plural(run.requests - requests_before, "request"), walk.parts)
    engine.finish(engine.signpost)
