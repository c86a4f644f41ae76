"""Where a scan starts and ends, what it emits, and where its bookmark lands: pure bookmark maths.

Bookmarks are whole UTC seconds. The API renders times truncated to the second while it filters
on sub-second stored times, so every resume point re-reads its own second: a few duplicates,
never a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from tap_wootric.config import TapConfig
from tap_wootric.state import SCAN_POSITION, SCAN_SIGNPOST
from tap_wootric.streams import StreamSpec
from tap_wootric.timeutil import parse_bookmark

SECONDS_PER_DAY = 86400


@dataclass(frozen=True)
class ScanPlan:
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
    """One scan's plan. `replication_scan`: the scan pages on the replication key itself;
    `from_start_date`: it covers the whole history (a server-side filter keeps it to the edits)."""
    start_date = int(config.start_date.timestamp())
    updated_at = _bookmarked(bookmark, spec, start_date)
    upper = signpost + 1
    # The bookmark never falls below start_date, not even when start_date lies in the future.
    final_bookmark = max(signpost, start_date)
    if replication_scan or not spec.probes_edits:
        return ScanPlan(updated_at if updated_at is not None else start_date, upper, None, final_bookmark, False)
    resumed = _resumed(bookmark, start_date, upper, updated_at, signpost)
    if resumed is not None:
        return resumed
    if updated_at is None:
        return ScanPlan(start_date, upper, None, final_bookmark, False)
    if from_start_date:
        return ScanPlan(start_date, upper, updated_at, final_bookmark, False)
    days = config.lookback_days if lookback_days is None else lookback_days
    return ScanPlan(max(start_date, updated_at - days * SECONDS_PER_DAY), upper, updated_at, final_bookmark, False)


def _bookmarked(bookmark: Dict[str, Any], spec: StreamSpec, start_date: int) -> Optional[int]:
    """The bookmark's second, unless start_date was raised past it (or lies ahead): nothing older may
    come back."""
    updated_at = parse_bookmark(bookmark.get(spec.replication_key))
    return None if updated_at is None or updated_at < start_date else updated_at


def _resumed(bookmark: Dict[str, Any], start_date: int, upper: int, updated_at: Optional[int],
             signpost: int) -> Optional[ScanPlan]:
    """Finish an interrupted scan, and bookmark the interrupted run's start: rows behind the position
    were read after that moment, not after this run's start."""
    position = parse_bookmark(bookmark.get(SCAN_POSITION))
    scan_signpost = parse_bookmark(bookmark.get(SCAN_SIGNPOST))
    if position is None or scan_signpost is None:
        return None
    return ScanPlan(max(position, start_date), upper, updated_at, max(min(scan_signpost, signpost), start_date), True)
