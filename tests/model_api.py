"""In-memory models of the API's paging rules, for the pure units' tests (no HTTP, no clock).

`ModelApi` answers KeysetScanner's PageQuery: one time per row. `Listing` answers the /responses
listing as the probe (a dict of request params) and the edit walk (an EditQuery) ask it: rows with a
created and an updated time, filters and a sort the API may or may not honour. Stored times are floats;
filters compare stored times, and callers read whole seconds (`second`).
"""

from __future__ import annotations

import bisect
import random
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from tap_wootric.incremental.paging import MAX_PAGE, MAX_PER_PAGE


class ModelApi:
    """Rows with sub-second times; filters compare stored times, output is per whole second."""

    def __init__(self, rows, before_request=None):
        self.rows = dict(rows)  # id -> stored time (float seconds)
        self.calls = []
        self.before_request = before_request

    def fetch(self, query):
        assert 1 <= query.page <= MAX_PAGE and 1 <= query.per_page <= MAX_PER_PAGE
        if self.before_request:
            self.before_request(self)
        self.calls.append(query)
        selected = sorted(
            ((t, i) for i, t in self.rows.items() if t >= query.gte and (query.lt is None or t < query.lt)),
            reverse=query.descending,
        )
        window = selected[(query.page - 1) * query.per_page: query.page * query.per_page]
        return [{"id": i, "t": t} for t, i in window]


def spread(count, low, high, seed=1, first_id=0):
    rnd = random.Random(seed)
    return {first_id + i: rnd.uniform(low, high) for i in range(count)}


def burst(count, second, first_id, seed=2):
    rnd = random.Random(seed)
    return {first_id + i: second + rnd.random() for i in range(count)}


Row = Dict[str, Any]
Item = Tuple[Any, float, float]  # (id, created, updated)


def second(field: str) -> Callable[[Row], int]:
    """The whole second of a row's field, as the tap reads it."""
    return lambda row: int(row[field])


class Listing:
    """The /responses listing: rows id -> (created, updated) stored times.

    What the API honours is switchable: the `updated[...]` filter, `sort_key=updated_at` (ignored, it
    sends its default order, newest created first), the `created[...]` filter, and whether rows sharing
    a second of the sort field come in a new order on every request (`shuffle_ties`).
    """

    def __init__(self, rows: Dict[Any, Tuple[float, float]], *, updated_filter: bool = True,
                 updated_sort: bool = True, created_filter: bool = True, shuffle_ties: bool = False,
                 before_request: Optional[Callable[[Listing], None]] = None, seed: int = 0,
                 max_requests: int = 1000):
        # Each field's (time, id, created, updated) in ascending order, kept up to date as rows change.
        self._index: Dict[int, List[Tuple[float, Any, float, float]]] = {
            index: sorted((times[index - 1], row_id, *times) for row_id, times in rows.items()) for index in (1, 2)}
        self.rows = _Rows(rows, self._changed)
        self.updated_filter = updated_filter
        self.updated_sort = updated_sort
        self.created_filter = created_filter
        self.shuffle_ties = shuffle_ties
        self.before_request = before_request
        self.calls: List[Dict[str, Any]] = []
        self.max_requests = max_requests  # a walk that never ends fails instead of running forever
        self._random = random.Random(seed)

    def get_rows(self, params: Dict[str, Any]) -> List[Row]:
        page, per_page = params["page"], params["per_page"]
        assert 1 <= page <= MAX_PAGE and 1 <= per_page <= MAX_PER_PAGE
        assert len(self.calls) < self.max_requests, f"more than {self.max_requests} requests"
        if self.before_request:
            self.before_request(self)
        self.calls.append(dict(params))
        sort_key = params.get("sort_key", "created_at")
        if sort_key == "updated_at" and not self.updated_sort:
            sort_key, descending = "created_at", True
        else:
            descending = params.get("sort_order", "desc") == "desc"
        updated = (params.get("updated[gte]"), params.get("updated[lt]")) if self.updated_filter else (None, None)
        created = (params.get("created[gte]"), params.get("created[lt]")) if self.created_filter else (None, None)
        wanted = page * per_page
        selected: List[Item] = []
        updated_gte, updated_lt = updated
        created_gte, created_lt = created
        for item in self._ordered(2 if sort_key == "updated_at" else 1, descending):
            _, created_at, updated_at = item
            if ((updated_gte is None or updated_at >= updated_gte) and (updated_lt is None or updated_at < updated_lt)
                    and (created_gte is None or created_at >= created_gte)
                    and (created_lt is None or created_at < created_lt)):
                selected.append(item)
                if len(selected) == wanted:
                    break
        window = selected[(page - 1) * per_page:]
        return [{"id": row_id, "created_at": c, "updated_at": u} for row_id, c, u in window]

    def _ordered(self, index: int, descending: bool) -> Iterator[Item]:
        keys = reversed(self._index[index]) if descending else iter(self._index[index])
        if not self.shuffle_ties:
            for entry in keys:
                yield entry[1:]
            return
        group: List[Any] = []
        group: List[Tuple[float, Any, float, float]] = []
        for entry in keys:
            if group and int(entry[0]) != int(group[0][0]):
                yield from self._shuffled(group)
                group = []
            group.append(entry)
        yield from self._shuffled(group)

    def _shuffled(self, group: List[Tuple[float, Any, float, float]]) -> Iterator[Item]:
        for entry in self._random.sample(group, len(group)):
            yield entry[1:]

    def _changed(self, row_id: Any, old: Optional[Tuple[float, float]], new: Optional[Tuple[float, float]]) -> None:
        for index in (1, 2):
            keys = self._index[index]
            if old is not None:
                del keys[bisect.bisect_left(keys, (old[index - 1], row_id))]
            if new is not None:
                bisect.insort(keys, (new[index - 1], row_id, *new))

    def fetch(self, query) -> List[Row]:
        """An EditQuery of the edit walk, sent as the tap sends it."""
        params: Dict[str, Any] = {"page": query.page, "per_page": query.per_page, "sort_key": "updated_at",
                                  "sort_order": "desc"}
        if query.created_gte is not None:
            params["created[gte]"] = query.created_gte
        if query.created_lt is not None:
            params["created[lt]"] = query.created_lt
        return self.get_rows(params)

    def updated_since(self, since: int) -> set:
        return {row_id for row_id, (_, updated) in self.rows.items() if int(updated) >= since}


class _Rows(dict):
    """A dict that reports every change to its listing (which keeps its sort orders up to date)."""

    def __init__(self, rows, changed):
        super().__init__(rows)
        self._changed = changed

    def __setitem__(self, key, value):
        self._changed(key, self.get(key), value)
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self._changed(key, self[key], None)
        super().__delitem__(key)

    def pop(self, key, *default):
        if key in self:
            self._changed(key, self[key], None)
        return super().pop(key, *default)

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


def table(count: int, low: float, high: float, *, edited: int = 0, edited_from: float = 0.0,
          edited_to: float = 0.0, seed: int = 1, first_id: int = 0) -> Dict[Any, Tuple[float, float]]:
    """`count` rows created at random in [low, high); `edited` of them, chosen at random, updated at a
    random time in [edited_from, edited_to) (never before their creation); the others never edited
    (updated == created)."""
    rnd = random.Random(seed)
    rows = {}
    for i in range(count):
        created = rnd.uniform(low, high)
        rows[first_id + i] = (created, created)
    for row_id in rnd.sample(sorted(rows), edited):
        created = rows[row_id][0]
        rows[row_id] = (created, max(created, rnd.uniform(edited_from, edited_to)))
    return rows
