"""Reading, checking and migrating the state file.

The layout is singer-python's:
    {"currently_syncing": "responses",
     "bookmarks": {"end_users": {"updated_at": "2024-01-01T00:00:00Z"},
                   "responses": {"updated_at": "...", "scan_position": "...", "scan_signpost": "..."}}}
`scan_position` and `scan_signpost` exist only while a lookback scan is unfinished. The day streams
(nps_summary, email_stats) bookmark an account-local date: `{"date": "2024-01-31"}`.
"""

from __future__ import annotations

import logging
from typing import Any, Dict

from tap_wootric.errors import InputFileError
from tap_wootric.readers.daily import parse_day
from tap_wootric.streams import get_stream
from tap_wootric.timeutil import parse_bookmark

LOGGER = logging.getLogger(__name__)

TIME_KEYS = ("updated_at", "scan_position", "scan_signpost")


def prepare_state(raw: Any, source: str = "the state file") -> Dict[str, Any]:
    """Validate a state value, migrating tap-wootric 0.5.x's flat layout, or raise InputFileError naming
    `source` (the file it came from)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputFileError(f"{source} must hold a JSON object")
    state = dict(raw)
    # Meltano wraps the tap's state when it is exported from its system database.
    if "singer_state" in state and "bookmarks" not in state and isinstance(state["singer_state"], dict):
        state = dict(state["singer_state"])

    legacy = {key: value for key, value in state.items() if get_stream(key) is not None and isinstance(value, str)}
    if legacy:
        LOGGER.info("Migrating a tap-wootric 0.5.x state (flat bookmarks for %s)", ", ".join(sorted(legacy)))
        bookmarks = dict(state.get("bookmarks") or {})
        for stream, value in legacy.items():
            bookmarks.setdefault(stream, {"updated_at": value})
            del state[stream]
        state["bookmarks"] = bookmarks

    bookmarks = state.get("bookmarks", {})
    if bookmarks is None:
        bookmarks = state["bookmarks"] = {}
    if not isinstance(bookmarks, dict):
        raise InputFileError(f"{source}: 'bookmarks' must be an object of per-stream objects")
    for stream, bookmark in bookmarks.items():
        if not isinstance(bookmark, dict):
            raise InputFileError(f"{source}: the bookmark of stream '{stream}' must be an object")
        version = bookmark.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise InputFileError(f"{source}: the table version of stream '{stream}' must be an integer: {version!r}")
        reconcile = bookmark.get("reconcile")
        if reconcile is not None:
            _check_reconcile(stream, reconcile)
        for key in TIME_KEYS:
            if key in bookmark and bookmark[key] is not None and parse_bookmark(bookmark[key]) is None:
                raise InputFileError(
                    f"{source}: bookmark '{key}' of stream '{stream}' is not a timestamp: {bookmark[key]!r}"
                )
        if bookmark.get("date") is not None and parse_day(bookmark["date"]) is None:
            raise InputFileError(
                f"state file: bookmark 'date' of stream '{stream}' is not a YYYY-MM-DD date: {bookmark['date']!r}"
            )
    currently_syncing = state.get("currently_syncing")
    if currently_syncing is not None and not isinstance(currently_syncing, str):
        raise InputFileError(f"{source}: 'currently_syncing' must be a stream name or null")
    return state


def _check_reconcile(stream: str, reconcile: Any) -> None:
    """The reconciliation pass's state (reconcile.py): counts are whole numbers, the cursor a time."""
    if not isinstance(reconcile, dict):
        raise InputFileError(f"state file: the reconciliation state of stream '{stream}' must be an object")
    for key in ("version", "previous_version", "runs", "read", "estimate"):
        value = reconcile.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InputFileError(
                f"state file: '{key}' in the reconciliation state of stream '{stream}' must be a whole number: "
                f"{value!r}")
    cursor = reconcile.get("cursor")
    if cursor is not None and parse_bookmark(cursor) is None:
        raise InputFileError(
            f"state file: 'cursor' in the reconciliation state of stream '{stream}' is not a timestamp: {cursor!r}")
