"""In-memory tests that the per-record fast paths give exactly what the paths they shortcut give: page
decoding against requests' `response.json()`, the memoised time parsing against the general parser, and
RECORD lines against singer-python's writer."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Optional

import pytest
import requests
import singer

from tap_wootric import timeutil
from tap_wootric.api.client import json_body
from tap_wootric.output import RecordWriter
from tap_wootric.timeutil import UnparseableTime, to_epoch_seconds, whole_second_rfc3339


def answer(body: bytes, content_type: Optional[str] = "application/json; charset=utf-8") -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = body
    if content_type is not None:
        response.headers["Content-Type"] = content_type
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    return response


def decoded(decode: Any, response: requests.Response) -> Any:
    """The value with every float marked as one (1.0 == 1 in Python), or the kind of error."""
    try:
        value = decode(response)
    except (ValueError, RecursionError) as exc:
        return "RecursionError" if isinstance(exc, RecursionError) else "ValueError"

    def mark(item: Any) -> Any:
        if isinstance(item, float):
            return ("float", "nan" if math.isnan(item) else repr(item))
        if isinstance(item, dict):
            return [(key, mark(inner)) for key, inner in item.items()]
        if isinstance(item, list):
            return [mark(inner) for inner in item]
        return (type(item).__name__, item)

    return mark(value)


BODIES = [
    b'[{"id": 1, "created_at": "2024-01-01 10:00:00 -0800", "tags": ["a"], "notes": [], "x": null}]',
    b'[1, -1, 0, -0, 1.0, -0.0, 1E2, 2.5e-07, 5e-324, 1.7976931348623157e308, 0.1, 1.0000000000000002]',
    b'[9223372036854775807, -9223372036854775808, 18446744073709551615, 999999999999999999]',
    b'[18446744073709551616, -9223372036854775809, 123456789012345678901234567890]',  # beyond 64 bits
    b'[1.2345678901234567890123, "id 12345678901234567890 in a string"]',
    b'[1e400, -1e400]', b'[NaN]', b'[Infinity]', b'[-Infinity]',
    b'\xef\xbb\xbf[1]',  # a byte-order mark
    b'["\xc3\xa9 caf\xc3\xa9 \xe7\xa0\x94\xe7\xa9\xb6 \xf0\x9f\x91\x8d"]', b'["\xff\xfe bad utf-8"]',
    b'["\\ud800 lone surrogate"]', b'["\\ud83d\\udc4d pair", "\\u0000", "\\u2028"]',
    b'{"a": 1, "b": 2, "a": 3}', b'  [1]  ', b'[1,]', b'[1] x', b'', b'null', b'"text"', b'{}',
    b'["a\x00 raw control"]', b'[' * 2000 + b']' * 2000,  # nested too deep for either
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/json", None,
                                          "text/plain", "application/json; charset=iso-8859-1"])
def test_page_decoding_gives_what_requests_gives(body, content_type):
    response = answer(body, content_type)
    assert decoded(json_body, response) == decoded(lambda r: r.json(), answer(body, content_type))


def test_page_decoding_reads_utf16_as_requests_does():
    body = json.dumps([{"a": "é"}]).encode("utf-16-le")
    assert json_body(answer(body, None)) == answer(body, None).json() == [{"a": "é"}]


ODD_TIMES = [
    "2024-01-01 10:00:00 -0800", "2024-01-01 10:00:00 +0000", "2024-01-01 10:00:00 -0000",
    "2024-02-29 23:59:59 +2359", "2023-02-29 10:00:00 +0000", "2024-01-01 24:00:00 +0000",
    "2024-01-01 10:60:00 +0000", "2024-01-01 10:00:60 +0000", "2024-01-01 10:00:00 +2400",
    "2024-01-01 10:00:00 +0060", "2024-01-01 10:00:00 *0800", "2024-01-01 10:00:00 --800",
    "２０２４-01-01 10:00:00 +0000", "+024-01-01 10:00:00 +0000", "2_24-01-01 10:00:00 +0000",
    "2024-1-01 10:00:00 +00000", "2024/01/01 10:00:00 +0000", "2024-01-01T10:00:00 +0000",
    "2024-01-01 1０:00:00 +0000", "2024-01-01 10:00:00 +0８00", "0000-01-01 00:00:00 +0000",
    "0001-01-01 00:00:00 +0100", "9999-12-31 23:59:59 -0100", "1969-12-31 23:59:59 +0000",
    "2024-01-01 10:00:00.5 -0800", "2024-01-01 10:00:00", "2024-01-01T10:00:00Z", "2024-01-01 10:00:00-08:00",
]


def slow_epoch(value: str) -> Any:
    """What the general path (the full-format regex, then dateutil) says, memo and table lookups bypassed."""
    try:
        match = timeutil._API_FORMAT.match(value)
        if match:
            year, month, day, hour, minute, second, _f, sign, off_h, off_m, _z = match.groups()
            return timeutil._instant(int(year), int(month), int(day), int(hour), int(minute), int(second), sign,
                                     int(off_h or 0), int(off_m or 0))
        return "unparseable"
    except UnparseableTime:
        return "no such time"
    except ValueError:  # year 0: datetime's own range, which both paths leave to raise
        return "out of range"


@pytest.mark.parametrize("value", ODD_TIMES)
def test_memoised_time_parsing_agrees_with_the_general_path_on_odd_values(value):
    """Each value twice, so that the second answer comes from the memo, and in both orders of the two
    callers (whole_second_rfc3339 refuses fractions that to_epoch_seconds floors)."""
    expected = slow_epoch(value)
    for first in ("epoch", "rfc3339"):
        timeutil._EPOCHS.clear()
        timeutil._RFC3339.clear()
        for caller in ([first, "epoch", "rfc3339"] * 2):
            if expected == "out of range":
                with pytest.raises(ValueError):
                    to_epoch_seconds(value) if caller == "epoch" else whole_second_rfc3339(value)
            elif caller == "epoch":
                try:
                    got: Any = to_epoch_seconds(value)
                except UnparseableTime:
                    got = "refused"
                if isinstance(expected, int):
                    assert got == expected, value
                elif expected == "no such time":
                    assert got == "refused", value
            else:
                formatted = whole_second_rfc3339(value)
                if isinstance(expected, int) and "." not in value:
                    try:
                        utc = datetime.fromtimestamp(expected, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
                    except ValueError:  # before the year 1: no RFC 3339 form
                        utc = None
                    assert formatted == utc, value
                else:
                    assert formatted is None, value


def test_the_time_memos_stay_bounded_and_a_bool_is_never_a_time():
    timeutil._RFC3339.clear()
    start = to_epoch_seconds("2020-01-01 00:00:00 +0000")
    for second in range(3 * timeutil._MEMO_SIZE):
        value = datetime.fromtimestamp(start + second, timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000")
        assert to_epoch_seconds(value) == start + second
        assert whole_second_rfc3339(start + second) == whole_second_rfc3339(value)
    assert len(timeutil._EPOCHS) <= timeutil._MEMO_SIZE and len(timeutil._RFC3339) <= timeutil._MEMO_SIZE
    assert whole_second_rfc3339(1) == "1970-01-01T00:00:01.000000Z"
    assert whole_second_rfc3339(True) is None
    with pytest.raises(UnparseableTime):
        to_epoch_seconds(True)


@pytest.mark.parametrize("record", [
    {"id": 1, "score": 9.5, "tiny": 5e-324, "huge": 1.7976931348623157e308, "e": 1e16, "neg": -0.0},
    {"id": 2 ** 64, "small": -(2 ** 63) - 1, "text": "Grüße 研究 👍 \u2028 \x7f \"q\" \\"},
    {"nested": {"list": [[], {}, [None, True, False]], "key with spaces": "v"}},
    {"big": 123456789012345678901234567890},
])
def test_record_lines_equal_singer_pythons_for_a_table_of_records(capsys, record):
    extracted_at = datetime(2026, 12, 5, 23, 0, 0, 1, tzinfo=timezone.utc)
    singer.write_message(singer.RecordMessage(stream="s", record=record, version=7, time_extracted=extracted_at))
    expected = capsys.readouterr().out
    RecordWriter("s", 7).write([record], extracted_at)
    assert capsys.readouterr().out == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused_as_singer_python_refuses_them(value):
    with pytest.raises(ValueError):
        RecordWriter("s").write([{"nested": {"x": [value]}}], datetime.now(timezone.utc))


def test_a_circular_record_is_refused_as_singer_python_refuses_it():
    record: dict = {"id": 1}
    record["self"] = record
    with pytest.raises(ValueError):
        singer.format_message(singer.RecordMessage(stream="s", record=record))
    with pytest.raises(ValueError):
        RecordWriter("s").write([record], datetime.now(timezone.utc))


@pytest.mark.parametrize("key", [1, None, 1.5, True])
def test_non_string_keys_are_written_as_singer_python_writes_them(capsys, key):
    extracted_at = datetime(2026, 12, 5, tzinfo=timezone.utc)
    singer.write_message(singer.RecordMessage(stream="s", record={key: "v"}, time_extracted=extracted_at))
    expected = capsys.readouterr().out
    RecordWriter("s").write([{key: "v"}], extracted_at)
    assert capsys.readouterr().out == expected
