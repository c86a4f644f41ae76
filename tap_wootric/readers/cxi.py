"""The CXI API's readers that need more than one listing (see full_table.py for the engine).

The CXI API cannot filter responses by date and imports can add old feedback at any time, so its
streams are read whole. A stream's row names its reader (`StreamSpec.reader`); the engine looks it
up here, so no code branches on a stream's name.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Set

from tap_wootric.incremental.paging import MAX_PER_PAGE

if TYPE_CHECKING:
    from tap_wootric.readers.full_table import FullTableSync

LOGGER = logging.getLogger(__name__)

# A CXI account that has not finished onboarding answers 424; one without CXI access 401 or 403.
CXI_UNAVAILABLE_STATUSES = (401, 403, 424)


class CxiUnavailable(Exception):
    """The CXI API refuses this account; every CXI stream is skipped for the run."""


def tags_with_parents(source: FullTableSync) -> Iterator[Dict[str, Any]]:
    # flat=true lists child tags as rows of their own; their parent is known from the
    # parent's `children` (the list is small, so it is read whole before it is emitted).
    tags = [row for body in source.pages(source.spec.path) for row in source.rows_of(body, source.spec.path)]
    parent_of: Dict[Any, Any] = {}
    for tag in tags:
        for child in tag.get("children") or []:
            if isinstance(child, dict) and child.get("id") is not None:
                parent_of[child["id"]] = tag.get("id")
    for tag in tags:
        if tag.get("parent_id") is None:
            tag = {**tag, "parent_id": parent_of.get(tag.get("id"))}
        yield tag

def all_cxi_responses(source: FullTableSync) -> Iterator[Dict[str, Any]]:
    """Every CXI response the API lets the tap reach. One ordering reaches 30 x 50 rows; the
    other ordering reaches as many again from the other end; each import's own listing holds
    its responses. total_count says how many exist, so a shortfall is counted, never silent."""
    seen: Set[Any] = set()
    total: Optional[int] = None  # as the API counts them; None until (unless) it says

    def fresh(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        new = [row for row in rows if row.get("id") not in seen]
        seen.update(row.get("id") for row in new)
        return new

    # Without total_count, a short page of the ascending listing proves the count by its size
    # (whatever order tied rows come in); with it, the API's own count.
    counted: Optional[int] = None

    def known() -> Optional[int]:
        return total if total is not None else counted

    def all_seen() -> bool:
        return known() is not None and len(seen) >= known()

    for descending in (False, True):
        if all_seen():
            break
        for index, body in enumerate(source.pages(source.spec.path, descending=descending)):
            count = body.get("total_count") if isinstance(body, dict) else None
            if isinstance(count, int) and not isinstance(count, bool):
                total = max(total or 0, count)
            rows = source.rows_of(body, source.spec.path)
            new = fresh(rows)
            yield from new
            if len(rows) < MAX_PER_PAGE and not descending:
                counted = index * MAX_PER_PAGE + len(rows)
            if all_seen() or (descending and rows and not new):
                break
    if not all_seen():
        LOGGER.info("cxi_responses: %d of %s reached by paging both ways; reading them through imports",
                    len(seen), known() if known() is not None else "an uncounted number")
        for import_body in source.pages("imports", enveloped=False, params={}):
            for summary in source.rows_of(import_body, "imports", enveloped=False):
                if all_seen():
                    break
                if not isinstance(summary, dict) or summary.get("id") is None:
                    continue
                detail = source.get(f"imports/{summary['id']}")
                responses = detail.get("responses") if isinstance(detail, dict) else None
                if isinstance(responses, list):
                    yield from fresh(responses)
    exhausted = counted is not None
    if total is None and not exhausted:
        source.complete = False
        LOGGER.warning(
            "cxi_responses: the API gave no total_count and more responses than one listing reaches; "
            "%d were emitted and any shortfall cannot be counted", len(seen))
    elif known() is not None and known() > len(seen):
        source.complete = False
        LOGGER.warning(
            "cxi_responses: %d of the %d responses %s could not be reached (the API reaches 1,500 from each "
            "end of its listing and through imports, and may give tied rows a new order on every request); "
            "%d were emitted", known() - len(seen), known(),
            "the API counts" if total is not None else "its page sizes prove", len(seen),
        )


READERS: Dict[str, Callable[[FullTableSync], Iterator[Dict[str, Any]]]] = {
    "cxi_responses": all_cxi_responses,
    "tags_with_parents": tags_with_parents,
}
