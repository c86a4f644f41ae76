"""Sync: the orchestration of all selected streams, in order, with `currently_syncing`."""

from __future__ import annotations

import copy
import logging
import time
from typing import Any, Dict, Optional

import singer
from singer.catalog import Catalog

from tap_wootric.api.client import WootricClient
from tap_wootric.catalog.selection import selected_streams
from tap_wootric.config import TapConfig
from tap_wootric.incremental.reader import IncrementalSync
from tap_wootric.incremental.reconcile import STATE_KEY, ReconcilePass
from tap_wootric.output import MessageWriter
from tap_wootric.readers.cxi import CxiUnavailable
from tap_wootric.readers.daily import DailySync
from tap_wootric.readers.full_table import FullTableSync
from tap_wootric.streams import CXI_API, INCREMENTAL, STREAMS
from tap_wootric.timeutil import format_epoch
from tap_wootric.v2api import V2Refusals, V2Unavailable

LOGGER = logging.getLogger(__name__)


def abandon_deselected_passes(state: Dict[str, Any], selected: set) -> bool:
    """A pass whose stream sat out a run cannot prove what that run would have read: start it over."""
    changed = False
    for spec in STREAMS:
        bookmark = (state.get("bookmarks") or {}).get(spec.name) or {}
        raw = bookmark.get(STATE_KEY) or {}
        if spec.replication_method != INCREMENTAL or spec.name in selected or "version" not in raw:
            continue
        LOGGER.warning("%s: not selected in this run, so its reconciliation pass (version %s) cannot prove that it "
                       "read every row; it sends no ACTIVATE_VERSION and starts over when the stream is selected "
                       "again", spec.name, raw.get("version"))
        bookmark[STATE_KEY] = ReconcilePass.completed_state(raw["version"], raw.get("estimate") or 0)
        changed = True
    return changed


def sync(client: WootricClient, config: TapConfig, catalog: Catalog, state: Dict[str, Any]) -> Dict[str, Any]:
    state = copy.deepcopy(state)
    writer = MessageWriter()
    streams = selected_streams(catalog, state)
    if not streams:
        LOGGER.warning("No stream is selected in the catalog; nothing to sync")
        return state
    # The signpost: no bookmark may pass the moment this sync started.
    signpost = int(time.time())
    LOGGER.info("Syncing %s", ", ".join(spec.name for spec, _ in streams))
    if config.start_date.timestamp() > signpost:
        LOGGER.warning("start_date %s lies in the future: incremental streams emit nothing older, so nothing "
                       "until then", format_epoch(int(config.start_date.timestamp())))
    if abandon_deselected_passes(state, {spec.name for spec, _ in streams}):
        writer.state(state)

    cxi_refusal: Optional[str] = None
    v2_refusals = V2Refusals([spec for spec, _ in streams])
    for spec, entry in streams:
        if spec.api == CXI_API and cxi_refusal is not None:
            continue
        if v2_refusals.skips(spec):
            continue
        state = singer.set_currently_syncing(state, spec.name)
        writer.state(state)
        if spec.reads_by_day:
            v2_refusals.guard(DailySync(client, config, spec, entry, state, writer).run)
            continue
        if spec.replication_method == INCREMENTAL:
            IncrementalSync(client, config, spec, entry, state, signpost, writer).run()
            continue
        try:
            FullTableSync(client, spec, entry, state, writer).run()
        except CxiUnavailable as exc:
            # Most Wootric accounts have no CXI; that must not fail the other streams.
            cxi_refusal = str(exc)
            skipped = [s.name for s, _ in streams if s.api == CXI_API]
            LOGGER.warning("CXI streams skipped: the CXI API refused this account (%s); skipped: %s",
                           cxi_refusal, ", ".join(skipped))
        except V2Unavailable as exc:
            v2_refusals.refused(exc)
    state = singer.set_currently_syncing(state, None)
    writer.state(state)
    return state
