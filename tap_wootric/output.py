"""The one writer of Singer messages: SCHEMA, RECORD (a page at a time), STATE and ACTIVATE_VERSION.

Every message goes out as complete lines in one write and one flush, so whatever a target has
read ends on a line boundary, and a page's records are on stdout before any STATE that follows.
That write holds off SIGTERM and SIGINT until it is complete (`write_lines`, see cancel.py), so a
cancelled tap never leaves half a line for the target either.

The lines are exactly those of singer-python's `write_record` (same keys in the same order, same
separators, ASCII-escaped, NaN refused). singer-python builds a message object, encodes it with
simplejson and flushes stdout for every record, which was a third of the tap's CPU time; here the
fixed parts of the line are made once per page, the record goes through the standard library's
C encoder, and stdout is written and flushed once per page. A page's records are therefore on
stdout, complete lines only, before any STATE that follows them.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any, Callable, Dict, Iterable, List, Optional

import singer
from singer.utils import strftime

from tap_wootric.cancel import uninterruptible_write

_ENCODER = json.JSONEncoder(allow_nan=False)


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _record_encoder() -> Callable[[Any], str]:
    """`_ENCODER.encode`, minus what that does on every call: it builds a new C encoder (and a
    circular-reference table) for each value, which was a quarter of the time spent encoding a
    record. Records come from decoded JSON, so they cannot be circular (one that were would end in
    RecursionError, and the record would take singer-python's path, which reports it)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python implementation)
        return _ENCODER.encode
    try:
        encode = make(None, _refuse, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, False)
    except TypeError:  # a Python whose C encoder takes other arguments
        return _ENCODER.encode
    sample = {"a": [1, 2.5, None, True, "\u00e9\n"], "b": {}}
    if "".join(encode(sample, 0)) != _ENCODER.encode(sample):
        return _ENCODER.encode
    return lambda record: "".join(encode(record, 0))


_encode_record = _record_encoder()


def write_lines(text: str) -> None:
    """Write complete message lines (each ending in a newline) and flush them, uninterrupted."""
    with uninterruptible_write():
        sys.stdout.write(text)
        sys.stdout.flush()


class MessageWriter:
    """Writes every message the tap sends."""

    def schema(self, stream: str, schema: Dict[str, Any], key_properties: List[str],
               bookmark_properties: Optional[List[str]] = None) -> None:
        self._line(singer.SchemaMessage(stream=stream, schema=schema, key_properties=key_properties,
                                        bookmark_properties=bookmark_properties))

    def records(self, stream: str, records: Iterable[Dict[str, Any]], time_extracted: datetime,
                version: Optional[int] = None) -> int:
        return RecordWriter(stream, version).write(records, time_extracted)

    def state(self, value: Dict[str, Any]) -> None:
        # Formatted at once, before the caller can change it: no copy needed (a page's STATE went through
        # a deep copy of the whole state).
        self._line(singer.StateMessage(value=value))

    def activate_version(self, stream: str, version: int) -> None:
        self._line(singer.ActivateVersionMessage(stream=stream, version=version))

    @staticmethod
    def _line(message: singer.Message) -> None:
        write_lines(singer.format_message(message) + "\n")


class RecordWriter:
    """Writes one stream's RECORD messages; `version` is the full-table read's, if any."""

    def __init__(self, stream: str, version: Optional[int] = None):
        self.stream = stream
        self.version = version
        self._head = '{"type": "RECORD", "stream": ' + _ENCODER.encode(stream) + ', "record": '
        self._version_part = "" if version is None else f', "version": {_ENCODER.encode(version)}'

    def write(self, records: Iterable[Dict[str, Any]], time_extracted: datetime) -> int:
        """Write the records with one `time_extracted` (an aware datetime); returns how many."""
        tail = f'{self._version_part}, "time_extracted": "{strftime(time_extracted)}"}}\n'
        lines = []
        for record in records:
            try:
                lines.append(self._head + _encode_record(record) + tail)
            except (TypeError, ValueError, RecursionError):
                # A value the standard encoder does not take (a Decimal, say) or refuses (NaN):
                # singer-python's own formatting decides, exactly as write_record would.
                lines.append(singer.format_message(singer.RecordMessage(
                    stream=self.stream, record=record, version=self.version, time_extracted=time_extracted)) + "\n")
        if lines:
            write_lines("".join(lines))
        return len(lines)
