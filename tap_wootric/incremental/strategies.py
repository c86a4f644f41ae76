"""Read strategies of an incremental stream: how this run finds the rows new or edited since the
bookmark. The stream's row and what the probe proved choose one (`choose`); the stream sync runs
it through the small interface below and does not know which one runs.

| API world (proved by the probe)        | strategy                  | cost per run           |
|----------------------------------------|---------------------------|------------------------|
| no bookmark yet, or a scan to resume   | CreatedKeyset             | ceil(N / 50)           |
| filter and sort on updated_at honoured | UpdatedKeyset (A)         | ceil(E / 50)           |
| sort honoured, filter ignored          | NewestFirstWalk (B)       | about ceil(E / 50)     |
| filter honoured, sort ignored          | FilteredCreatedKeyset     | ceil(E / 50)           |
| neither                                | LookbackRescan (C)        | the lookback window    |

In world C, edits to rows older than the lookback are caught by the reconciliation pass (reconcile.py),
the same pass that finds deletions in every world.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from tap_wootric.incremental.edit_walk import EditQuery, EditWalk
from tap_wootric.incremental.probe import Verdict
from tap_wootric.streams import StreamSpec
from tap_wootric.timeutil import format_epoch, parse_bookmark

if TYPE_CHECKING:
    from tap_wootric.incremental.reader import IncrementalSync

LOGGER = logging.getLogger(__name__)


class Strategy:
    """One way to read what changed since the bookmark. `run` emits the rows and leaves the bookmark
    where the next run can start; it raises QueryNotHonoured, having emitted nothing the fallback
    will not emit again, when the API turns out not to honour what the probe proved."""

    name = ""
    fallback: Optional[Strategy] = None
    # Edits older than what the strategy reads are caught only by the reconciliation pass.
    relies_on_pass = False

    def __init__(self, reason: str):
        self.reason = reason

    def run(self, sync: IncrementalSync) -> None:
        raise NotImplementedError


class CreatedKeyset(Strategy):
    """Keyset paging on the scan field: the first sync, a resumed scan, or the lookback rescan."""

    name = "keyset on the scan field"

    def __init__(self, reason: str, lookback_days: int = 0):
        super().__init__(reason)
        self.lookback_days = lookback_days

    def run(self, sync: IncrementalSync) -> None:
        spec = sync.spec
        plan = sync.plan(self.lookback_days)
        sync.scan(plan, field=spec.scan_field, filter_param=spec.filter_param)


class LookbackRescan(CreatedKeyset):
    """Strategy C: rows created within the lookback are rescanned for edits; older rows' edits wait
    for the reconciliation pass to reach them."""

    name = "lookback rescan"
    relies_on_pass = True


class UpdatedKeyset(Strategy):
    """Keyset paging on the replication key: end_users, whose updated[...] filter is documented, and
    any endpoint where the probe proved both the filter and the sort."""

    name = "keyset on updated_at"

    def __init__(self, reason: str, verdict: Optional[Verdict] = None):
        super().__init__(reason)
        self.verdict = verdict

    def run(self, sync: IncrementalSync) -> None:
        spec = sync.spec
        proved = self.verdict is not None
        plan = sync.plan(0, replication_scan=True)
        if proved and self.verdict.newest_updated is not None and self.verdict.newest_updated < plan.start:
            LOGGER.info("%s: nothing updated since %s", spec.name, format_epoch(plan.start))
            sync.finish(plan.final_bookmark)
            return
        filter_param = spec.replication_filter_param if proved else spec.filter_param
        sync.scan(plan, field=spec.replication_key, filter_param=filter_param,
                  created_since=sync.start_date if proved else None)


class FilteredCreatedKeyset(Strategy):
    """Keyset paging on the scan field over the whole history, filtered server-side to the rows
    updated since the bookmark: the filter finds the edits, the honoured created order pages them."""

    name = "updated-filtered keyset on the scan field"

    def run(self, sync: IncrementalSync) -> None:
        spec = sync.spec
        since = parse_bookmark(sync.bookmark.get(spec.replication_key))
        plan = sync.plan(0, from_start_date=True)
        sync.scan(plan, field=spec.scan_field, filter_param=spec.filter_param,
                  extra_params={f"{spec.replication_filter_param}[gte]": since}, require_updated_since=since)


class NewestFirstWalk(Strategy):
    """Strategy B: the listing sorted on updated_at newest first, from its top down to the bookmark's
    second, narrowed by created ranges when more rows changed than one query reaches."""

    name = "newest-first edit walk"

    def __init__(self, reason: str, verdict: Verdict):
        super().__init__(reason)
        self.verdict = verdict

    def run(self, sync: IncrementalSync) -> None:
        spec = sync.spec
        since = parse_bookmark(sync.bookmark.get(spec.replication_key))
        if self.verdict.newest_updated is not None and self.verdict.newest_updated < since:
            LOGGER.info("%s: nothing updated since %s", spec.name, format_epoch(since))
            sync.finish(sync.signpost)
            return
        walk = EditWalk(self._fetcher(sync), lambda row: sync.second_of(row, spec.replication_key),
                        lambda row: sync.second_of(row, spec.created_field), stream=spec.name, logger=LOGGER)
        emitted: set = set()
        with sync.emitting() as emit:
            for rows in walk.walk(since, self.verdict.newest_page):
                fresh = [row for row in rows if row["id"] not in emitted
                         and sync.second_of(row, spec.created_field) >= sync.start_date]
                emitted.update(row["id"] for row in fresh)
                emit(fresh)
        for reason in walk.stats.shortfalls or []:
            sync.note_shortfall(reason)
        LOGGER.info("%s: the newest-first walk read %d rows updated since %s in %d requests over %d created "
                    "range(s)", spec.name, len(emitted), format_epoch(since), walk.stats.requests, walk.stats.parts)
        sync.finish(sync.signpost)

    @staticmethod
    def _fetcher(sync: IncrementalSync) -> Callable[[EditQuery], List[Dict[str, Any]]]:
        spec = sync.spec

        def fetch(query: EditQuery) -> List[Dict[str, Any]]:
            params: Dict[str, Any] = {"page": query.page, "per_page": query.per_page,
                                      "sort_key": spec.replication_key, "sort_order": "desc"}
            if query.created_gte is not None:
                params[f"{spec.filter_param}[gte]"] = query.created_gte
            if query.created_lt is not None:
                params[f"{spec.filter_param}[lt]"] = query.created_lt
            return sync.get_rows(params)

        return fetch


def lookback_days(spec: StreamSpec, configured: int, passes_on: bool) -> int:
    """Rows that are never edited need no lookback while the pass would catch an edit anyway."""
    return configured if spec.edited or not passes_on else 0


def choose(spec: StreamSpec, bookmark: Dict[str, Any], probe: Callable[[], Verdict], *,
           configured_lookback: int, passes_on: bool) -> Strategy:
    if not spec.probes_edits:
        return UpdatedKeyset(f"updated[...] is documented for /{spec.path}")
    if bookmark.get(spec.replication_key) is None:
        return CreatedKeyset("first sync: every row, by " + spec.scan_field)
    if bookmark.get("scan_position") is not None:
        return CreatedKeyset("resuming the interrupted scan")
    verdict = probe()
    days = lookback_days(spec, configured_lookback, passes_on)
    lookback = LookbackRescan(f"the API {verdict.filter_reason} and {verdict.sort_reason} on /{spec.path}; "
                              f"a {days}-day lookback by {spec.scan_field}", days)
    if verdict.filter_honoured and verdict.sort_honoured:
        strategy: Strategy = UpdatedKeyset(f"the API honours updated[...] and sorts on updated_at on /{spec.path}",
                                           verdict)
    elif verdict.sort_honoured:
        strategy = NewestFirstWalk(f"the API ignores updated[...] but sorts on updated_at on /{spec.path}", verdict)
    elif verdict.filter_honoured:
        strategy = FilteredCreatedKeyset(f"the API honours updated[...] but {verdict.sort_reason} on /{spec.path}")
    else:
        return lookback
    strategy.fallback = lookback
    return strategy
