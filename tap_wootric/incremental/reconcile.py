"""The reconciliation pass: every row of an incremental stream read once, spread over runs.

There is no deletions feed, and where the API offers no way to find edits (strategy C) there is
none for old edits either. A pass reads the whole history by the stream's scan field, a slice a
run, continuing where the last run's slice ended. Every RECORD of the stream carries the pass's
table version while it runs, whichever path emits it. When the slices have reached the point the
incremental reads cover (the run's bookmark), every row that exists has been emitted with that
version, and one ACTIVATE_VERSION lets targets that support it drop the rows of older versions:
the rows deleted at the source. A pass that cannot prove it read every row sends none.

Slices are sized in rows, from the row count of the last complete read, so that each run reads
about 1/`reconcile_runs` of the stream, and the last run of a pass reads whatever is left: a pass
completes within `reconcile_runs` runs. This module holds the arithmetic and the state; the
reading is the stream sync's.

State, under the stream's bookmark:
    "reconcile": {"version": 1733000000000, "cursor": "2019-04-01T00:00:00Z", "runs": 3,
                  "read": 3000, "estimate": 10000, "shortfall": null}
`estimate` is the row count of the last complete read; `shortfall`, once set, says why this pass
cannot prove completeness.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from tap_wootric.incremental.partitions import Range, ranges_state, ranges_within
from tap_wootric.state import PARTS
from tap_wootric.state import RECONCILE as STATE_KEY
from tap_wootric.stream_run import StreamRun, new_version
from tap_wootric.timeutil import format_epoch, parse_bookmark

if TYPE_CHECKING:
    from tap_wootric.incremental.keyset import KeysetEngine

LOGGER = logging.getLogger(__name__)


@dataclass
class ReconcilePass:
    version: int
    cursor: int  # scan-field second the next slice starts at (re-read, as every resume point is)
    runs: int = 0  # runs of this pass whose slice has finished
    read: int = 0  # rows the slices of this pass have read
    estimate: Optional[int] = None
    shortfall: Optional[str] = None
    # A partitioned slice's unfinished ranges (partitions.ranges_state); None: everything from the cursor on.
    parts: Optional[List[List[Optional[str]]]] = None

    @classmethod
    def from_state(cls, bookmark: Dict[str, Any], start: int) -> ReconcilePass:
        """The pass in progress, or a new one starting at `start` (with a higher version)."""
        raw = bookmark.get(STATE_KEY) or {}
        cursor = parse_bookmark(raw.get("cursor"))
        if isinstance(raw.get("version"), int) and cursor is not None:
            return cls(raw["version"], max(cursor, start), int(raw.get("runs") or 0), int(raw.get("read") or 0),
                       raw.get("estimate"), raw.get("shortfall"), raw.get(PARTS))
        return cls(new_version(raw.get("previous_version")), start, estimate=raw.get("estimate"))

    def to_state(self) -> Dict[str, Any]:
        state = {"version": self.version, "cursor": format_epoch(self.cursor), "runs": self.runs, "read": self.read,
                 "estimate": self.estimate, "shortfall": self.shortfall}
        if self.parts is not None:
            state[PARTS] = self.parts
        return state

    @staticmethod
    def completed_state(version: int, rows: int) -> Dict[str, Any]:
        """What stays after a complete read: its size (to size the next pass's slices) and version."""
        return {"previous_version": version, "estimate": rows}

    def runs_left(self, reconcile_runs: int) -> int:
        return max(1, reconcile_runs - self.runs)

    def row_budget(self, reconcile_runs: int) -> Optional[int]:
        """Rows this run's slice reads before it stops at a checkpoint; None: read to the end.

        The last run of a pass always reads to the end. Without an estimate (state from before
        passes existed) the slice is sized in time instead (see slice_end)."""
        if self.runs_left(reconcile_runs) <= 1 or self.estimate is None:
            return None
        remaining = max(0, self.estimate - self.read)
        return max(1, math.ceil(remaining / self.runs_left(reconcile_runs)))

    def slice_end(self, reconcile_runs: int, end: int) -> int:
        """Where this run's slice stops at the latest: the end, or, without an estimate, an even
        share of the time left."""
        if self.estimate is not None or self.runs_left(reconcile_runs) <= 1:
            return end
        return self.cursor + max(1, (end - self.cursor) // self.runs_left(reconcile_runs))

    def note_shortfall(self, reason: str) -> None:
        if self.shortfall is None:
            self.shortfall = reason


def read_slice(engine: KeysetEngine, pass_: ReconcilePass, end: int, runs: int, catches_old_edits: bool) -> bool:
    """This run's share of the pass: from its cursor towards `end`, the bookmark this run started from
    (rows past it were emitted by this run's strategy, with the pass's version). Returns whether the
    pass has now read to its end."""
    run, spec = engine.run, engine.spec
    budget = pass_.row_budget(runs)
    slice_end = pass_.slice_end(runs, end)
    LOGGER.info("%s: reconciliation pass (version %d), run %d of at most %d: reading %s from %s%s",
                spec.name, pass_.version, pass_.runs + 1, runs, spec.scan_field, format_epoch(pass_.cursor),
                f" (about {budget} rows)" if budget is not None else f" to {format_epoch(slice_end)}")
    read_before = pass_.read
    counter = {"read": 0}

    def checkpoint(second: int) -> None:
        pass_.cursor = max(pass_.cursor, second)
        run.save_state()

    def keep(row: Dict[str, Any]) -> bool:
        counter["read"] += 1
        pass_.read = read_before + counter["read"]
        return True

    if slice_end >= end and (engine.config.workers > 1 or pass_.parts is not None):
        completed = _read_in_parts(engine, pass_, end, keep, budget)
    else:
        completed = engine.keyset(spec.scan_field, spec.filter_param, pass_.cursor, slice_end + 1, keep, checkpoint,
                                  stop_after_rows=budget)
    pass_.runs += 1
    if completed:
        pass_.cursor = slice_end + 1 if slice_end < end else end
    if completed and slice_end >= end:
        return True
    run.save_state()
    _report_progress(spec.name, pass_, runs, catches_old_edits)
    return False


def _read_in_parts(engine: KeysetEngine, pass_: ReconcilePass, end: int, keep: Callable[[Dict[str, Any]], bool],
                   budget: Optional[int]) -> bool:
    """The slice read by the run's workers in created-range parts (partitions.py); the pass keeps the
    unfinished ranges, and its cursor is their low-water mark."""
    upper = end + 1
    stored = pass_.parts
    ranges = [(pass_.cursor, upper)] if stored is None else ranges_within(stored, pass_.cursor, upper)

    def progress(remaining: List[Range]) -> None:
        pass_.cursor = remaining[0][0] if remaining else end
        pass_.parts = ranges_state(remaining, upper)
        engine.run.save_state()

    completed = engine.read_ranges(engine.spec.scan_field, engine.spec.filter_param, ranges, keep, progress,
                                   stop_after_rows=budget)
    if completed:
        pass_.cursor, pass_.parts = end, None
    return completed


def _report_progress(name: str, pass_: ReconcilePass, runs: int, catches_old_edits: bool) -> None:
    LOGGER.info("%s: reconciliation pass (version %d): %d rows read in %d run(s)%s; it completes within %d "
                "more run(s)%s, and then rows deleted at the source leave the targets that support table "
                "versions", name, pass_.version, pass_.read, pass_.runs,
                f" of about {pass_.estimate}" if pass_.estimate is not None else "", pass_.runs_left(runs),
                ", by when every edit older than the lookback has been caught" if catches_old_edits else "")


def complete_pass(run: StreamRun, pass_: ReconcilePass) -> Dict[str, Any]:
    """Close a pass that read to its end: ACTIVATE_VERSION if it proved it read every row. Returns the
    state the stream keeps after it."""
    if pass_.shortfall:
        LOGGER.warning("%s: the reconciliation pass (version %d) could not prove that it read every row (%s); "
                       "no ACTIVATE_VERSION is sent, so targets keep every row, and a new pass starts next run",
                       run.name, pass_.version, pass_.shortfall)
    else:
        run.writer.activate_version(run.name, pass_.version)
        LOGGER.info("%s: reconciliation pass complete: %d rows read in %d run(s); ACTIVATE_VERSION %d sent, so "
                    "targets that support it drop the rows deleted at the source", run.name, pass_.read,
                    max(1, pass_.runs), pass_.version)
    return ReconcilePass.completed_state(pass_.version, pass_.read)
