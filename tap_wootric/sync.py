"""Sync: every selected stream in order, with `currently_syncing`, each through the reader its row in
the stream table names, and the one rule for an account that lacks a feature."""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Dict, List, Tuple

import singer
from singer.catalog import Catalog, CatalogEntry

from tap_wootric.api.client import WootricClient
from tap_wootric.cancel import Cancelled, WorkerStopped
from tap_wootric.catalog.selection import selected_streams
from tap_wootric.config import TapConfig
from tap_wootric.errors import Refused
from tap_wootric.incremental.reader import IncrementalReader
from tap_wootric.incremental.reconcile import STATE_KEY, ReconcilePass
from tap_wootric.output import MessageWriter
from tap_wootric.parallel import JOIN_SECONDS, ItemQueue, Pacer, QueuedWriter, StreamPool, start_worker
from tap_wootric.readers.daily import DailyReader, account_today
from tap_wootric.readers.full_table import FullTableReader
from tap_wootric.stream_run import StreamRun
from tap_wootric.streams import STREAMS, StreamSpec
from tap_wootric.timeutil import format_epoch

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncBounds:
    """What every reader of one sync shares: the config and the moments that bound the sync."""

    config: TapConfig
    # No bookmark may pass this moment: the API's time when the sync started, less the commit margin.
    signpost: int
    # The day in progress in the account's time zone.
    today: date


READERS: Dict[str, Callable[[StreamRun, SyncBounds], Any]] = {
    "incremental": lambda run, bounds: IncrementalReader(run, bounds.config, bounds.signpost),
    "full_table": lambda run, bounds: FullTableReader(run),
    "daily": lambda run, bounds: DailyReader(run, bounds.config, bounds.today),
}


def sync_bounds(client: WootricClient, config: TapConfig) -> SyncBounds:
    """The API's clock bounds the sync, less the margin for rows committed after they were stamped."""
    now = client.clock.now()
    bounds = SyncBounds(config, int(now) - config.commit_margin_seconds, account_today(config.account_timezone, now))
    if config.start_date.timestamp() > bounds.signpost:
        LOGGER.warning("start_date %s lies in the future: incremental streams emit nothing older, so nothing "
                       "until then", format_epoch(int(config.start_date.timestamp())))
    return bounds


def abandon_deselected_passes(state: Dict[str, Any], selected: set) -> bool:
    """A pass whose stream sat out a run cannot prove what that run would have read: start it over."""
    changed = False
    for spec in STREAMS:
        if spec.read_by != "incremental" or spec.name in selected:
            continue
        bookmark = (state.get("bookmarks") or {}).get(spec.name) or {}
        raw = bookmark.get(STATE_KEY) or {}
        if "version" in raw:
            LOGGER.warning("%s: not selected in this run, so its reconciliation pass (version %s) cannot prove that "
                           "it read every row; it sends no ACTIVATE_VERSION and starts over when the stream is "
                           "selected again", spec.name, raw["version"])
            bookmark[STATE_KEY] = ReconcilePass.completed_state(raw["version"], raw.get("estimate") or 0)
            changed = True
    return changed


class Skips:
    """The one rule for refusals: a required stream's refusal fails the run; an optional stream the
    account lacks is skipped, with the other streams of its API when the API is shared (CXI, v2),
    and its state stays as it was."""

    def __init__(self, streams: List[Tuple[StreamSpec, CatalogEntry]]):
        self.streams = [spec for spec, _ in streams]
        self.refused_apis: Dict[str, str] = {}
        self.skipped: List[Tuple[str, str]] = []

    def refused_api(self, spec: StreamSpec) -> bool:
        return spec.api.name in self.refused_apis

    def refused(self, spec: StreamSpec, exc: Refused, state: Dict[str, Any], saved: Any) -> None:
        if spec.required:
            raise exc
        bookmarks = state.setdefault("bookmarks", {})
        if saved is None:
            bookmarks.pop(spec.name, None)
        else:
            bookmarks[spec.name] = saved
        if spec.api.shared:
            self._skip_api(spec, exc)
        else:
            LOGGER.warning("%s skipped: the account has no such feature (%s)", spec.name, exc)
            self.skipped.append((spec.name, str(exc)))

    def _skip_api(self, spec: StreamSpec, exc: Refused) -> None:
        """Every stream of a shared API goes with it: the ones read already this run were not refused."""
        self.refused_apis[spec.api.name] = str(exc)
        names = [other.name for other in self.streams if other.api == spec.api]
        LOGGER.warning("%s skipped: %s refused this account (%s); skipped: %s", spec.api.group, spec.api.title,
                       exc, ", ".join(names))
        self.skipped += [(name, f"{spec.api.title} refused this account: {exc}") for name in names
                         if name not in {skipped for skipped, _ in self.skipped}]

    def summary(self, synced: int) -> None:
        if self.skipped:
            LOGGER.warning("Sync finished: %d stream(s) synced, %d skipped because this account lacks them: %s; "
                           "their state is kept, so the next run tries them again", synced, len(self.skipped),
                           "; ".join(f"{name} ({reason})" for name, reason in self.skipped))
        else:
            LOGGER.info("Sync finished: %d stream(s) synced", synced)


def sync(client: WootricClient, config: TapConfig, catalog: Catalog, state: Dict[str, Any]) -> Dict[str, Any]:
    state = copy.deepcopy(state)
    writer = MessageWriter()
    streams = selected_streams(catalog, state)
    if not streams:
        LOGGER.warning("No stream is selected in the catalog; nothing to sync")
        return state
    bounds = sync_bounds(client, config)
    LOGGER.info("Syncing %s", ", ".join(spec.name for spec, _ in streams))
    if abandon_deselected_passes(state, {spec.name for spec, _ in streams}):
        writer.state(state)
    skips = Skips(streams)
    if config.workers > 1:
        return ParallelSync(client, bounds, streams, state, writer, skips).run()
    return sync_in_order(client, bounds, streams, state, writer, skips)


def sync_in_order(client: WootricClient, bounds: SyncBounds, streams: List[Tuple[StreamSpec, CatalogEntry]],
                  state: Dict[str, Any], writer: MessageWriter, skips: Skips) -> Dict[str, Any]:
    """One stream after another (workers: 1), with `currently_syncing` naming the one being read."""
    synced = 0
    for spec, entry in streams:
        if skips.refused_api(spec):
            continue
        state = singer.set_currently_syncing(state, spec.name)
        writer.state(state)
        saved = copy.deepcopy((state.get("bookmarks") or {}).get(spec.name))
        run = StreamRun(client, spec, entry, state, writer)
        try:
            READERS[spec.read_by](run, bounds).run_stream()
            synced += 1
        except Refused as exc:
            skips.refused(spec, exc, state, saved)
            writer.state(state)
    state = singer.set_currently_syncing(state, None)
    writer.state(state)
    skips.summary(synced)
    return state


class ParallelSync:
    """The streams of one sync read at once, a thread each (see parallel.py); this thread writes.

    The state here is the writer's: a stream's bookmark in it changes only when one of that stream's
    STATE items is written, so every STATE written is a resume point. `currently_syncing` names the
    first stream, in the sync's order, that has started and not finished: a resumed run starts there,
    and every other stream resumes from its own bookmark whatever the order.
    """

    def __init__(self, client: WootricClient, bounds: SyncBounds, streams: List[Tuple[StreamSpec, CatalogEntry]],
                 state: Dict[str, Any], writer: MessageWriter, skips: Skips):
        self.client = client
        self.bounds = bounds
        self.streams = {spec.name: (spec, entry) for spec, entry in streams}
        self.order = [spec.name for spec, _ in streams]
        self.state = state
        self.writer = writer
        self.skips = skips
        # Up to a thread a stream: the streams are independent, so the run lasts as long as its slowest one.
        # The client keeps each stream to `workers` requests in flight, and the account to its own cap.
        self.most_threads = len(streams)
        self.items = ItemQueue(max(bounds.config.workers, len(streams)), client.cancellation)
        self.saved = {name: copy.deepcopy((state.get("bookmarks") or {}).get(name)) for name in self.order}
        # The runs are made here: making one reads singer's logging config, which is no thing to do
        # while other threads log.
        self.runs = {name: StreamRun(client, spec, entry, self._private_state(name), QueuedWriter(name, self.items))
                     for name, (spec, entry) in self.streams.items()}
        self.pool = StreamPool(self.order, lambda name: skips.refused_api(self.streams[name][0]))
        self.started: List[str] = []
        self.finished: set = set()
        self.synced = 0

    def _private_state(self, name: str) -> Dict[str, Any]:
        """A worker's own state: its stream's bookmark only, which no other thread touches."""
        bookmark = (self.state.get("bookmarks") or {}).get(name)
        return {} if bookmark is None else {"bookmarks": {name: copy.deepcopy(bookmark)}}

    def run(self) -> Dict[str, Any]:
        LOGGER.info("Reading with %d workers per stream: up to %d streams at once while the API keeps the tap "
                    "waiting, at most %d requests in flight",
                    self.bounds.config.workers, len(self.order), min(self.client.in_flight.account,
                                                                     self.bounds.config.workers * len(self.order)))
        # One stream's thread to begin with; another whenever the tap has been waiting more than working.
        threads = [start_worker("worker-0", self._work)]
        pacer = Pacer(time.monotonic, time.process_time, lambda: self.client.waiting,
                      lambda: self.client.limiter.seen_limits)
        try:
            exited = 0
            while exited < len(threads):
                item = self.items.get()
                if item is not None and item[0] == "exit":
                    exited += 1
                elif item is not None:
                    self._write(item)
                while len(threads) < self.most_threads and self.pool.pending and pacer.another_pays():
                    threads.append(start_worker(f"worker-{len(threads)}", self._work))
                    pacer.started()
        finally:
            self.client.cancellation.stop_workers()
            deadline = JOIN_SECONDS
            for thread in threads:
                thread.join(timeout=deadline / len(threads))
        self.state = singer.set_currently_syncing(self.state, None)
        self.writer.state(self.state)
        self.skips.summary(self.synced)
        return self.state

    # -- workers --------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while True:
                name = self.pool.next()
                if name is None:
                    break
                self.items.put(("start", name))
                run = self.runs[name]
                run.restart_clock()
                try:
                    READERS[run.spec.read_by](run, self.bounds).run_stream()
                    self.items.put(("done", name))
                except Refused as exc:
                    self.items.put(("refused", name, exc))
        except (WorkerStopped, Cancelled):
            return
        except BaseException as exc:  # noqa: BLE001 - the main thread reports it and ends the run
            self._hand_over(("error", exc))
            return
        self._hand_over(("exit",))

    def _hand_over(self, item: Tuple[Any, ...]) -> None:
        with contextlib.suppress(WorkerStopped, Cancelled):
            self.items.put(item)

    # -- the writer -----------------------------------------------------------------

    def _write(self, item: Tuple[Any, ...]) -> None:
        """Carry out one item a worker queued; every message of the sync is written here."""
        handlers: Dict[str, Callable[..., None]] = {
            "records": lambda stream, page, extracted, version: self.writer.records(stream, page, extracted, version),
            "schema": lambda stream, schema, keys, bookmark_properties: self.writer.schema(
                stream, schema, keys, bookmark_properties=bookmark_properties),
            "state": self._bookmark_written,
            "activate_version": self.writer.activate_version,
            "start": self._started,
            "done": self._done,
            "refused": self._refused,
            "error": self._raise,
        }
        handlers[item[0]](*item[1:])

    def _bookmark_written(self, name: str, bookmark: Any) -> None:
        bookmarks = self.state.setdefault("bookmarks", {})
        if bookmark is None:
            bookmarks.pop(name, None)
        else:
            bookmarks[name] = bookmark
        self._write_state()

    def _started(self, name: str) -> None:
        self.started.append(name)
        self._write_state()

    def _done(self, name: str) -> None:
        self.finished.add(name)
        self.synced += 1

    @staticmethod
    def _raise(exc: BaseException) -> None:
        raise exc

    def _refused(self, name: str, exc: Refused) -> None:
        spec = self.streams[name][0]
        self.finished.add(name)
        if spec.api.shared and self.skips.refused_api(spec) and not spec.required:
            # Another stream of this API was refused already (they ran at once): one warning is enough.
            bookmarks = self.state.setdefault("bookmarks", {})
            if self.saved[name] is None:
                bookmarks.pop(name, None)
            else:
                bookmarks[name] = copy.deepcopy(self.saved[name])
        else:
            self.skips.refused(spec, exc, self.state, copy.deepcopy(self.saved[name]))
        self._write_state()

    def _write_state(self) -> None:
        current = next((name for name in self.started if name not in self.finished), None)
        self.state = singer.set_currently_syncing(self.state, current)
        self.writer.state(self.state)
