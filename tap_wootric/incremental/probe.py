"""What an endpoint honours on updated_at, proved each run from the timestamps it returns.

The notes leave it unverified whether /responses and /declines honour `updated[...]` and
`sort_key=updated_at`; an API built on Grape silently drops parameters it does not declare. Two
requests decide both, each on its own:

1. The rows updated an hour after the sync started, newest-created first. An API that honours
   `updated[...]` has none; one that ignores it sends its newest-created row. (An empty table
   sends none either way, and then nothing can be missed.)
2. The 50 most recently updated rows, sorted on updated_at, newest first. They must come in that
   order, and the page must prove it is not creation order: its top row is older than the
   newest-created row, or its rows are out of creation order. Otherwise (a table whose rows are
   never edited, say) an honoured sort cannot be told from creation order, and it stays unproven.
   This page is also page 1 of the newest-first walk, and its top row says whether anything
   changed at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from tap_wootric.incremental.paging import MAX_PER_PAGE

Row = Dict[str, Any]
PROBE_AHEAD_SECONDS = 3600


@dataclass(frozen=True)
class Verdict:
    filter_honoured: bool
    sort_honoured: bool
    sort_reason: str
    # Page 1 of the whole listing sorted on updated_at, newest first (as the API sent it).
    newest_page: List[Row] = field(default_factory=list)
    # The updated second of the most recently updated row, when the sort is honoured.
    newest_updated: Optional[int] = None

    @property
    def filter_reason(self) -> str:
        return "honours updated[...]" if self.filter_honoured else "ignores updated[...]"


def probe(
    get_rows: Callable[[Dict[str, Any]], List[Row]],
    updated_second_of: Callable[[Row], int],
    created_second_of: Callable[[Row], int],
    *,
    updated_param: str,
    updated_field: str,
    created_field: str,
    signpost: int,
    id_of: Callable[[Row], Any] = lambda row: row["id"],
) -> Verdict:
    future = get_rows({"page": 1, "per_page": 1, "sort_key": created_field, "sort_order": "desc",
                       f"{updated_param}[gte]": signpost + PROBE_AHEAD_SECONDS})
    filter_honoured = not future
    newest = get_rows({"page": 1, "per_page": MAX_PER_PAGE, "sort_key": updated_field, "sort_order": "desc",
                       f"{updated_param}[lt]": signpost + 1})
    updated = [updated_second_of(row) for row in newest]
    if _out_of_order(updated):
        return Verdict(filter_honoured, False, "does not sort on updated_at", newest)
    if not _not_creation_order(newest, future, created_second_of, id_of):
        return Verdict(filter_honoured, False, "gives no proof that it sorts on updated_at (its newest-updated "
                       "rows are also in creation order)", newest)
    return Verdict(filter_honoured, True, "sorts on updated_at", newest, updated[0])


def _not_creation_order(newest: List[Row], future: List[Row], created_second_of: Callable[[Row], int],
                        id_of: Callable[[Row], Any]) -> bool:
    """Whether the newest-updated page proves it is not creation order. An API ignoring sort_key would
    send creation order, whose first row is the newest-created row, which the first request returned
    when the filter was ignored."""
    created = [created_second_of(row) for row in newest]
    above_newest_created = bool(future and newest and id_of(newest[0]) != id_of(future[0])
                                and created[0] < created_second_of(future[0]))
    return above_newest_created or _out_of_order(created)


def _out_of_order(newest_first: List[int]) -> bool:
    """Whether a list meant to run newest first has a later value after an earlier one."""
    return any(later > earlier for earlier, later in zip(newest_first, newest_first[1:]))
