"""Read strategies of an incremental stream: how this run finds the rows new or edited since the
bookmark. `choose` picks one from the stream's row and what the probe proved, and returns it as a
value: a description of the read. The keyset engine runs every keyset read; only the newest-first
edit walk is behaviour of its own. The reader runs whichever it gets, and its fallback.

| API world (proved by the probe)        | read                                     | cost per run       |
|----------------------------------------|------------------------------------------|--------------------|
| no bookmark yet, or a scan to resume   | keyset on the scan field                 | ceil(N / 50)       |
| filter and sort on updated_at honoured | keyset on updated_at (A)                 | ceil(E / 50)       |
| sort honoured, filter ignored          | newest-first edit walk (B)               | about ceil(E / 50) |
| filter honoured, sort ignored          | updated-filtered keyset on the scan field| ceil(E / 50)       |
| neither                                | lookback rescan (C)                      | the lookback window|

In world C, edits to rows older than the lookback are caught by the reconciliation pass (reconcile.py),
the same pass that finds deletions in every world.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from tap_wootric.incremental.edit_walk import walk_edits
from tap_wootric.incremental.keyset import KeysetEngine, KeysetRead
from tap_wootric.incremental.probe import Verdict
from tap_wootric.streams import StreamSpec
from tap_wootric.timeutil import parse_bookmark


@dataclass(frozen=True)
class EditWalkRead:
    """Strategy B: the listing sorted on updated_at, newest first, from its top down to the bookmark's
    second, narrowed by created ranges when more rows changed than one query reaches."""

    reason: str
    since: int
    first_page: List[Dict[str, Any]] = field(default_factory=list)
    newest_updated: Optional[int] = None
    fallback: Optional[Read] = None
    name: str = "newest-first edit walk"
    relies_on_pass: bool = False

    def run(self, engine: KeysetEngine) -> None:
        if self.newest_updated is not None and self.newest_updated < self.since:
            engine.nothing_since(self.since, engine.signpost)
            return
        walk_edits(engine, self.since, self.first_page)


Read = Any  # KeysetRead or EditWalkRead: anything with name, reason, relies_on_pass, fallback and run(engine)


def lookback_days(spec: StreamSpec, configured: int, passes_on: bool) -> int:
    """Rows that are never edited need no lookback while the pass would catch an edit anyway."""
    return configured if spec.edited or not passes_on else 0


def choose(spec: StreamSpec, bookmark: Dict[str, Any], probe: Callable[[], Verdict], *, start_date: int,
           configured_lookback: int, passes_on: bool) -> Read:
    if not spec.probes_edits:
        return KeysetRead("keyset on updated_at", f"updated[...] is documented for /{spec.path}",
                          spec.replication_key, spec.filter_param, replication_scan=True, partitioned=True)
    if bookmark.get(spec.replication_key) is None:
        return KeysetRead("keyset on the scan field", "first sync: every row, by " + spec.scan_field,
                          spec.scan_field, spec.filter_param, partitioned=True)
    if bookmark.get("scan_position") is not None:
        return KeysetRead("keyset on the scan field", "resuming the interrupted scan", spec.scan_field,
                          spec.filter_param, partitioned=True)
    verdict = probe()
    days = lookback_days(spec, configured_lookback, passes_on)
    lookback = KeysetRead("lookback rescan", f"the API {verdict.filter_reason} and {verdict.sort_reason} on "
                          f"/{spec.path}; a {days}-day lookback by {spec.scan_field}", spec.scan_field,
                          spec.filter_param, lookback_days=days, relies_on_pass=True)
    since = parse_bookmark(bookmark.get(spec.replication_key))
    assert since is not None
    return _proved_read(spec, verdict, since, start_date, lookback)


def _proved_read(spec: StreamSpec, verdict: Verdict, since: int, start_date: int, lookback: KeysetRead) -> Read:
    """The read the probe's verdict allows, falling back to the lookback rescan."""
    if verdict.filter_honoured and verdict.sort_honoured:
        return KeysetRead("keyset on updated_at", f"the API honours updated[...] and sorts on updated_at on "
                          f"/{spec.path}", spec.replication_key, spec.replication_filter_param,
                          replication_scan=True, created_since=start_date, unchanged_since=verdict.newest_updated,
                          fallback=lookback)
    if verdict.sort_honoured:
        return EditWalkRead(f"the API ignores updated[...] but sorts on updated_at on /{spec.path}", since,
                            verdict.newest_page, verdict.newest_updated, fallback=lookback)
    if verdict.filter_honoured:
        return KeysetRead("updated-filtered keyset on the scan field", f"the API honours updated[...] but "
                          f"{verdict.sort_reason} on /{spec.path}", spec.scan_field, spec.filter_param,
                          from_start_date=True,
                          extra_params=((f"{spec.replication_filter_param}[gte]", since),),
                          require_updated_since=since, fallback=lookback)
    return lookback

