"""FULL_TABLE streams: segments and the CXI API's responses, tags, projects and imports.

Each sync reads the whole table and stamps its records with a table version. ACTIVATE_VERSION
goes out before the first full read of a stream (so the table exists at once) and after every
full read, when targets that support it drop the rows of older versions: rows deleted at the
source disappear. A read that is interrupted keeps its version in the state, so the rerun's
rows join it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List, Optional

from singer import metadata, metrics
from singer.catalog import CatalogEntry

from tap_wootric.api.client import CXI_PREFIX, WootricClient
from tap_wootric.catalog.selection import selected_schema
from tap_wootric.errors import ApiError
from tap_wootric.incremental.paging import MAX_PAGE, MAX_PER_PAGE
from tap_wootric.output import MessageWriter
from tap_wootric.readers.cxi import CXI_UNAVAILABLE_STATUSES, READERS, CxiUnavailable
from tap_wootric.streams import CXI_API, V2_API, StreamSpec
from tap_wootric.transform import RecordTransformer
from tap_wootric.v2api import get_v2

LOGGER = logging.getLogger(__name__)

class FullTableSync:
    def __init__(
        self,
        client: WootricClient,
        spec: StreamSpec,
        entry: CatalogEntry,
        state: Dict[str, Any],
        writer: MessageWriter,
    ):
        self.client = client
        self.spec = spec
        self.state = state
        self.writer = writer
        self.mdata = metadata.to_map(entry.metadata or [])
        self.schema = entry.schema.to_dict()
        self.requests = 0
        # False when the read may have missed rows: then no closing ACTIVATE_VERSION, which would make
        # targets delete the rows this read did not reach.
        self.complete = True

    # -- requests -------------------------------------------------------------

    def get(self, path: str, params: Optional[Dict[str, Any]] = None) -> Any:
        self.requests += 1
        if self.spec.api == V2_API:
            return get_v2(self.client, path, params)
        full_path = CXI_PREFIX + path if self.spec.api == CXI_API else path
        try:
            return self.client.get(full_path, params or {})
        except ApiError as exc:
            if self.spec.api == CXI_API and exc.status in CXI_UNAVAILABLE_STATUSES:
                raise CxiUnavailable(str(exc)) from None
            raise

    def rows_of(self, body: Any, path: str, enveloped: Optional[bool] = None) -> List[Dict[str, Any]]:
        if self.spec.enveloped if enveloped is None else enveloped:
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise ApiError(f"GET /{path} returned no 'items' list")
            return body["items"]
        if not isinstance(body, list):
            raise ApiError(f"GET /{path} returned a {type(body).__name__}, not a list")
        return body

    def pages(self, path: str, *, descending: Optional[bool] = None, enveloped: Optional[bool] = None,
               params: Optional[Dict[str, Any]] = None) -> Iterator[Any]:
        """Bodies of pages 1..30 of a paged list, until a short page."""
        for page in range(1, MAX_PAGE + 1):
            query: Dict[str, Any] = {"page": page, "per_page": MAX_PER_PAGE,
                                     **(dict(self.spec.params) if params is None else params)}
            if descending is not None:
                query["sort_order"] = "desc" if descending else "asc"
            body = self.get(path, query)
            yield body
            if len(self.rows_of(body, path, enveloped)) < MAX_PER_PAGE:
                return
        if descending is None:
            self.complete = False
            LOGGER.warning("%s: page %d was full; rows past the API's %d-row reach may be missing",
                           self.spec.name, MAX_PAGE, MAX_PAGE * MAX_PER_PAGE)

    # -- rows -----------------------------------------------------------------

    def rows(self) -> Iterator[Dict[str, Any]]:
        if self.spec.reader is not None:
            yield from READERS[self.spec.reader](self)
        elif self.spec.rows_keys:
            yield from self._keyed_rows(self.get(self.spec.path))
        elif self.spec.paged:
            for body in self.pages(self.spec.path):
                yield from self.rows_of(body, self.spec.path)
        else:
            yield from self.rows_of(self.get(self.spec.path), self.spec.path)

    @staticmethod
    def _pages_of(rows: Iterator[Dict[str, Any]]) -> Iterator[List[Dict[str, Any]]]:
        """Rows a page at a time, so records go out in one write per page."""
        page: List[Dict[str, Any]] = []
        for row in rows:
            page.append(row)
            if len(page) == MAX_PER_PAGE:
                yield page
                page = []
        if page:
            yield page

    def _keyed_rows(self, body: Any) -> Iterator[Dict[str, Any]]:
        """Rows of an object body: the lists under the row's rows_keys, each row marked with the key it came
        from (kind_field) and with whether the body names it the default (default_field)."""
        spec = self.spec
        if not isinstance(body, dict):
            raise ApiError(f"GET /{spec.path} returned a {type(body).__name__}, not an object")
        default_id = body.get(spec.default_id_key) if spec.default_id_key else None
        for key in spec.rows_keys:
            rows = body.get(key)
            if rows is None:
                continue  # an empty list may be left out
            if not isinstance(rows, list):
                raise ApiError(f"GET /{spec.path} returned a '{key}' that is not a list")
            for row in rows:
                if not isinstance(row, dict):
                    raise ApiError(f"GET /{spec.path} returned a '{key}' entry that is not an object")
                extra: Dict[str, Any] = {}
                if spec.kind_field:
                    extra[spec.kind_field] = key
                if spec.default_field:
                    extra[spec.default_field] = default_id is not None and row.get("id") == default_id
                yield {**row, **extra}

    # -- sync -----------------------------------------------------------------

    def run(self) -> None:
        spec = self.spec
        started = time.monotonic()
        self.writer.schema(spec.name, selected_schema(self.schema, self.mdata), list(spec.key_properties))
        bookmark = self.state.setdefault("bookmarks", {}).setdefault(spec.name, {})
        version = bookmark.get("version") or int(time.time() * 1000)
        first_read = not bookmark.get("initial_full_table_complete")
        bookmark["version"] = version
        self.writer.state(self.state)
        if first_read:
            self.writer.activate_version(spec.name, version)
        transformer = RecordTransformer(spec.name, self.schema, self.mdata)
        emitted = 0
        with metrics.record_counter(spec.name) as counter:
            extracted_at = datetime.now(timezone.utc)
            for page in self._pages_of(self.rows()):
                emitted += self.writer.records(spec.name, [transformer.transform(row) for row in page],
                                               extracted_at, version)
                counter.increment(len(page))
        if self.complete:
            self.writer.activate_version(spec.name, version)
        else:
            LOGGER.warning("%s: the read was incomplete, so no ACTIVATE_VERSION is sent: targets keep the rows "
                           "of earlier reads", spec.name)
        bookmark.pop("version", None)
        bookmark["initial_full_table_complete"] = True
        self.writer.state(self.state)
        LOGGER.info("%s: done: %d records emitted (full table, version %d), %d requests, %.1f s",
                    spec.name, emitted, version, self.requests, time.monotonic() - started)
        summary = transformer.summary()
        if summary:
            LOGGER.warning("%s: %s", spec.name, summary)
