"""Sync: selected streams, bookmarks and STATE, emitting records.

Bookmarks are whole UTC seconds. The API renders times truncated to the second while
it filters on sub-second stored times, so every resume point re-reads its own second:
a few duplicates, never a gap.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import singer
from singer import metadata, metrics
from singer.catalog import Catalog, CatalogEntry

from tap_wootric.client import WootricClient
from tap_wootric.config import TapConfig
from tap_wootric.errors import ApiError
from tap_wootric.full_table import CxiUnavailable, FullTableSync
from tap_wootric.output import RecordWriter, write_schema
from tap_wootric.output import write_state as write_state_message
from tap_wootric.paging import MAX_PER_PAGE, KeysetScanner, PageQuery, QueryNotHonoured
from tap_wootric.selection import selected_schema, selected_streams
from tap_wootric.streams import CXI_API, INCREMENTAL, StreamSpec
from tap_wootric.timeutil import (
    UnparseableTime,
    format_epoch,
    parse_bookmark,
    to_epoch_seconds,
)
from tap_wootric.transform import RecordTransformer

LOGGER = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 30.0
SECONDS_PER_DAY = 86400


# -- progress -------------------------------------------------------------------


@dataclass
class Progress:
    stream: str
    path: str
    client: WootricClient
    records: int = 0
    skipped: int = 0
    requests_before: int = 0
    started: float = field(default_factory=time.monotonic)
    last_report: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.requests_before = self.client.request_counts[self.path]

    @property
    def requests(self) -> int:
        return self.client.request_counts[self.path] - self.requests_before

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_report >= PROGRESS_INTERVAL_SECONDS:
            self.last_report = now
            LOGGER.info("%s: %d records emitted so far, %d requests, %.0f s", self.stream, self.records,
                        self.requests, now - self.started)

    def finish(self) -> None:
        LOGGER.info(
            "%s: done: %d records emitted, %d older unchanged rows skipped, %d requests, %.1f s",
            self.stream, self.records, self.skipped, self.requests, time.monotonic() - self.started,
        )


# -- one stream -----------------------------------------------------------------


@dataclass(frozen=True)
class ScanPlan:
    """Where a stream's scan starts and ends, what it emits, and where its bookmark lands."""

    start: int
    upper: int
    emit_updated_since: Optional[int]
    final_bookmark: int
    resumed: bool
    # Rows created before this are skipped (start_date, when paging on updated_at).
    emit_created_since: Optional[int] = None


def plan_scan(spec: StreamSpec, config: TapConfig, bookmark: Dict[str, Any], signpost: int) -> ScanPlan:
    """Pure bookmark maths for one stream (unit tested)."""
    start_date = int(config.start_date.timestamp())
    updated_at = parse_bookmark(bookmark.get("updated_at"))
    upper = signpost + 1
    if not spec.uses_lookback:
        return ScanPlan(
            start=updated_at if updated_at is not None else start_date,
            upper=upper,
            emit_updated_since=None,
            final_bookmark=signpost,
            resumed=False,
        )
    position = parse_bookmark(bookmark.get("scan_position"))
    scan_signpost = parse_bookmark(bookmark.get("scan_signpost"))
    if position is not None and scan_signpost is not None:
        # Finish the interrupted scan, and bookmark the interrupted run's start: rows
        # behind the position were read after that moment, not after this run's start.
        return ScanPlan(position, upper, updated_at, min(scan_signpost, signpost), True)
    if updated_at is None:
        return ScanPlan(start_date, upper, None, signpost, False)
    lookback_start = updated_at - config.lookback_days * SECONDS_PER_DAY
    return ScanPlan(max(start_date, lookback_start), upper, updated_at, signpost, False)


class StreamSync:
    def __init__(
        self,
        client: WootricClient,
        config: TapConfig,
        spec: StreamSpec,
        entry: CatalogEntry,
        state: Dict[str, Any],
        signpost: int,
        write_state: Callable[[Dict[str, Any]], None],
    ):
        self.client = client
        self.config = config
        self.spec = spec
        self.state = state
        self.signpost = signpost
        self.write_state = write_state
        self.mdata = metadata.to_map(entry.metadata or [])
        self.schema = entry.schema.to_dict()

    def _second_of(self, row: Dict[str, Any], field_name: str) -> int:
        try:
            return to_epoch_seconds(row[field_name])
        except (KeyError, TypeError):
            raise ApiError(f"{self.spec.name}: a row (id {row.get('id')!r}) has no {field_name}") from None
        except UnparseableTime:
            raise ApiError(
                f"{self.spec.name}: row id {row.get('id')!r} has a {field_name} the tap cannot read as a time"
            ) from None

    def _fetch(self, query: PageQuery) -> List[Dict[str, Any]]:
        spec = self.spec
        params: Dict[str, Any] = {
            "page": query.page,
            "per_page": query.per_page,
            "sort_key": spec.scan_field,
            "sort_order": "desc" if query.descending else "asc",
            f"{spec.filter_param}[gte]": query.gte,
        }
        if query.lt is not None:
            params[f"{spec.filter_param}[lt]"] = query.lt
        return self._get_rows(params)

    def _get_rows(self, params: Dict[str, Any]) -> List[Dict[str, Any]]:
        body = self.client.get(self.spec.path, params)
        if not isinstance(body, list):
            raise ApiError(f"GET /{self.spec.path} returned a {type(body).__name__}, not a list of records")
        return body

    def run(self) -> None:
        spec = self.spec
        write_schema(
            spec.name,
            selected_schema(self.schema, self.mdata),
            list(spec.key_properties),
            bookmark_properties=[spec.replication_key],
        )
        bookmark = dict((self.state.get("bookmarks") or {}).get(spec.name) or {})
        if spec.uses_lookback and "scan_position" not in bookmark:
            if self._try_updated_paging(bookmark):
                return
            # Undo whatever the attempt checkpointed: the lookback scan starts from the run's bookmark.
            self.state.setdefault("bookmarks", {})[spec.name] = dict(bookmark)
            self.write_state(self.state)
        self._scan(plan_scan(spec, self.config, bookmark, self.signpost))

    def _probe(self, params: Dict[str, Any]) -> List[Dict[str, Any]]:
        return self._get_rows({"page": 1, "sort_key": "updated_at", "sort_order": "desc", **params})

    def _updated_paging_verdict(self) -> Tuple[Optional[str], Optional[int]]:
        """Whether paging on updated_at can be trusted here: (None, newest updated second) if so, else
        (the reason, None). Two cheap requests decide it, judged by the timestamps that come back:

        1. Rows updated an hour after the sync started: an API that honours `updated[...]` has none;
           one that silently ignores it (what the notes expect) sends its newest row.
        2. The 50 most recently updated rows, sorted on updated_at: they must come newest first, and,
           to prove the sort is not simply creation order, in an order that creation order is not.
           Keyset paging skips rows if the filter works but the sort does not.
        """
        if self._probe({"per_page": 1, "updated[gte]": self.signpost + 3600}):
            return "the API ignores updated[...]", None
        newest = self._probe({"per_page": MAX_PER_PAGE, "updated[lt]": self.signpost + 1})
        updated = [self._second_of(row, "updated_at") for row in newest]
        created = [self._second_of(row, "created_at") for row in newest]
        if any(later > earlier for earlier, later in zip(updated, updated[1:])):
            return "the API filters on updated[...] but does not sort on updated_at", None
        if all(later <= earlier for earlier, later in zip(created, created[1:])):
            # Newest-updated and newest-created order agree on this page, so it cannot tell them apart.
            return "the API filters on updated[...], but whether it sorts on updated_at could not be confirmed", None
        return None, updated[0]

    def _try_updated_paging(self, bookmark: Dict[str, Any]) -> bool:
        """Page on updated_at if the API honours `updated[...]` and the sort here, which makes the lookback
        rescan unnecessary and catches every edit. Each page is still judged by the timestamps it holds: a
        row outside the filter or out of order means the filter or the sort is not honoured after all."""
        created_spec = self.spec
        refusal, newest = self._updated_paging_verdict()
        if refusal is not None:
            LOGGER.info("%s: %s on /%s; paging on %s with a %d-day lookback", created_spec.name, refusal,
                        created_spec.path, created_spec.scan_field, self.config.lookback_days)
            return False
        LOGGER.info("%s: the API honours updated[...] and its sort on /%s; paging on updated_at, no lookback "
                    "needed", created_spec.name, created_spec.path)
        self.spec = replace(created_spec, scan_field=created_spec.replication_key, filter_param="updated")
        plan = plan_scan(self.spec, self.config, bookmark, self.signpost)
        plan = replace(plan, emit_created_since=int(self.config.start_date.timestamp()))
        if newest is not None and newest < plan.start:
            # The most recently updated row is older than the bookmark: nothing to read.
            LOGGER.info("%s: nothing updated since %s", created_spec.name, format_epoch(plan.start))
            self.spec = created_spec
            self._finish(plan)
            return True
        try:
            self._scan(plan)
            return True
        except QueryNotHonoured as exc:
            LOGGER.warning(
                "%s: paging on updated_at failed (%s); paging on %s with a %d-day lookback instead",
                created_spec.name, exc, created_spec.scan_field, self.config.lookback_days,
            )
            return False
        finally:
            self.spec = created_spec

    def _scan(self, plan: ScanPlan) -> None:
        spec = self.spec
        LOGGER.info(
            "%s: %s scan of %s from %s to %s%s",
            spec.name,
            "resuming the" if plan.resumed else "starting a",
            spec.scan_field,
            format_epoch(plan.start),
            format_epoch(plan.upper),
            f", emitting rows updated since {format_epoch(plan.emit_updated_since)}"
            if plan.emit_updated_since is not None else "",
        )
        progress = Progress(spec.name, spec.path, self.client)
        scanner = KeysetScanner(
            self._fetch, lambda row: self._second_of(row, spec.scan_field), stream=spec.name, logger=LOGGER
        )
        transformer = RecordTransformer(spec.name, self.schema, self.mdata)
        writer = RecordWriter(spec.name)
        with metrics.record_counter(spec.name) as counter:
            for batch in scanner.scan(plan.start, plan.upper):
                extracted_at = datetime.now(timezone.utc)
                written = writer.write(
                    [transformer.transform(row) for row in self._emittable(batch.records, plan, progress)],
                    extracted_at,
                )
                counter.increment(written)
                progress.records += written
                if batch.checkpoint is not None:
                    self._checkpoint(plan, batch.checkpoint)
                progress.tick()
        self._finish(plan)
        progress.finish()
        summary = transformer.summary()
        if summary:
            LOGGER.warning("%s: %s", spec.name, summary)

    def _emittable(self, rows: List[Dict[str, Any]], plan: ScanPlan, progress: Progress) -> Iterator[Dict[str, Any]]:
        since = plan.emit_updated_since
        created_since = plan.emit_created_since
        for row in rows:
            if since is not None and self._second_of(row, self.spec.replication_key) < since:
                progress.skipped += 1
                continue
            if created_since is not None and self._second_of(row, "created_at") < created_since:
                progress.skipped += 1
                continue
            yield row

    def _stream_bookmark(self) -> Dict[str, Any]:
        bookmarks = self.state.setdefault("bookmarks", {})
        return bookmarks.setdefault(self.spec.name, {})

    def _checkpoint(self, plan: ScanPlan, checkpoint: int) -> None:
        bookmark = self._stream_bookmark()
        before = dict(bookmark)
        if self.spec.uses_lookback:
            bookmark["scan_position"] = format_epoch(min(checkpoint, plan.upper))
            bookmark["scan_signpost"] = format_epoch(plan.final_bookmark)
        else:
            bookmark["updated_at"] = format_epoch(min(checkpoint, plan.final_bookmark))
        if bookmark != before:
            self.write_state(self.state)

    def _finish(self, plan: ScanPlan) -> None:
        bookmark = self._stream_bookmark()
        bookmark.pop("scan_position", None)
        bookmark.pop("scan_signpost", None)
        bookmark["updated_at"] = format_epoch(plan.final_bookmark)
        self.write_state(self.state)


# -- all streams ----------------------------------------------------------------


def sync(client: WootricClient, config: TapConfig, catalog: Catalog, state: Dict[str, Any]) -> Dict[str, Any]:
    state = copy.deepcopy(state)
    streams = selected_streams(catalog, state)
    if not streams:
        LOGGER.warning("No stream is selected in the catalog; nothing to sync")
        return state
    # The signpost: no bookmark may pass the moment this sync started.
    signpost = int(time.time())
    LOGGER.info("Syncing %s", ", ".join(spec.name for spec, _ in streams))

    def write_state(value: Dict[str, Any]) -> None:
        write_state_message(copy.deepcopy(value))

    cxi_refusal: Optional[str] = None
    for spec, entry in streams:
        if spec.api == CXI_API and cxi_refusal is not None:
            continue
        state = singer.set_currently_syncing(state, spec.name)
        write_state(state)
        if spec.replication_method == INCREMENTAL:
            StreamSync(client, config, spec, entry, state, signpost, write_state).run()
            continue
        try:
            FullTableSync(client, spec, entry, state, write_state).run()
        except CxiUnavailable as exc:
            # Most Wootric accounts have no CXI; that must not fail the other streams.
            cxi_refusal = str(exc)
            skipped = [s.name for s, _ in streams if s.api == CXI_API]
            LOGGER.warning("CXI streams skipped: the CXI API refused this account (%s); skipped: %s",
                           cxi_refusal, ", ".join(skipped))
    state = singer.set_currently_syncing(state, None)
    write_state(state)
    return state
