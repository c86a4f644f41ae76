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
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

from singer import metadata, metrics
from singer.catalog import CatalogEntry

from tap_wootric.client import CXI_PREFIX, WootricClient
from tap_wootric.errors import ApiError
from tap_wootric.output import RecordWriter, write_schema, write_version
from tap_wootric.paging import MAX_PAGE, MAX_PER_PAGE
from tap_wootric.selection import selected_schema
from tap_wootric.streams import CXI_API, StreamSpec
from tap_wootric.transform import RecordTransformer

LOGGER = logging.getLogger(__name__)

# A CXI account that has not finished onboarding answers 424; one without CXI access 401 or 403.
CXI_UNAVAILABLE_STATUSES = (401, 403, 424)


class CxiUnavailable(Exception):
    """The CXI API refuses this account; every CXI stream is skipped for the run."""


class FullTableSync:
    def __init__(
        self,
        client: WootricClient,
        spec: StreamSpec,
        entry: CatalogEntry,
        state: Dict[str, Any],
        write_state: Callable[[Dict[str, Any]], None],
    ):
        self.client = client
        self.spec = spec
        self.state = state
        self.write_state = write_state
        self.mdata = metadata.to_map(entry.metadata or [])
        self.schema = entry.schema.to_dict()
        self.requests = 0
        # False when the read may have missed rows: then no closing ACTIVATE_VERSION, which would make
        # targets delete the rows this read did not reach.
        self.complete = True

    # -- requests -------------------------------------------------------------

    def _get(self, path: str, params: Optional[Dict[str, Any]] = None) -> Any:
        self.requests += 1
        full_path = CXI_PREFIX + path if self.spec.api == CXI_API else path
        try:
            return self.client.get(full_path, params or {})
        except ApiError as exc:
            if self.spec.api == CXI_API and exc.status in CXI_UNAVAILABLE_STATUSES:
                raise CxiUnavailable(str(exc)) from None
            raise

    def _rows_of(self, body: Any, path: str, enveloped: Optional[bool] = None) -> List[Dict[str, Any]]:
        if self.spec.enveloped if enveloped is None else enveloped:
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise ApiError(f"GET /{path} returned no 'items' list")
            return body["items"]
        if not isinstance(body, list):
            raise ApiError(f"GET /{path} returned a {type(body).__name__}, not a list")
        return body

    def _pages(self, path: str, *, descending: Optional[bool] = None, enveloped: Optional[bool] = None,
               params: Optional[Dict[str, Any]] = None) -> Iterator[Any]:
        """Bodies of pages 1..30 of a paged list, until a short page."""
        for page in range(1, MAX_PAGE + 1):
            query: Dict[str, Any] = {"page": page, "per_page": MAX_PER_PAGE,
                                     **(dict(self.spec.params) if params is None else params)}
            if descending is not None:
                query["sort_order"] = "desc" if descending else "asc"
            body = self._get(path, query)
            yield body
            if len(self._rows_of(body, path, enveloped)) < MAX_PER_PAGE:
                return
        if descending is None:
            self.complete = False
            LOGGER.warning("%s: page %d was full; rows past the API's %d-row reach may be missing",
                           self.spec.name, MAX_PAGE, MAX_PAGE * MAX_PER_PAGE)

    # -- rows -----------------------------------------------------------------

    def rows(self) -> Iterator[Dict[str, Any]]:
        name = self.spec.name
        if name == "cxi_responses":
            yield from self._all_cxi_responses()
        elif name == "cxi_tags":
            yield from self._tags_with_parents()
        elif self.spec.paged:
            for body in self._pages(self.spec.path):
                yield from self._rows_of(body, self.spec.path)
        else:
            yield from self._rows_of(self._get(self.spec.path), self.spec.path)

    def _tags_with_parents(self) -> Iterator[Dict[str, Any]]:
        # flat=true lists child tags as rows of their own; their parent is known from the
        # parent's `children` (the list is small, so it is read whole before it is emitted).
        tags = [row for body in self._pages(self.spec.path) for row in self._rows_of(body, self.spec.path)]
        parent_of: Dict[Any, Any] = {}
        for tag in tags:
            for child in tag.get("children") or []:
                if isinstance(child, dict) and child.get("id") is not None:
                    parent_of[child["id"]] = tag.get("id")
        for tag in tags:
            if tag.get("parent_id") is None:
                tag = {**tag, "parent_id": parent_of.get(tag.get("id"))}
            yield tag

    def _all_cxi_responses(self) -> Iterator[Dict[str, Any]]:
        """Every CXI response the API lets the tap reach. One ordering reaches 30 x 50 rows; the
        other ordering reaches as many again from the other end; each import's own listing holds
        its responses. total_count says how many exist, so a shortfall is counted, never silent."""
        seen: Set[Any] = set()
        total: Optional[int] = None  # as the API counts them; None until (unless) it says

        def fresh(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
            new = [row for row in rows if row.get("id") not in seen]
            seen.update(row.get("id") for row in new)
            return new

        def all_seen() -> bool:
            return total is not None and len(seen) >= total

        exhausted = False  # a listing ended with a short page: everything was on it
        for descending in (False, True):
            if exhausted or (descending and all_seen()):
                break
            for body in self._pages(self.spec.path, descending=descending):
                count = body.get("total_count") if isinstance(body, dict) else None
                if isinstance(count, int) and not isinstance(count, bool):
                    total = max(total or 0, count)
                rows = self._rows_of(body, self.spec.path)
                new = fresh(rows)
                yield from new
                if len(rows) < MAX_PER_PAGE:
                    exhausted = not descending
                if all_seen() or (descending and rows and not new):
                    break
        if not exhausted and not all_seen():
            LOGGER.info("cxi_responses: %d of %s reached by paging both ways; reading them through imports",
                        len(seen), total if total is not None else "an uncounted number")
            for import_body in self._pages("imports", enveloped=False, params={}):
                for summary in self._rows_of(import_body, "imports", enveloped=False):
                    if all_seen():
                        break
                    if not isinstance(summary, dict) or summary.get("id") is None:
                        continue
                    detail = self._get(f"imports/{summary['id']}")
                    responses = detail.get("responses") if isinstance(detail, dict) else None
                    if isinstance(responses, list):
                        yield from fresh(responses)
        if total is None and not exhausted:
            self.complete = False
            LOGGER.warning(
                "cxi_responses: the API gave no total_count and more responses than one listing reaches; "
                "%d were emitted and any shortfall cannot be counted", len(seen))
        elif total is not None and total > len(seen):
            self.complete = False
            LOGGER.warning(
                "cxi_responses: %d of the %d responses the API counts could not be reached (the API reaches "
                "1,500 from each end of its listing and through imports); %d were emitted",
                total - len(seen), total, len(seen),
            )

    # -- sync -----------------------------------------------------------------

    def run(self) -> None:
        spec = self.spec
        started = time.monotonic()
        write_schema(spec.name, selected_schema(self.schema, self.mdata), list(spec.key_properties))
        bookmark = self.state.setdefault("bookmarks", {}).setdefault(spec.name, {})
        version = bookmark.get("version") or int(time.time() * 1000)
        first_read = not bookmark.get("initial_full_table_complete")
        bookmark["version"] = version
        self.write_state(self.state)
        if first_read:
            write_version(spec.name, version)
        transformer = RecordTransformer(spec.name, self.schema, self.mdata)
        emitted = 0
        writer = RecordWriter(spec.name, version)
        with metrics.record_counter(spec.name) as counter:
            extracted_at = datetime.now(timezone.utc)
            for row in self.rows():
                writer.write([transformer.transform(row)], extracted_at)
                counter.increment()
                emitted += 1
        if self.complete:
            write_version(spec.name, version)
        else:
            LOGGER.warning("%s: the read was incomplete, so no ACTIVATE_VERSION is sent: targets keep the rows "
                           "of earlier reads", spec.name)
        bookmark.pop("version", None)
        bookmark["initial_full_table_complete"] = True
        self.write_state(self.state)
        LOGGER.info("%s: done: %d records emitted (full table, version %d), %d requests, %.1f s",
                    spec.name, emitted, version, self.requests, time.monotonic() - started)
        summary = transformer.summary()
        if summary:
            LOGGER.warning("%s: %s", spec.name, summary)
