"""The state: its layout, and reading, checking and migrating a state value.

The layout is singer-python's:
    {"currently_syncing": "responses",
     "bookmarks": {"end_users": {"updated_at": "2024-01-01T00:00:00Z"},
                   "responses": {"updated_at": "...", "scan_position": "...", "scan_signpost": "...",
                                 "reconcile": {...}},
                   "nps_summary": {"date": "2024-01-31"},
                   "segments": {"version": 1733000000000, "initial_full_table_complete": true}}}
An incremental stream bookmarks its replication key; `scan_position` and `scan_signpost` exist only
while a scan on another field is unfinished, `scan_parts` (the unfinished ranges, [[from, to or
null], ...]) while a partitioned scan is (incremental/partitions.py), and `reconcile` holds the reconciliation pass
(incremental/reconcile.py). A day stream bookmarks an account-local date under its replication key.
A full-table stream keeps the table version of a read in progress.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable

from tap_wootric.errors import InputFileError
from tap_wootric.streams import STREAMS, get_stream
from tap_wootric.timeutil import parse_bookmark, parse_day

LOGGER = logging.getLogger(__name__)

SCAN_POSITION = "scan_position"
SCAN_SIGNPOST = "scan_signpost"
# The unfinished created ranges of a partitioned scan: [[from, to or null], ...] (incremental/partitions.py).
SCAN_PARTS = "scan_parts"
RECONCILE = "reconcile"
# In the reconciliation state: a partitioned slice's unfinished ranges, as SCAN_PARTS.
PARTS = "parts"
# Bookmark keys holding a time, and those holding a day, as the stream table defines them.
TIME_KEYS = frozenset({spec.replication_key for spec in STREAMS if spec.read_by == "incremental"}
                      | {SCAN_POSITION, SCAN_SIGNPOST})
DAY_KEYS = frozenset(spec.replication_key for spec in STREAMS if spec.read_by == "daily")
_COUNT_KEYS = ("version", "previous_version", "runs", "read", "estimate")


def prepare_state(raw: Any, source: str = "the state file") -> Dict[str, Any]:
    """Validate a state value, migrating tap-wootric 0.5.x's flat layout, or raise InputFileError naming
    `source` (where it came from)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputFileError(f"{source} must hold a JSON object")
    state = _unwrapped(dict(raw))
    _migrate_flat_bookmarks(state)
    bookmarks = state.get("bookmarks", {})
    if bookmarks is None:
        bookmarks = state["bookmarks"] = {}
    if not isinstance(bookmarks, dict):
        raise InputFileError(f"{source}: 'bookmarks' must be an object of per-stream objects")
    for stream, bookmark in bookmarks.items():
        _check_bookmark(stream, bookmark, source)
    currently_syncing = state.get("currently_syncing")
    if currently_syncing is not None and not isinstance(currently_syncing, str):
        raise InputFileError(f"{source}: 'currently_syncing' must be a stream name or null")
    return state


def _unwrapped(state: Dict[str, Any]) -> Dict[str, Any]:
    """Meltano wraps the tap's state when it is exported from its system database."""
    if "singer_state" in state and "bookmarks" not in state and isinstance(state["singer_state"], dict):
        return dict(state["singer_state"])
    return state


def _migrate_flat_bookmarks(state: Dict[str, Any]) -> None:
    legacy = {key: value for key, value in state.items() if get_stream(key) is not None and isinstance(value, str)}
    if not legacy:
        return
    LOGGER.info("Migrating a tap-wootric 0.5.x state (flat bookmarks for %s)", ", ".join(sorted(legacy)))
    bookmarks = dict(state.get("bookmarks") or {})
    for stream, value in legacy.items():
        bookmarks.setdefault(stream, {"updated_at": value})
        del state[stream]
    state["bookmarks"] = bookmarks


def _check_bookmark(stream: str, bookmark: Any, source: str) -> None:
    if not isinstance(bookmark, dict):
        raise InputFileError(f"{source}: the bookmark of stream '{stream}' must be an object")
    if not _is_count(bookmark.get("version")):
        raise InputFileError(f"{source}: the table version of stream '{stream}' must be an integer: "
                             f"{bookmark['version']!r}")
    if bookmark.get(RECONCILE) is not None:
        _check_reconcile(stream, bookmark[RECONCILE], source)
        _check_ranges(bookmark[RECONCILE].get(PARTS), f"{source}: 'parts' in the reconciliation state of stream "
                      f"'{stream}'")
    _check_ranges(bookmark.get(SCAN_PARTS), f"{source}: bookmark '{SCAN_PARTS}' of stream '{stream}'")
    _check_values(bookmark, TIME_KEYS, parse_bookmark,
                  lambda key, value: f"{source}: bookmark '{key}' of stream '{stream}' is not a timestamp: {value!r}")
    _check_values(bookmark, DAY_KEYS, parse_day, lambda key, value: f"{source}: bookmark '{key}' of stream "
                  f"'{stream}' is not a YYYY-MM-DD date: {value!r}")


def _is_count(value: Any) -> bool:
    """None, or a whole number that is not a boolean."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _check_values(holder: Dict[str, Any], keys: Iterable[str], parse: Callable[[Any], Any],
                  message: Callable[[str, Any], str]) -> None:
    for key in keys:
        value = holder.get(key)
        if value is not None and parse(value) is None:
            raise InputFileError(message(key, value))


def _check_ranges(ranges: Any, where: str) -> None:
    """Unfinished ranges of a partitioned read: [[time, time or null], ...]."""
    if ranges is None:
        return
    if not isinstance(ranges, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in ranges):
        raise InputFileError(f"{where} must be a list of [from, to] pairs")
    for first, last in ranges:
        if parse_bookmark(first) is None or (last is not None and parse_bookmark(last) is None):
            raise InputFileError(f"{where} holds a range that is not a pair of timestamps: {[first, last]!r}")


def _check_reconcile(stream: str, reconcile: Any, source: str) -> None:
    """The reconciliation pass's state: counts are whole numbers, the cursor a time."""
    where = f"{source}: the reconciliation state of stream '{stream}'"
    if not isinstance(reconcile, dict):
        raise InputFileError(f"{where} must be an object")
    for key in _COUNT_KEYS:
        value = reconcile.get(key)
        if not _is_count(value) or (value is not None and value < 0):
            raise InputFileError(f"{source}: '{key}' in the reconciliation state of stream '{stream}' must be a "
                                 f"whole number: {value!r}")
    _check_values(reconcile, ("cursor",), parse_bookmark, lambda key, value: f"{source}: 'cursor' in the "
                  f"reconciliation state of stream '{stream}' is not a timestamp: {value!r}")
