"""Rows of the list endpoints that full-table streams read: bodies, pages and envelopes."""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, List, Optional

from tap_wootric.api.apis import MAX_PAGE, MAX_PER_PAGE
from tap_wootric.errors import ApiError
from tap_wootric.stream_run import StreamRun

LOGGER = logging.getLogger(__name__)

Row = Dict[str, Any]


def rows_of(body: Any, path: str, enveloped: bool) -> List[Row]:
    """The rows of a list body: the body itself, or its `items` in a {"total_count", "items"} envelope."""
    if enveloped:
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ApiError(f"GET /{path} returned no 'items' list")
        return body["items"]
    if not isinstance(body, list):
        raise ApiError(f"GET /{path} returned a {type(body).__name__}, not a list")
    return body


def pages(run: StreamRun, path: str, *, descending: Optional[bool] = None, enveloped: Optional[bool] = None,
          params: Optional[Dict[str, Any]] = None) -> Iterator[Any]:
    """Bodies of pages 1..30 of a paged list, until a short page. A list read in its own order that
    fills page 30 may hold more rows than the API reaches: the run notes the shortfall."""
    enveloped = run.spec.enveloped if enveloped is None else enveloped
    fixed: Dict[str, Any] = dict(run.spec.params) if params is None else dict(params)
    if descending is not None:
        fixed["sort_order"] = "desc" if descending else "asc"
    for page in range(1, MAX_PAGE + 1):
        body = run.get(path, {"page": page, "per_page": MAX_PER_PAGE, **fixed})
        yield body
        if len(rows_of(body, path, enveloped)) < MAX_PER_PAGE:
            return
    if descending is None:
        run.note_shortfall(f"page {MAX_PAGE} of /{path} was full")
        LOGGER.warning("%s: page %d was full; rows past the API's %d-row reach may be missing",
                       run.name, MAX_PAGE, MAX_PAGE * MAX_PER_PAGE)


def paged_rows(run: StreamRun, path: str, **options: Any) -> Iterator[Row]:
    enveloped = options.get("enveloped")
    for body in pages(run, path, **options):
        yield from rows_of(body, path, run.spec.enveloped if enveloped is None else enveloped)


def keyed_rows(run: StreamRun, body: Any) -> Iterator[Row]:
    """Rows of an object body: the lists under the stream's rows_keys, each row marked with the key it came
    from (kind_field) and with whether the body names it the default (default_field)."""
    spec = run.spec
    if not isinstance(body, dict):
        raise ApiError(f"GET /{spec.path} returned a {type(body).__name__}, not an object")
    default_id = body.get(spec.default_id_key) if spec.default_id_key else None
    for key in spec.rows_keys:
        for row in _list_under(body, key, spec.path):
            yield {**row, **_marks(spec, key, row, default_id)}


def _marks(spec: Any, key: str, row: Row, default_id: Any) -> Dict[str, Any]:
    """The fields a keyed row gains: the key it came from (kind_field), and whether it is the default."""
    marks: Dict[str, Any] = {}
    if spec.kind_field:
        marks[spec.kind_field] = key
    if spec.default_field:
        marks[spec.default_field] = default_id is not None and row.get("id") == default_id
    return marks


def _list_under(body: Dict[str, Any], key: str, path: str) -> List[Row]:
    rows = body.get(key)
    if rows is None:
        return []  # an empty list may be left out
    if not isinstance(rows, list):
        raise ApiError(f"GET /{path} returned a '{key}' that is not a list")
    for row in rows:
        if not isinstance(row, dict):
            raise ApiError(f"GET /{path} returned a '{key}' entry that is not an object")
    return rows


def in_pages(rows: Iterator[Row]) -> Iterator[List[Row]]:
    """Rows a page at a time, so records go out in one write per page."""
    page: List[Row] = []
    for row in rows:
        page.append(row)
        if len(page) == MAX_PER_PAGE:
            yield page
            page = []
    if page:
        yield page
