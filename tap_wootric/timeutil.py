"""Time parsing and formatting.

The API renders times as "YYYY-MM-DD HH:MM:SS -0800" in the account's zone, with an
offset that follows daylight saving time, so one record can carry several offsets.
Older data and other endpoints use other shapes (naive strings, ISO 8601 with a
colon in the offset or milliseconds, UNIX seconds). Everything becomes UTC here.
"""

from __future__ import annotations

import calendar
import functools
import re
import time
from datetime import date, datetime, timezone
from typing import Any, Dict, Optional, Union

import dateutil.parser
import pendulum

from tap_wootric.errors import ConfigError

_API_FORMAT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d+)?\s*(?:([+-])(\d{2}):?(\d{2})|(Z))?$"
)


class UnparseableTime(ValueError):
    pass


def to_epoch_seconds(value: Any) -> int:
    """Whole UNIX seconds of an API time value (string in any known shape, or epoch number).

    A string without an offset is taken as UTC, as singer-python's Transformer does, so
    the paging key and the emitted value always agree.
    """
    if type(value) is str:
        # The scan field of a row is read twice for paging and once more by the transform.
        epoch = _EPOCHS.get(value)
        if epoch is not None:
            return epoch
    if isinstance(value, bool):
        raise UnparseableTime(f"not a time: {type(value).__name__}")
    if isinstance(value, (int, float)):
        return int(value // 1)
    if not isinstance(value, str):
        raise UnparseableTime(f"not a time: {type(value).__name__}")
    epoch = _api_epoch(value)
    if epoch is not None:
        return epoch
    try:
        parsed = dateutil.parser.parse(value)
    except (ValueError, OverflowError) as exc:
        raise UnparseableTime("unrecognised time format") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return calendar.timegm(parsed.utctimetuple())


# Recently seen whole-second strings in the API's own shape: their epoch seconds and their RFC 3339 form.
# Each is emptied when full, so memory stays bounded whatever the rows; a page only needs its own 50 rows'.
_MEMO_SIZE = 4096
_EPOCHS: Dict[str, int] = {}
_RFC3339: Dict[Union[str, int], str] = {}
# whole_second_rfc3339 of a value seen lately (a str or an int, never a bool), else None: for the hottest caller.
recent_rfc3339 = _RFC3339.get


def _api_epoch(value: str, *, whole_seconds_only: bool = False) -> Optional[int]:
    """Epoch seconds of a string in one of the API's own shapes, without a general-purpose parser;
    None for any other shape. Raises UnparseableTime for a date or time that does not exist."""
    epoch = _EPOCHS.get(value)
    if epoch is not None:
        return epoch
    # One comparison for the separators at 10, 13, 16 and 19: this test runs for every value.
    if len(value) == 25 and value[10:20:3] == " :: ":
        # "YYYY-MM-DD HH:MM:SS +HHMM", the shape of nearly every value. The calendar work is done once
        # per date (a day's rows share it, however sparse they are in time); the clock and the offset
        # are table lookups. Anything odd in this shape falls through to the general pattern.
        midnight = _midnight_of(value[0:10])
        if midnight is not None:
            # Indexing, not .get() and three None checks: cheaper, and a miss is rare.
            try:
                epoch = midnight + _HOURS[value[11:13]] + _MINUTES_SECONDS[value[14:19]] - _OFFSETS[value[20:25]]
                if len(_EPOCHS) >= _MEMO_SIZE:
                    _EPOCHS.clear()
                _EPOCHS[value] = epoch
                return epoch
            except KeyError:  # no such hour, minute or offset (only the lookups raise it): the pattern decides
                pass
    match = _API_FORMAT.match(value)
    if not match or (whole_seconds_only and match.group(7)):
        return None
    # "0" for what is absent: no offset is UTC, and _instant reads any sign but "-" as east.
    year, month, day, hour, minute, second, _fraction, sign, off_h, off_m, _zulu = match.groups("0")
    return _instant(int(year), int(month), int(day), int(hour), int(minute), int(second), sign,
                    int(off_h), int(off_m))


_HOURS = {f"{h:02d}": h * 3600 for h in range(24)}
_MINUTES_SECONDS = {f"{m:02d}:{s:02d}": m * 60 + s for m in range(60) for s in range(60)}
# "+HHMM" and "-HHMM" (a space before them is checked by the caller): seconds east of UTC.
_OFFSETS = {f"{sign}{h:02d}{m:02d}": (1 if sign == "+" else -1) * (h * 3600 + m * 60)
            for sign in "+-" for h in range(24) for m in range(60)}
_HOUR_FACES = [f"{h:02d}:" for h in range(24)]
_CLOCK_FACES = [f"{m:02d}:{s:02d}.000000Z" for m in range(60) for s in range(60)]


@functools.lru_cache(maxsize=8192)
def _midnight_of(date_text: str) -> Optional[int]:
    """Epoch seconds of 00:00 UTC on a "YYYY-MM-DD" date; None unless it is exactly that shape (ASCII
    digits: int() would also take other digits, signs and underscores) and a real date."""
    digits = date_text[0:4] + date_text[5:7] + date_text[8:10]
    if not (date_text[4] == date_text[7] == "-" and digits.isdigit() and digits.isascii()):
        return None
    try:
        return _midnight(date_text)
    except UnparseableTime:
        return None


def _instant(year: int, month: int, day: int, hour: int, minute: int, second: int, sign: Optional[str],
             offset_hours: int, offset_minutes: int) -> int:
    if not (hour <= 23 and minute <= 59 and second <= 59 and offset_hours <= 23 and offset_minutes <= 59):
        raise UnparseableTime("no such date or time")
    local = _midnight(f"{year:04d}-{month:02d}-{day:02d}") + hour * 3600 + minute * 60 + second
    offset = offset_hours * 3600 + offset_minutes * 60
    return local + offset if sign == "-" else local - offset


def _midnight(date: str) -> int:
    """Epoch seconds of 00:00 UTC on a "YYYY-MM-DD" date; UnparseableTime if there is no such date."""
    year, month, day = int(date[0:4]), int(date[5:7]), int(date[8:10])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise UnparseableTime("no such date or time")
    return calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))


def whole_second_rfc3339(value: Any) -> Optional[str]:
    """The API's whole-second time strings and UNIX seconds as singer-python formats date-times,
    without its general-purpose parser (the slowest step per record); None for any other shape
    or for a date that does not exist (the general parser then decides, and rejects it)."""
    kind = type(value)
    if kind is not str and kind is not int:  # not bool: True would find the memo's 1
        return _unmemoised_rfc3339(value)
    formatted = _RFC3339.get(value)
    if formatted is not None:
        return formatted
    if kind is str:
        try:
            seconds = _api_epoch(value, whole_seconds_only=True)
        except UnparseableTime:
            return None
        if seconds is None:
            return None
    else:
        seconds = value
    formatted = _format_seconds(seconds)
    if formatted is not None:
        if len(_RFC3339) >= _MEMO_SIZE:
            _RFC3339.clear()
        _RFC3339[value] = formatted
    return formatted


def _unmemoised_rfc3339(value: Any) -> Optional[str]:
    """whole_second_rfc3339 of a value that is neither exactly a str nor exactly an int: a subclass of int
    is UNIX seconds (bool is not), anything else no shape of ours. The memo is keyed by value, and equal
    values of other types (True == 1) must not share an entry."""
    return _format_seconds(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _format_seconds(seconds: int) -> Optional[str]:
    days, within_day = divmod(seconds, 86400)
    prefix = _day_prefix(days)
    if prefix is None:
        return None
    hour, within_hour = divmod(within_day, 3600)
    return prefix + _HOUR_FACES[hour] + _CLOCK_FACES[within_hour]


@functools.lru_cache(maxsize=8192)
def _day_prefix(days: int) -> Optional[str]:
    """"YYYY-MM-DDT" of a day counted from the epoch; None outside the years 1 to 9999."""
    try:
        moment = time.gmtime(days * 86400)
    except (OverflowError, OSError, ValueError):
        return None
    if not 1 <= moment.tm_year <= 9999:
        return None
    return f"{moment.tm_year:04d}-{moment.tm_mon:02d}-{moment.tm_mday:02d}T"


def format_epoch(seconds: Union[int, float]) -> str:
    """RFC 3339 UTC with whole seconds, the format of every bookmark the tap writes."""
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_bookmark(value: Any) -> Optional[int]:
    """Epoch seconds of a bookmark string from a state file, or None if it cannot be read."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return to_epoch_seconds(value)
    except UnparseableTime:
        return None


def parse_start_date(value: Any) -> pendulum.DateTime:
    """Strictly parse config start_date; lenient parsers turn "June" into a date this year."""
    if not isinstance(value, str):
        raise ConfigError(f"config key 'start_date' must be an RFC 3339 date string, not {value!r}")
    try:
        parsed = pendulum.parse(value.strip(), strict=True, tz="UTC")
    except Exception:  # pendulum raises several unrelated types for bad input
        parsed = None
    if not isinstance(parsed, (pendulum.DateTime, pendulum.Date)) or isinstance(parsed, pendulum.Time):
        raise ConfigError(
            f"config key 'start_date' is not a date: {value!r} (use RFC 3339, e.g. \"2024-01-01T00:00:00Z\")"
        )
    if not isinstance(parsed, pendulum.DateTime):
        parsed = pendulum.datetime(parsed.year, parsed.month, parsed.day, tz="UTC")
    return parsed.in_timezone("UTC")


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(value: Any) -> Optional[date]:
    """The date of a `YYYY-MM-DD` bookmark, or None if it is not one."""
    if not isinstance(value, str) or not _DAY.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
