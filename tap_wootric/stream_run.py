"""StreamRun: what every reader needs for one stream in one sync.

Schema, metadata and transformer; requests through the stream's API, counted; `emit` a page of
rows as RECORDs with the run's table version; the bookmark and `save_state`; one completeness
signal (`note_shortfall`, with its reason); progress lines; the closing summary. The readers
(incremental, full table, day streams) take one and keep only what they read and where their
bookmark goes.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

from singer import metadata, metrics
from singer.catalog import CatalogEntry

from tap_wootric.api.client import WootricClient
from tap_wootric.catalog.selection import selected_schema
from tap_wootric.errors import ApiError
from tap_wootric.streams import StreamSpec
from tap_wootric.timeutil import UnparseableTime, to_epoch_seconds
from tap_wootric.transform import RecordTransformer

LOGGER = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 30.0


def new_version(previous: Optional[int] = None) -> int:
    """A table version: milliseconds since the epoch, always above the previous one."""
    version = int(time.time() * 1000)
    return version if previous is None or version > previous else previous + 1


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class StreamRun:
    def __init__(self, client: WootricClient, spec: StreamSpec, entry: CatalogEntry, state: Dict[str, Any],
                 writer: Any):
        """`writer`: the MessageWriter, or in a parallel sync a stand-in that queues each message for it."""
        self.client = client
        self.spec = spec
        self.state = state
        self.writer = writer
        self.mdata = metadata.to_map(entry.metadata or [])
        self.schema = entry.schema.to_dict()
        self.transformer = RecordTransformer(spec.name, self.schema, self.mdata)
        # The table version every RECORD of this run carries (a full read's, or a reconciliation pass's).
        self.version: Optional[int] = None
        self.requests = 0
        self._count_lock = threading.Lock()  # a day stream's days are fetched by several threads
        self.records = 0
        # Rows read but not emitted (older than the bookmark, unchanged).
        self.skipped = 0
        # Why this run cannot prove it read every row; empty when it can.
        self.shortfalls: List[str] = []
        # Called before every STATE, to put what a reader holds in memory into the bookmark.
        self.before_save: List[Callable[[], None]] = []
        self._counter = metrics.Counter(metrics.Metric.record_count, {metrics.Tag.endpoint: spec.name})
        self.started = self._last_report = time.monotonic()

    def restart_clock(self) -> None:
        """The stream's read starts now (a parallel sync makes its runs before a worker takes them)."""
        self.started = self._last_report = time.monotonic()

    @property
    def name(self) -> str:
        return self.spec.name

    # -- the bookmark -------------------------------------------------------------

    @property
    def bookmark(self) -> Dict[str, Any]:
        return self.state.setdefault("bookmarks", {}).setdefault(self.spec.name, {})

    def stored(self, key: str) -> Any:
        """A bookmark value, read without creating the bookmark."""
        return ((self.state.get("bookmarks") or {}).get(self.spec.name) or {}).get(key)

    def save_state(self) -> None:
        for hook in self.before_save:
            hook()
        self.writer.state(self.state)

    # -- requests -------------------------------------------------------------------

    def get(self, path: Optional[str] = None, params: Optional[Dict[str, Any]] = None) -> Any:
        """GET a path of the stream's API (default: the stream's own) and count it."""
        with self._count_lock:
            self.requests += 1
        return self.client.get(self.spec.api, self.spec.path if path is None else path, params, label=self.spec.name)

    def get_rows(self, params: Dict[str, Any]) -> List[Dict[str, Any]]:
        body = self.get(params=params)
        if not isinstance(body, list):
            raise ApiError(f"GET /{self.spec.path} returned a {type(body).__name__}, not a list of records")
        return body

    def second_of(self, row: Dict[str, Any], field_name: str) -> int:
        """The whole UTC second of a row's time field; a row without one is an API error."""
        try:
            return to_epoch_seconds(row[field_name])
        except (KeyError, TypeError):
            raise ApiError(f"{self.spec.name}: a row (id {row.get('id')!r}) has no {field_name}") from None
        except UnparseableTime:
            raise ApiError(
                f"{self.spec.name}: row id {row.get('id')!r} has a {field_name} the tap cannot read as a time"
            ) from None

    # -- output ---------------------------------------------------------------------

    def write_schema(self) -> None:
        spec = self.spec
        self.writer.schema(spec.name, selected_schema(self.schema, self.mdata), list(spec.key_properties),
                           bookmark_properties=[spec.replication_key] if spec.replication_key else None)

    def emit(self, rows: List[Dict[str, Any]]) -> int:
        """Transform and write a page of rows with the run's table version; returns how many."""
        written = self.writer.records(self.spec.name, [self.transformer.transform(row) for row in rows],
                                      datetime.now(timezone.utc), self.version)
        self._counter.increment(written)
        self.records += written
        self.tick()
        return written

    # -- completeness, progress, summary -----------------------------------------------

    def note_shortfall(self, reason: str) -> None:
        if reason not in self.shortfalls:
            self.shortfalls.append(reason)

    @property
    def complete(self) -> bool:
        return not self.shortfalls

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last_report >= PROGRESS_INTERVAL_SECONDS:
            self._last_report = now
            LOGGER.info("%s: %s emitted so far, %s, %.0f s", self.spec.name, plural(self.records, "record"),
                        plural(self.requests, "request"), now - self.started)

    def finish(self, detail: str = "") -> None:
        """The closing summary: `detail` says what else this reader did (after the record count)."""
        self._counter.__exit__(None, None, None)
        LOGGER.info("%s: done: %s emitted%s, %s, %.1f s", self.spec.name, plural(self.records, "record"), detail,
                    plural(self.requests, "request"), time.monotonic() - self.started)
        summary = self.transformer.summary()
        if summary:
            LOGGER.warning("%s: %s", self.spec.name, summary)
