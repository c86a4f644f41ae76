"""The keyset engine: runs a keyset read (a strategy's description) over one stream's StreamRun.

It pages with paging.KeysetScanner, filters what it emits, checkpoints the bookmark at every safe
second and, at the end, moves the bookmark to the run's signpost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from tap_wootric.config import TapConfig
from tap_wootric.incremental.paging import KeysetScanner, PageQuery, QueryNotHonoured
from tap_wootric.incremental.partitions import PartitionedRead, Range, ranges_state, ranges_within
from tap_wootric.incremental.plan import ScanPlan, plan_scan
from tap_wootric.incremental.probe import Verdict, probe
from tap_wootric.state import SCAN_PARTS, SCAN_POSITION, SCAN_SIGNPOST
from tap_wootric.stream_run import StreamRun
from tap_wootric.timeutil import format_epoch

LOGGER = logging.getLogger(__name__)

Row = Dict[str, Any]


@dataclass(frozen=True)
class KeysetRead:
    """A keyset read as strategies.choose describes it: paging on `field` with the `filter_param[...]`
    range. The engine below plans and runs it."""

    name: str
    reason: str
    field: str
    filter_param: str
    # Rows created within this many days before the bookmark are read again (the lookback rescan).
    lookback_days: int = 0
    # Pages on the replication key itself, from the bookmark.
    replication_scan: bool = False
    # Covers the whole history, which a server-side filter (extra_params) keeps to the edits.
    from_start_date: bool = False
    extra_params: Tuple[Tuple[str, Any], ...] = ()
    # Rows created before this second are not emitted.
    created_since: Optional[int] = None
    # A row updated before this second proves the API ignored the filter (QueryNotHonoured).
    require_updated_since: Optional[int] = None
    # The probe's newest updated second: nothing to read when it lies before the plan's start.
    unchanged_since: Optional[int] = None
    # Edits older than what the read covers are caught only by the reconciliation pass.
    relies_on_pass: bool = False
    # What runs when the API turns out not to honour what the probe proved (a read of the same kind).
    fallback: Any = None
    # A long created range nothing else orders: read in parts by several workers (partitions.py).
    partitioned: bool = False

    def run(self, engine: KeysetEngine) -> None:
        engine.run_read(self)


class KeysetEngine:
    def __init__(self, run: StreamRun, config: TapConfig, signpost: int):
        self.run = run
        self.spec = run.spec
        self.config = config
        self.signpost = signpost
        self.start_date = int(config.start_date.timestamp())
        # What this run's probe proved, once it ran.
        self.verdict: Optional[Verdict] = None

    def probe(self) -> Verdict:
        spec, run = self.spec, self.run
        self.verdict = probe(run.get_rows, lambda row: run.second_of(row, spec.replication_key),
                             lambda row: run.second_of(row, spec.created_field),
                             updated_param=spec.replication_filter_param, updated_field=spec.replication_key,
                             created_field=spec.created_field, signpost=self.signpost)
        return self.verdict

    def run_read(self, read: KeysetRead) -> None:
        """Run a keyset read: plan it, and scan unless the probe proved nothing changed."""
        plan = plan_scan(self.spec, self.config, self.run.bookmark, self.signpost, read.lookback_days,
                         replication_scan=read.replication_scan, from_start_date=read.from_start_date)
        if read.unchanged_since is not None and read.unchanged_since < plan.start:
            self.nothing_since(plan.start, plan.final_bookmark)
            return
        self.scan(plan, read)

    def nothing_since(self, second: int, final_bookmark: int) -> None:
        LOGGER.info("%s: nothing updated since %s", self.spec.name, format_epoch(second))
        self.finish(final_bookmark)

    def scan(self, plan: ScanPlan, read: KeysetRead) -> None:
        """Keyset-scan the read's field over the plan, checkpointing the bookmark, then finish it."""
        spec, run = self.spec, self.run
        if plan.start >= plan.upper:  # start_date lies ahead of this sync: nothing to read yet
            self.finish(plan.final_bookmark)
            return
        LOGGER.info(
            "%s: %s scan of %s from %s to %s%s", spec.name, "resuming the" if plan.resumed else "starting a",
            read.field, format_epoch(plan.start), format_epoch(plan.upper),
            f", emitting rows updated since {format_epoch(plan.emit_updated_since)}"
            if plan.emit_updated_since is not None else "",
        )
        keep = self._keep(plan, read)
        ranges = self._stored_ranges(plan)
        if read.partitioned and (self.config.workers > 1 or ranges):
            self._scan_parts(plan, read, ranges or [(plan.start, plan.upper)], keep)
            return

        def checkpoint(second: int) -> None:
            bookmark = run.bookmark
            before = dict(bookmark)
            if read.field == spec.replication_key:
                bookmark[spec.replication_key] = format_epoch(min(second, plan.final_bookmark))
            else:
                bookmark[SCAN_POSITION] = format_epoch(min(second, plan.upper))
                bookmark[SCAN_SIGNPOST] = format_epoch(plan.final_bookmark)
            if bookmark != before:
                run.save_state()

        self.keyset(read.field, read.filter_param, plan.start, plan.upper, keep, checkpoint, dict(read.extra_params))
        self.finish(plan.final_bookmark)

    def _stored_ranges(self, plan: ScanPlan) -> List[Range]:
        """The unfinished parts an interrupted partitioned scan left, within this plan."""
        return ranges_within(self.run.bookmark.get(SCAN_PARTS), plan.start, plan.upper)

    def _scan_parts(self, plan: ScanPlan, read: KeysetRead, ranges: List[Range], keep: Callable[[Row], bool]) -> None:
        run = self.run

        def progress(remaining: List[Range]) -> None:
            # The low-water mark is the single resume point (what a sequential checkpoint would write).
            low = remaining[0][0] if remaining else plan.upper
            bookmark = run.bookmark
            if read.field == self.spec.replication_key:
                bookmark[read.field] = format_epoch(min(low, plan.final_bookmark))
            else:
                bookmark[SCAN_POSITION] = format_epoch(low)
                bookmark[SCAN_SIGNPOST] = format_epoch(plan.final_bookmark)
            bookmark[SCAN_PARTS] = ranges_state(remaining, plan.upper)
            run.save_state()

        self.read_ranges(read.field, read.filter_param, ranges, keep, progress, dict(read.extra_params))
        self.finish(plan.final_bookmark)

    def read_ranges(self, field: str, filter_param: str, ranges: List[Range], keep: Callable[[Row], bool],
                    progress: Callable[[List[Range]], None], extra_params: Optional[Dict[str, Any]] = None,
                    stop_after_rows: Optional[int] = None) -> bool:
        """Keyset-scan `field` over the ranges in parts, with the run's workers (partitions.py); returns
        whether every range was read to its end."""
        parts = PartitionedRead(self.run, ranges, lambda: self._scanner(field, filter_param, extra_params),
                                lambda row: self.run.second_of(row, field), keep, progress,
                                workers=self.config.workers, stop_after_rows=stop_after_rows)
        return parts.run_all()

    def _keep(self, plan: ScanPlan, read: KeysetRead) -> Callable[[Row], bool]:
        spec, second_of = self.spec, self.run.second_of
        updated_since = plan.emit_updated_since
        created_floor = plan.emit_created_since if read.created_since is None else read.created_since
        required = read.require_updated_since

        def keep(row: Row) -> bool:
            # Nothing older than start_date, even from an API that ignores the query's filter.
            if second_of(row, spec.scan_field) < self.start_date:
                return False
            if required is not None and second_of(row, spec.replication_key) < required:
                raise QueryNotHonoured(f"{spec.name}: the API returned a row (id {row.get('id')!r}) updated before "
                                       f"the {spec.replication_filter_param}[gte] filter")
            if updated_since is not None and second_of(row, spec.replication_key) < updated_since:
                return False
            return created_floor is None or second_of(row, spec.created_field) >= created_floor

        return keep

    def keyset(self, field: str, filter_param: str, start: int, upper: int, keep: Callable[[Row], bool],
               checkpoint: Callable[[int], None], extra_params: Optional[Dict[str, Any]] = None,
               stop_after_rows: Optional[int] = None) -> bool:
        """Keyset-scan `field` in [start, upper), emitting the rows `keep` accepts and calling
        `checkpoint(second)` at each safe point; with `stop_after_rows`, stop at the first checkpoint
        after that many rows were read. Returns whether the range was read to its end."""
        run = self.run
        scanner = self._scanner(field, filter_param, extra_params)
        budget = float("inf") if stop_after_rows is None else stop_after_rows
        read = 0
        for batch in scanner.scan(start, upper):
            records, stop_at = self._within(batch.records, budget - read, field)
            kept = [row for row in records if keep(row)]
            run.skipped += len(records) - len(kept)
            read += len(records)
            run.emit(kept)
            if stop_at is not None:
                checkpoint(stop_at)
                return False
            if batch.checkpoint is not None:
                checkpoint(batch.checkpoint)
                if read >= budget:
                    return False
        return True

    def _scanner(self, field: str, filter_param: str, extra_params: Optional[Dict[str, Any]]) -> KeysetScanner:
        return KeysetScanner(self._fetcher(field, filter_param, extra_params),
                             lambda row: self.run.second_of(row, field), stream=self.spec.name, logger=LOGGER,
                             alternative_sort=self.alternative_sort_key(field) is not None,
                             note_shortfall=self.run.note_shortfall)

    def _within(self, records: List[Row], room: float, field: str) -> Tuple[List[Row], Optional[int]]:
        """The rows of a page that fit the room left, and where to resume when some do not: rows come in
        scan order, so the first row left unread gives a resume point that re-reads only its own second."""
        if len(records) <= room:
            return records, None
        taken = max(0, int(room))
        return records[:taken], self.run.second_of(records[taken], field)

    def _fetcher(self, field: str, filter_param: str,
                 extra_params: Optional[Dict[str, Any]]) -> Callable[[PageQuery], Any]:
        alternative = self.alternative_sort_key(field)

        def fetch(query: PageQuery) -> Any:
            params: Dict[str, Any] = {
                "page": query.page, "per_page": query.per_page,
                "sort_key": alternative if query.alternative_sort else field,
                "sort_order": "desc" if query.descending else "asc", f"{filter_param}[gte]": query.gte,
                **(extra_params or {}),
            }
            if query.lt is not None:
                params[f"{filter_param}[lt]"] = query.lt
            return self.run.get_rows(params)

        return fetch

    def alternative_sort_key(self, field: str) -> Optional[str]:
        """The other key the API sorts on here, documented or proved by this run's probe."""
        spec = self.spec
        if field == spec.scan_field and spec.alternative_sort_key:
            return spec.alternative_sort_key
        if field == spec.scan_field and self.verdict is not None and self.verdict.sort_honoured:
            return spec.replication_key
        return None

    def finish(self, final_bookmark: int) -> None:
        bookmark = self.run.bookmark
        bookmark.pop(SCAN_POSITION, None)
        bookmark.pop(SCAN_SIGNPOST, None)
        bookmark.pop(SCAN_PARTS, None)
        bookmark[self.spec.replication_key] = format_epoch(final_bookmark)
        self.run.save_state()
