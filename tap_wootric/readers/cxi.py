"""The CXI API's readers that need more than one listing (the full-table reader runs them).

The CXI API cannot filter responses by date and imports can add old feedback at any time, so its
streams are read whole. A stream's row names its reader (`StreamSpec.reader`); the full-table reader
looks it up here, so no code branches on a stream's name.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

from tap_wootric.api.apis import MAX_PER_PAGE
from tap_wootric.readers.listing import paged_rows, pages, rows_of
from tap_wootric.stream_run import StreamRun

LOGGER = logging.getLogger(__name__)

Row = Dict[str, Any]


def tags_with_parents(run: StreamRun) -> Iterator[Row]:
    # flat=true lists child tags as rows of their own; their parent is known from the
    # parent's `children` (the list is small, so it is read whole before it is emitted).
    tags = list(paged_rows(run, run.spec.path))
    parent_of = _parents(tags)
    for tag in tags:
        if tag.get("parent_id") is None:
            tag = {**tag, "parent_id": parent_of.get(tag.get("id"))}
        yield tag


def _parents(tags: List[Row]) -> Dict[Any, Any]:
    """Each child tag's id -> its parent's id, from the parents' `children` lists."""
    return {child["id"]: tag.get("id") for tag in tags for child in tag.get("children") or []
            if isinstance(child, dict) and child.get("id") is not None}


class CxiResponses:
    """Every CXI response the API lets the tap reach. One ordering reaches 30 x 50 rows; the other
    ordering reaches as many again from the other end; each import's own listing holds its responses.
    How many exist is known from total_count, or, without it, from the ascending listing's short page
    (whatever order tied rows come in), so a shortfall is counted, never silent."""

    def __init__(self, run: StreamRun):
        self.run = run
        self.seen: Set[Any] = set()
        self.total: Optional[int] = None  # as the API counts them
        self.counted: Optional[int] = None  # as the ascending listing's page sizes prove

    @property
    def known(self) -> Optional[int]:
        return self.total if self.total is not None else self.counted

    def all_seen(self) -> bool:
        return self.known is not None and len(self.seen) >= self.known

    def fresh(self, rows: List[Row]) -> List[Row]:
        new = [row for row in rows if row.get("id") not in self.seen]
        self.seen.update(row.get("id") for row in new)
        return new

    def rows(self) -> Iterator[Row]:
        for descending in (False, True):
            if self.all_seen():
                break
            yield from self._listing(descending)
        if not self.all_seen():
            LOGGER.info("cxi_responses: %d of %s reached by paging both ways; reading them through imports",
                        len(self.seen), self.known if self.known is not None else "an uncounted number")
            yield from self._through_imports()
        self._judge()

    def _listing(self, descending: bool) -> Iterator[Row]:
        path = self.run.spec.path
        for index, body in enumerate(pages(self.run, path, descending=descending)):
            self._note_total(body)
            rows = rows_of(body, path, True)
            new = self.fresh(rows)
            yield from new
            if self._listing_done(index, rows, new, descending):
                return

    def _listing_done(self, index: int, rows: List[Row], new: List[Row], descending: bool) -> bool:
        """Ascending, a short page proves the count by its size (whatever order tied rows come in);
        descending, a page of rows all seen means the two ends met."""
        if len(rows) < MAX_PER_PAGE and not descending:
            self.counted = index * MAX_PER_PAGE + len(rows)
        return self.all_seen() or (descending and bool(rows) and not new)

    def _note_total(self, body: Any) -> None:
        count = body.get("total_count") if isinstance(body, dict) else None
        if isinstance(count, int) and not isinstance(count, bool):
            self.total = max(self.total or 0, count)

    def _through_imports(self) -> Iterator[Row]:
        for summary in paged_rows(self.run, "imports", enveloped=False, params={}):
            if self.all_seen():
                return
            if not isinstance(summary, dict) or summary.get("id") is None:
                continue
            detail = self.run.get(f"imports/{summary['id']}")
            responses = detail.get("responses") if isinstance(detail, dict) else None
            if isinstance(responses, list):
                yield from self.fresh(responses)

    def _judge(self) -> None:
        reached = len(self.seen)
        if self.known is None:
            self.run.note_shortfall("no total_count, and more responses than one listing reaches")
            LOGGER.warning("cxi_responses: the API gave no total_count and more responses than one listing "
                           "reaches; %d were emitted and any shortfall cannot be counted", reached)
        elif self.known > reached:
            self.run.note_shortfall(f"{self.known - reached} of {self.known} responses could not be reached")
            LOGGER.warning(
                "cxi_responses: %d of the %d responses %s could not be reached (the API reaches 1,500 from each "
                "end of its listing and through imports, and may give tied rows a new order on every request); "
                "%d were emitted", self.known - reached, self.known,
                "the API counts" if self.total is not None else "its page sizes prove", reached)


def all_cxi_responses(run: StreamRun) -> Iterator[Row]:
    return CxiResponses(run).rows()


READERS: Dict[str, Callable[[StreamRun], Iterator[Row]]] = {
    "cxi_responses": all_cxi_responses,
    "tags_with_parents": tags_with_parents,
}
