"""Sync: every selected stream in order, with `currently_syncing`, each through the reader its row in
the stream table names, and the one rule for an account that lacks a feature."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Dict, List, Tuple

import singer
from singer.catalog import Catalog, CatalogEntry

from tap_wootric.api.client import WootricClient
from tap_wootric.catalog.selection import selected_streams
from tap_wootric.config import TapConfig
from tap_wootric.errors import Refused
from tap_wootric.incremental.reader import IncrementalReader
from tap_wootric.incremental.reconcile import STATE_KEY, ReconcilePass
from tap_wootric.output import MessageWriter
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
