"""One incremental stream's run: the read strategy the probe chose (with its fallback), then this
run's slice of the reconciliation pass."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from tap_wootric.config import TapConfig
from tap_wootric.incremental.keyset import KeysetEngine
from tap_wootric.incremental.paging import QueryNotHonoured
from tap_wootric.incremental.reconcile import STATE_KEY, ReconcilePass, complete_pass, read_slice
from tap_wootric.incremental.strategies import Read, choose
from tap_wootric.stream_run import StreamRun
from tap_wootric.timeutil import parse_bookmark

LOGGER = logging.getLogger(__name__)


class IncrementalReader:
    def __init__(self, run: StreamRun, config: TapConfig, signpost: int):
        self.run = run
        self.config = config
        self.engine = KeysetEngine(run, config, signpost)
        self.pass_: Optional[ReconcilePass] = None
        run.before_save.append(self._save_pass)

    def _save_pass(self) -> None:
        if self.pass_ is not None:
            for reason in self.run.shortfalls:
                self.pass_.note_shortfall(reason)
            self.run.bookmark[STATE_KEY] = self.pass_.to_state()

    def run_stream(self) -> None:
        run, spec, config = self.run, self.run.spec, self.config
        run.write_schema()
        runs = config.reconcile_runs
        bookmark = run.bookmark
        previous_bookmark = parse_bookmark(bookmark.get(spec.replication_key))
        if runs:
            self.pass_ = ReconcilePass.from_state(bookmark, self.engine.start_date)
            run.version = self.pass_.version
            run.save_state()
        else:
            bookmark.pop(STATE_KEY, None)
        read = choose(spec, bookmark, self.engine.probe, start_date=self.engine.start_date,
                      configured_lookback=config.lookback_days, passes_on=bool(runs))
        LOGGER.info("%s: read strategy: %s (%s)", spec.name, read.name, read.reason)
        relies_on_pass = self._read(read)
        if not runs and relies_on_pass:
            LOGGER.warning("%s: edits to rows created before the %d-day lookback are not caught, because "
                           "reconcile_runs is 0", spec.name, config.lookback_days)
        if self.pass_ is not None:
            self._pass_share(previous_bookmark, relies_on_pass)
        run.finish(f", {run.skipped} older unchanged rows skipped")

    def _read(self, read: Read) -> bool:
        """Run the read, and its fallback when the API turns out not to honour what the probe proved.
        Returns whether old edits reach the warehouse only through the pass."""
        before: Dict[str, Any] = {key: value for key, value in self.run.bookmark.items() if key != STATE_KEY}
        try:
            read.run(self.engine)
            return read.relies_on_pass
        except QueryNotHonoured as exc:
            if read.fallback is None:
                raise
            fallback = read.fallback
            LOGGER.warning("%s: %s; falling back to the %s (%s)", self.run.name, exc, fallback.name, fallback.reason)
            # Undo whatever the failed read checkpointed: the fallback starts from the run's bookmark.
            bookmark = self.run.bookmark
            for key in [key for key in bookmark if key != STATE_KEY]:
                del bookmark[key]
            bookmark.update(before)
            self.run.save_state()
            fallback.run(self.engine)
            return fallback.relies_on_pass

    def _pass_share(self, previous_bookmark: Optional[int], relies_on_pass: bool) -> None:
        """The first sync read every row with the pass's version: the pass is complete. Later runs read a slice."""
        pass_ = self.pass_
        assert pass_ is not None
        if previous_bookmark is None:
            pass_.read = self.run.records
        elif not read_slice(self.engine, pass_, previous_bookmark, self.config.reconcile_runs, relies_on_pass):
            return
        self._save_pass()
        self.pass_ = None
        self.run.bookmark[STATE_KEY] = complete_pass(self.run, pass_)
        self.run.save_state()
