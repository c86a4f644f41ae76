"""One incremental stream's run: the strategy the probe chose, then a slice of the reconciliation pass.

Bookmarks are whole UTC seconds. The API renders times truncated to the second while it filters
on sub-second stored times, so every resume point re-reads its own second: a few duplicates,
never a gap.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional

from singer import metadata, metrics
from singer.catalog import CatalogEntry

from tap_wootric.api.client import WootricClient
from tap_wootric.catalog.selection import selected_schema
from tap_wootric.config import TapConfig
from tap_wootric.errors import ApiError
from tap_wootric.incremental.paging import Batch, KeysetScanner, PageQuery, QueryNotHonoured, ScanStats
from tap_wootric.incremental.probe import Verdict, probe
from tap_wootric.incremental.reconcile import STATE_KEY, ReconcilePass
from tap_wootric.incremental.strategies import choose
from tap_wootric.output import MessageWriter
from tap_wootric.streams import StreamSpec
from tap_wootric.timeutil import UnparseableTime, format_epoch, parse_bookmark, to_epoch_seconds
from tap_wootric.transform import RecordTransformer

LOGGER = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 30.0
SECONDS_PER_DAY = 86400


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


@dataclass(frozen=True)
class ScanPlan:
    """Where a scan starts and ends, what it emits, and where the bookmark lands."""

    start: int
    upper: int
    emit_updated_since: Optional[int]
    final_bookmark: int
    resumed: bool
    # Rows created before this are skipped (start_date, when paging on updated_at).
    emit_created_since: Optional[int] = None


def plan_scan(spec: StreamSpec, config: TapConfig, bookmark: Dict[str, Any], signpost: int,
              lookback_days: Optional[int] = None, *, replication_scan: bool = False,
              from_start_date: bool = False) -> ScanPlan:
    """Pure bookmark maths for one scan (unit tested). `replication_scan`: the scan pages on the
    replication key itself; `from_start_date`: it covers the whole history (a server-side filter
    keeps it to the edits)."""
    start_date = int(config.start_date.timestamp())
    updated_at = parse_bookmark(bookmark.get(spec.replication_key))
    if updated_at is not None and updated_at < start_date:
        updated_at = None  # start_date was raised (or lies ahead): nothing older may come back
    upper = signpost + 1
    # The bookmark never falls below start_date, not even when start_date lies in the future.
    final_bookmark = max(signpost, start_date)
    if replication_scan or not spec.probes_edits:
        return ScanPlan(updated_at if updated_at is not None else start_date, upper, None, final_bookmark, False)
    position = parse_bookmark(bookmark.get("scan_position"))
    scan_signpost = parse_bookmark(bookmark.get("scan_signpost"))
    if position is not None and scan_signpost is not None:
        # Finish the interrupted scan, and bookmark the interrupted run's start: rows
        # behind the position were read after that moment, not after this run's start.
        return ScanPlan(max(position, start_date), upper, updated_at,
                        max(min(scan_signpost, signpost), start_date), True)
    if updated_at is None:
        return ScanPlan(start_date, upper, None, final_bookmark, False)
    if from_start_date:
        return ScanPlan(start_date, upper, updated_at, final_bookmark, False)
    days = config.lookback_days if lookback_days is None else lookback_days
    lookback_start = updated_at - days * SECONDS_PER_DAY
    return ScanPlan(max(start_date, lookback_start), upper, updated_at, final_bookmark, False)


class IncrementalSync:
    """The context a strategy runs in: requests, emitting, checkpoints and the bookmark."""

    def __init__(self, client: WootricClient, config: TapConfig, spec: StreamSpec, entry: CatalogEntry,
                 state: Dict[str, Any], signpost: int, writer: MessageWriter):
        self.client = client
        self.config = config
        self.spec = spec
        self.state = state
        self.signpost = signpost
        self.writer = writer
        self.mdata = metadata.to_map(entry.metadata or [])
        self.schema = entry.schema.to_dict()
        self.start_date = int(config.start_date.timestamp())
        self.transformer = RecordTransformer(spec.name, self.schema, self.mdata)
        self.progress = Progress(spec.name, spec.path, client)
        self.version: Optional[int] = None
        self.pass_: Optional[ReconcilePass] = None
        # Whether old edits reach the warehouse only through the pass (world C).
        self.catches_old_edits = False
        self.verdict: Optional[Verdict] = None

    # -- the interface strategies use -------------------------------------------

    @property
    def bookmark(self) -> Dict[str, Any]:
        return self.state.setdefault("bookmarks", {}).setdefault(self.spec.name, {})

    def save_state(self) -> None:
        if self.pass_ is not None:
            self.bookmark[STATE_KEY] = self.pass_.to_state()
        self.writer.state(self.state)

    def second_of(self, row: Dict[str, Any], field_name: str) -> int:
        try:
            return to_epoch_seconds(row[field_name])
        except (KeyError, TypeError):
            raise ApiError(f"{self.spec.name}: a row (id {row.get('id')!r}) has no {field_name}") from None
        except UnparseableTime:
            raise ApiError(
                f"{self.spec.name}: row id {row.get('id')!r} has a {field_name} the tap cannot read as a time"
            ) from None

    def get_rows(self, params: Dict[str, Any]) -> List[Dict[str, Any]]:
        body = self.client.get(self.spec.path, params)
        if not isinstance(body, list):
            raise ApiError(f"GET /{self.spec.path} returned a {type(body).__name__}, not a list of records")
        return body

    def plan(self, lookback_days: int, **kwargs: Any) -> ScanPlan:
        return plan_scan(self.spec, self.config, self.bookmark, self.signpost, lookback_days, **kwargs)

    def note_shortfall(self, reason: str) -> None:
        if self.pass_ is not None:
            self.pass_.note_shortfall(reason)

    @contextlib.contextmanager
    def emitting(self) -> Iterator[Callable[[List[Dict[str, Any]]], int]]:
        """A function that transforms and writes a page of rows (with the pass's version)."""
        with metrics.record_counter(self.spec.name) as counter:
            def emit(rows: List[Dict[str, Any]]) -> int:
                written = self.writer.records(self.spec.name, [self.transformer.transform(row) for row in rows],
                                              datetime.now(timezone.utc), self.version)
                counter.increment(written)
                self.progress.records += written
                self.progress.tick()
                return written

            yield emit

    def scan(self, plan: ScanPlan, *, field: str, filter_param: str,
             extra_params: Optional[Dict[str, Any]] = None, created_since: Optional[int] = None,
             require_updated_since: Optional[int] = None) -> None:
        """Keyset-scan `field` over the plan, checkpointing the bookmark, then finish it."""
        spec = self.spec
        if plan.start >= plan.upper:  # start_date lies ahead of this sync: nothing to read yet
            self.finish(plan.final_bookmark)
            return
        LOGGER.info(
            "%s: %s scan of %s from %s to %s%s", spec.name, "resuming the" if plan.resumed else "starting a", field,
            format_epoch(plan.start), format_epoch(plan.upper),
            f", emitting rows updated since {format_epoch(plan.emit_updated_since)}"
            if plan.emit_updated_since is not None else "",
        )
        updated_since = plan.emit_updated_since
        created_floor = plan.emit_created_since if created_since is None else created_since

        def keep(row: Dict[str, Any]) -> bool:
            # Nothing older than start_date, even from an API that ignores the query's filter.
            if self.second_of(row, spec.scan_field) < self.start_date:
                return False
            if require_updated_since is not None and self.second_of(row, spec.replication_key) < require_updated_since:
                raise QueryNotHonoured(f"{spec.name}: the API returned a row (id {row.get('id')!r}) updated before "
                                       f"the {spec.replication_filter_param}[gte] filter")
            if updated_since is not None and self.second_of(row, spec.replication_key) < updated_since:
                return False
            return created_floor is None or self.second_of(row, spec.created_field) >= created_floor

        def checkpoint(second: int) -> None:
            bookmark = self.bookmark
            before = dict(bookmark)
            if field == spec.replication_key:
                bookmark[spec.replication_key] = format_epoch(min(second, plan.final_bookmark))
            else:
                bookmark["scan_position"] = format_epoch(min(second, plan.upper))
                bookmark["scan_signpost"] = format_epoch(plan.final_bookmark)
            if bookmark != before:
                self.save_state()

        stats = self.keyset(field, filter_param, plan.start, plan.upper, keep, checkpoint, extra_params)
        self._shortfall_of(stats)
        self.finish(plan.final_bookmark)

    def keyset(self, field: str, filter_param: str, start: int, upper: int, keep: Callable[[Dict[str, Any]], bool],
               checkpoint: Callable[[int], None], extra_params: Optional[Dict[str, Any]] = None,
               stop_after_rows: Optional[int] = None) -> ScanStats:
        """Keyset-scan `field` in [start, upper), emitting the rows `keep` accepts and calling
        `checkpoint(second)` at each safe point; with `stop_after_rows`, stop at the first checkpoint
        after that many rows were read. The stats' `completed` says whether the range was read to its end."""

        alternative = self.alternative_sort_key(field)

        def fetch(query: PageQuery) -> List[Dict[str, Any]]:
            params: Dict[str, Any] = {
                "page": query.page, "per_page": query.per_page,
                "sort_key": alternative if query.alternative_sort else field,
                "sort_order": "desc" if query.descending else "asc", f"{filter_param}[gte]": query.gte,
                **(extra_params or {}),
            }
            if query.lt is not None:
                params[f"{filter_param}[lt]"] = query.lt
            return self.get_rows(params)

        scanner = KeysetScanner(fetch, lambda row: self.second_of(row, field), stream=self.spec.name, logger=LOGGER,
                                alternative_sort=alternative is not None)
        read = 0
        batch: Optional[Batch] = None  # None once the scan has ended by itself
        with self.emitting() as emit:
            for batch in scanner.scan(start, upper):
                records, stop_at = batch.records, None
                if stop_after_rows is not None and read + len(records) > stop_after_rows:
                    # Stop inside the page: rows come in scan order, so the first row left unread
                    # gives a resume point that re-reads only its own second.
                    taken = max(0, stop_after_rows - read)
                    records, stop_at = records[:taken], self.second_of(records[taken], field)
                kept = [row for row in records if keep(row)]
                self.progress.skipped += len(records) - len(kept)
                read += len(records)
                emit(kept)
                if stop_at is not None:
                    checkpoint(stop_at)
                    break
                if batch.checkpoint is not None:
                    checkpoint(batch.checkpoint)
                    if stop_after_rows is not None and read >= stop_after_rows:
                        break
            else:
                batch = None
        scanner.stats.completed = batch is None
        return scanner.stats

    def alternative_sort_key(self, field: str) -> Optional[str]:
        """The other key the API sorts on here, documented or proved by this run's probe."""
        spec = self.spec
        if field == spec.scan_field and spec.alternative_sort_key:
            return spec.alternative_sort_key
        if field == spec.scan_field and self.verdict is not None and self.verdict.sort_honoured:
            return spec.replication_key
        return None

    def finish(self, final_bookmark: int) -> None:
        bookmark = self.bookmark
        bookmark.pop("scan_position", None)
        bookmark.pop("scan_signpost", None)
        bookmark[self.spec.replication_key] = format_epoch(final_bookmark)
        self.save_state()

    def _shortfall_of(self, stats: ScanStats) -> None:
        if stats.unreached_seconds:
            self.note_shortfall(f"{stats.unreached_seconds} second(s) held more rows than the API can reach")

    # -- the run ------------------------------------------------------------------

    def _probe(self) -> Verdict:
        spec = self.spec
        self.verdict = probe(self.get_rows, lambda row: self.second_of(row, spec.replication_key),
                     lambda row: self.second_of(row, spec.created_field),
                     updated_param=spec.replication_filter_param, updated_field=spec.replication_key,
                     created_field=spec.created_field, signpost=self.signpost)
        return self.verdict

    def run(self) -> None:
        spec = self.spec
        self.writer.schema(spec.name, selected_schema(self.schema, self.mdata), list(spec.key_properties),
                           bookmark_properties=[spec.replication_key])
        runs = self.config.reconcile_runs
        first_read = self.bookmark.get(spec.replication_key) is None
        previous_bookmark = parse_bookmark(self.bookmark.get(spec.replication_key))
        if runs:
            self.pass_ = ReconcilePass.from_state(self.bookmark, self.start_date)
            self.version = self.pass_.version
            self.save_state()
        else:
            self.bookmark.pop(STATE_KEY, None)
        before = {key: value for key, value in self.bookmark.items() if key != STATE_KEY}
        strategy = choose(spec, self.bookmark, self._probe, configured_lookback=self.config.lookback_days,
                          passes_on=bool(runs))
        LOGGER.info("%s: read strategy: %s (%s)", spec.name, strategy.name, strategy.reason)
        self.catches_old_edits = strategy.relies_on_pass
        try:
            strategy.run(self)
        except QueryNotHonoured as exc:
            if strategy.fallback is None:
                raise
            LOGGER.warning("%s: %s; falling back to the %s (%s)", spec.name, exc, strategy.fallback.name,
                           strategy.fallback.reason)
            # Undo whatever the failed read checkpointed: the fallback starts from the run's bookmark.
            bookmark = self.bookmark
            for key in [key for key in bookmark if key != STATE_KEY]:
                del bookmark[key]
            bookmark.update(before)
            self.save_state()
            strategy.fallback.run(self)
            self.catches_old_edits = strategy.fallback.relies_on_pass
        if not runs and self.catches_old_edits:
            LOGGER.warning("%s: edits to rows created before the %d-day lookback are not caught, because "
                           "reconcile_runs is 0", spec.name, self.config.lookback_days)
        if self.pass_ is not None:
            if first_read:
                self.pass_.read = self.progress.records
                self._complete_pass()
            elif previous_bookmark is not None:
                self._slice(previous_bookmark)
        self.progress.finish()
        summary = self.transformer.summary()
        if summary:
            LOGGER.warning("%s: %s", spec.name, summary)

    # -- the reconciliation pass ----------------------------------------------------

    def _slice(self, end: int) -> None:
        """This run's share of the pass: from its cursor towards `end`, the bookmark this run started from
        (rows past it were emitted by this run's strategy, with the pass's version)."""
        pass_ = self.pass_
        assert pass_ is not None
        spec = self.spec
        runs = self.config.reconcile_runs
        budget = pass_.row_budget(runs)
        slice_end = pass_.slice_end(runs, end)
        LOGGER.info("%s: reconciliation pass (version %d), run %d of at most %d: reading %s from %s%s",
                    spec.name, pass_.version, pass_.runs + 1, runs, spec.scan_field, format_epoch(pass_.cursor),
                    f" (about {budget} rows)" if budget is not None else f" to {format_epoch(slice_end)}")
        read_before = pass_.read

        def checkpoint(second: int) -> None:
            pass_.cursor = max(pass_.cursor, second)
            self.save_state()

        counter = {"read": 0}

        def keep(row: Dict[str, Any]) -> bool:
            counter["read"] += 1
            pass_.read = read_before + counter["read"]
            return True

        stats = self.keyset(spec.scan_field, spec.filter_param, pass_.cursor, slice_end + 1, keep, checkpoint,
                            stop_after_rows=budget)
        self._shortfall_of(stats)
        pass_.runs += 1
        if stats.completed:
            pass_.cursor = slice_end + 1 if slice_end < end else end
        if stats.completed and slice_end >= end:
            self._complete_pass()
            return
        self.save_state()
        left = pass_.runs_left(runs)
        LOGGER.info("%s: reconciliation pass (version %d): %d rows read in %d run(s)%s; it completes within %d "
                    "more run(s)%s, and then rows deleted at the source leave the targets that support table "
                    "versions", spec.name, pass_.version, pass_.read, pass_.runs,
                    f" of about {pass_.estimate}" if pass_.estimate is not None else "", left,
                    ", by when every edit older than the lookback has been caught" if self.catches_old_edits else "")

    def _complete_pass(self) -> None:
        pass_ = self.pass_
        assert pass_ is not None
        spec = self.spec
        if pass_.shortfall:
            LOGGER.warning("%s: the reconciliation pass (version %d) could not prove that it read every row (%s); "
                           "no ACTIVATE_VERSION is sent, so targets keep every row, and a new pass starts next run",
                           spec.name, pass_.version, pass_.shortfall)
        else:
            self.writer.activate_version(spec.name, pass_.version)
            LOGGER.info("%s: reconciliation pass complete: %d rows read in %d run(s); ACTIVATE_VERSION %d sent, so "
                        "targets that support it drop the rows deleted at the source", spec.name, pass_.read,
                        max(1, pass_.runs), pass_.version)
        self.pass_ = None
        self.bookmark[STATE_KEY] = ReconcilePass.completed_state(pass_.version, pass_.read)
        self.save_state()
