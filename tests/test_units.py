"""Pure parts: time parsing, config checks, state migration, bookmark maths, field selection."""

import pendulum
import pytest

from tap_wootric.catalog.discover import discover
from tap_wootric.catalog.selection import selected_schema
from tap_wootric.config import load_config
from tap_wootric.errors import ConfigError, InputFileError
from tap_wootric.incremental.plan import plan_scan
from tap_wootric.state import prepare_state
from tap_wootric.streams import get_stream
from tap_wootric.timeutil import format_epoch, parse_start_date, to_epoch_seconds

BASE = {"client_id": "id", "client_secret": "secret", "start_date": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2016-12-16 09:05:00 -0800", "2016-12-16T17:05:00Z"),  # Pacific standard time
        ("2022-08-10 11:39:50 -0700", "2022-08-10T18:39:50Z"),  # Pacific daylight time
        ("2014-12-01 18:36:59", "2014-12-01T18:36:59Z"),  # old naive data: UTC
        ("2015-04-20 04:46:51-08:00", "2015-04-20T12:46:51Z"),
        ("2015-02-12T06:29:27.000-08:00", "2015-02-12T14:29:27Z"),
        ("2024-03-10T10:00:00Z", "2024-03-10T10:00:00Z"),
        ("2024-03-10 12:00:00 +0530", "2024-03-10T06:30:00Z"),
        (1515940485, "2018-01-14T14:34:45Z"),
    ],
)
def test_api_time_shapes_become_utc(value, expected):
    assert format_epoch(to_epoch_seconds(value)) == expected


def test_dst_offsets_inside_one_record_keep_their_own_instants():
    summer, winter = to_epoch_seconds("2022-08-10 11:39:50 -0700"), to_epoch_seconds("2022-01-20 05:39:21 -0800")
    assert summer - winter == int(
        (pendulum.datetime(2022, 8, 10, 18, 39, 50) - pendulum.datetime(2022, 1, 20, 13, 39, 21)).total_seconds()
    )


@pytest.mark.parametrize("value", ["June", "yesterday", "1700000000", "2024-13-01", "", 20240101])
def test_start_date_must_be_a_real_date(value):
    with pytest.raises(ConfigError, match="start_date"):
        parse_start_date(value)


def test_config_defaults_follow_region():
    config = load_config({**BASE, "region": "EU"})
    assert config.api_url == "https://app.wootric.eu/api/v1"
    assert config.oauth_url == "https://app.wootric.eu/oauth/token"
    assert config.lookback_days == 30 and config.request_timeout == 300
    assert "secret" not in repr(config)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"client_secret": ""}, "client_secret"),
        ({"client_id": None, "client_secret": None}, "credentials"),
        ({"region": "mars"}, "region"),
        ({"api_url": "http://api.example.com/v1"}, "plain http"),
        ({"lookback_days": -1}, "lookback_days"),
        ({"request_timeout": "soon"}, "request_timeout"),
        ({"start_date": None}, "start_date"),
    ],
)
def test_bad_config_names_the_problem(change, message):
    raw = {key: value for key, value in {**BASE, **change}.items() if value is not None}
    with pytest.raises(ConfigError, match=message):
        load_config(raw)


def test_password_grant_and_loopback_http_are_accepted():
    config = load_config({"username": "u@example.com", "password": "pw", "start_date": "2024-01-01",
                          "api_url": "http://127.0.0.1:9/v1", "oauth_url": "http://localhost:9/oauth/token",
                          "lookback_days": "7", "request_timeout": 0})
    assert config.grant_type == "password"
    assert config.lookback_days == 7 and config.request_timeout == 300


def test_flat_state_of_tap_wootric_0_5_is_migrated():
    state = prepare_state({"end_users": "2024-01-01T00:00:00+00:00", "responses": "2024-02-01T00:00:00Z"})
    assert state == {"bookmarks": {"end_users": {"updated_at": "2024-01-01T00:00:00+00:00"},
                                   "responses": {"updated_at": "2024-02-01T00:00:00Z"}}}


@pytest.mark.parametrize(
    "state",
    [[], {"bookmarks": []}, {"bookmarks": {"responses": "x"}}, {"bookmarks": {"responses": {"updated_at": "soon"}}},
     {"currently_syncing": 3}, {"bookmarks": {"responses": {"reconcile": []}}},
     {"bookmarks": {"responses": {"reconcile": {"version": 1, "runs": "two"}}}},
     {"bookmarks": {"end_users": {"reconcile": {"version": 1, "cursor": "later"}}}}],
)
def test_state_of_the_wrong_shape_is_refused(state):
    with pytest.raises(InputFileError, match="state"):
        prepare_state(state)


NOW = to_epoch_seconds("2024-06-01T12:00:00Z")
DAY = 86400


def test_first_sync_starts_at_start_date_and_bookmarks_the_signpost():
    config = load_config(BASE)
    plan = plan_scan(get_stream("responses"), config, {}, NOW)
    assert plan.start == to_epoch_seconds("2024-01-01T00:00:00Z")
    assert plan.emit_updated_since is None and plan.final_bookmark == NOW and plan.upper == NOW + 1


def test_responses_rescan_the_lookback_window_and_emit_only_updated_rows():
    config = load_config({**BASE, "lookback_days": 30})
    bookmark = NOW - 5 * DAY
    plan = plan_scan(get_stream("responses"), config, {"updated_at": format_epoch(bookmark)}, NOW)
    assert plan.start == bookmark - 30 * DAY
    assert plan.emit_updated_since == bookmark


def test_lookback_never_reaches_before_start_date():
    config = load_config({**BASE, "start_date": "2024-05-20T00:00:00Z"})
    plan = plan_scan(get_stream("declines"), config, {"updated_at": format_epoch(NOW - DAY)}, NOW)
    assert plan.start == to_epoch_seconds("2024-05-20T00:00:00Z")


def test_interrupted_lookback_scan_resumes_and_keeps_the_first_runs_signpost():
    config = load_config(BASE)
    bookmark = {"updated_at": format_epoch(NOW - 10 * DAY), "scan_position": format_epoch(NOW - 3 * DAY),
                "scan_signpost": format_epoch(NOW - DAY)}
    plan = plan_scan(get_stream("responses"), config, bookmark, NOW)
    assert plan.resumed and plan.start == NOW - 3 * DAY
    assert plan.final_bookmark == NOW - DAY and plan.emit_updated_since == NOW - 10 * DAY


@pytest.mark.parametrize("stream", ["end_users", "responses", "declines"])
def test_a_future_start_date_scans_nothing_and_bookmarks_start_date(stream):
    config = load_config({**BASE, "start_date": "2030-01-01T00:00:00Z"})
    future = to_epoch_seconds("2030-01-01T00:00:00Z")
    for bookmark in ({}, {"updated_at": format_epoch(NOW - DAY)}):
        plan = plan_scan(get_stream(stream), config, bookmark, NOW)
        assert plan.start == future and plan.start >= plan.upper and plan.final_bookmark == future
        assert plan.emit_updated_since is None


def test_a_bookmark_below_a_raised_start_date_is_not_a_resume_point():
    config = load_config({**BASE, "start_date": "2024-05-01T00:00:00Z"})
    start = to_epoch_seconds("2024-05-01T00:00:00Z")
    plan = plan_scan(get_stream("responses"), config, {"updated_at": format_epoch(start - 9 * DAY)}, NOW)
    assert plan.start == start and plan.emit_updated_since is None and plan.final_bookmark == NOW
    interrupted = {"updated_at": format_epoch(start - 9 * DAY), "scan_position": format_epoch(start - 5 * DAY),
                   "scan_signpost": format_epoch(start - DAY)}
    plan = plan_scan(get_stream("declines"), config, interrupted, NOW)
    assert plan.start == start and plan.final_bookmark == start and plan.emit_updated_since is None


def test_end_users_resume_from_their_bookmark_without_lookback():
    config = load_config(BASE)
    plan = plan_scan(get_stream("end_users"), config, {"updated_at": format_epoch(NOW - DAY)}, NOW)
    assert plan.start == NOW - DAY and plan.emit_updated_since is None


def test_emitted_schema_drops_deselected_fields_but_keeps_automatic_ones():
    from singer import metadata

    entry = discover().get_stream("responses")
    mdata = metadata.to_map(entry.metadata)
    for name in ("text", "id"):
        mdata = metadata.write(mdata, ("properties", name), "selected", False)
    mdata = metadata.write(mdata, ("properties", "end_user", "properties", "email"), "selected", False)
    schema = selected_schema(entry.schema.to_dict(), mdata)
    assert "text" not in schema["properties"] and "id" in schema["properties"]
    assert list(schema["properties"]["end_user"]["properties"]) == ["properties"]


@pytest.mark.parametrize(
    "value",
    ["2016-12-16 09:05:00 -0800", "2022-08-10 11:39:50 -0700", "2014-12-01 18:36:59", "2015-04-20 04:46:51-08:00",
     "2015-02-12T06:29:27.250-08:00", 1515940485, "2024-03-10T10:00:00Z", None, "", "June 5"],
)
def test_fast_time_path_agrees_with_singer_python(value):
    from singer.transform import UNIX_SECONDS_INTEGER_DATETIME_PARSING, Transformer

    from tap_wootric.transform import WootricTransformer

    schema = {"type": "object", "properties": {"t": {"type": ["null", "string"], "format": "date-time"}}}
    reference = Transformer(integer_datetime_fmt=UNIX_SECONDS_INTEGER_DATETIME_PARSING)
    try:
        expected = reference.transform({"t": value}, schema)
    except Exception as exc:  # the reference fails on unparseable input; so must we
        with pytest.raises(type(exc)):
            WootricTransformer().transform({"t": value}, schema)
        return
    assert WootricTransformer().transform({"t": value}, schema) == expected


@pytest.mark.parametrize("deselect", [(), ("score", "tags", "end_user"), ("settings", "last_response", "email")])
def test_compiled_transform_agrees_with_singer_python_on_api_data(deselect):
    import copy
    import json
    from datetime import datetime, timezone

    from fake import FakeWootric
    from singer import metadata as singer_metadata

    from tap_wootric.catalog.discover import discover
    from tap_wootric.transform import RecordTransformer, WootricTransformer

    fake = FakeWootric(seed=8)
    start, end = datetime(2020, 3, 1, tzinfo=timezone.utc), datetime(2020, 12, 1, tzinfo=timezone.utc)
    for stream in ("end_users", "responses", "declines"):
        fake.generate(stream, 150, start, end)
    edge_rows = [{"id": 1, "updated_at": "2020-03-08 01:59:59 -0800", "created_at": "", "email": "",
                  "score": "", "survey_id": None, "tags": [], "notes": [{"any": ["thing"]}], "end_user": None,
                  "properties": {"nested": {"a": [1, "b"]}}, "settings": {"email_nps": False}}]
    for entry in discover().streams:
        schema = entry.schema.to_dict()
        mdata = singer_metadata.to_map(entry.metadata)
        for name in deselect:
            if ("properties", name) in mdata:
                mdata[("properties", name)]["selected"] = False
        shaper = RecordTransformer(entry.tap_stream_id, schema, mdata)
        assert shaper._fast is not None, "the compiled path covers every schema the tap ships"
        if entry.tap_stream_id not in ("end_users", "responses", "declines"):
            continue
        rows = [fake.render(r) for r in fake.records(entry.tap_stream_id)] + edge_rows
        for row in rows:
            row = {key: value for key, value in row.items() if key in schema["properties"]}
            expected = WootricTransformer().transform(copy.deepcopy(row), schema, mdata)
            assert json.dumps(shaper.transform(copy.deepcopy(row))) == json.dumps(expected)


def test_null_booleans_stay_null():
    from tap_wootric.transform import WootricTransformer

    schema = {"type": "object", "properties": {"flag": {"type": ["null", "boolean"]}}}
    for value, expected in ((None, None), ("", None), (True, True), (False, False)):
        assert WootricTransformer().transform({"flag": value}, schema) == {"flag": expected}


@pytest.mark.parametrize("value", ["2024-02-30 10:00:00 +0000", "2024-01-01 24:00:00 +0000",
                                   "2024-02-30 10:00:00 -0800", "2024-01-01 10:00:00 --800"])
def test_impossible_api_times_are_not_turned_into_instants(value):
    from tap_wootric.timeutil import whole_second_rfc3339
    from tap_wootric.transform import RecordTransformer

    assert whole_second_rfc3339(value) is None
    schema = {"type": "object", "properties": {"id": {"type": "integer"},
                                               "t": {"type": ["null", "string"], "format": "date-time"}}}
    assert RecordTransformer("s", schema, {}).transform({"id": 1, "t": value}) == {"id": 1, "t": None}


def test_api_time_fast_path_agrees_with_the_standard_parser_on_valid_and_broken_values():
    """The sliced and cached path for "YYYY-MM-DD HH:MM:SS +HHMM" against datetime.strptime, over
    random values with every part sometimes out of range (day 31 in February, hour 24, minute 60 ...)."""
    import random
    from datetime import datetime

    from tap_wootric.timeutil import UnparseableTime, whole_second_rfc3339

    rng = random.Random(20261123)
    for _ in range(20000):
        year, month, day = rng.randint(1970, 2037), rng.randint(0, 13), rng.randint(0, 32)
        hour, minute, second = rng.randint(0, 24), rng.randint(0, 60), rng.randint(0, 60)
        sign, offset_hours, offset_minutes = rng.choice("+-"), rng.randint(0, 14), rng.choice((0, 30, 45, 60))
        value = (f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d} "
                 f"{sign}{offset_hours:02d}{offset_minutes:02d}")
        try:
            expected = int(datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z").timestamp())
        except ValueError:
            expected = None
        if expected is None:
            with pytest.raises(UnparseableTime):
                to_epoch_seconds(value)
            assert whole_second_rfc3339(value) is None, value
        else:
            assert to_epoch_seconds(value) == expected, value
            assert whole_second_rfc3339(value) == format_epoch(expected).replace("Z", ".000000Z"), value


@pytest.mark.parametrize("version", [None, 1700000000123])
def test_record_lines_are_exactly_those_singer_python_writes(capsys, version):
    """RecordWriter builds RECORD lines itself for speed; a target must not see any difference from
    singer-python's own writer: key order, separators, escaping, Decimals and refused NaN included."""
    from datetime import datetime, timezone
    from decimal import Decimal

    import singer

    from tap_wootric.output import RecordWriter

    extracted_at = datetime(2026, 11, 23, 8, 30, 15, 123456, tzinfo=timezone.utc)
    records = [
        {"id": 1, "text": "Très bien 👍 \"quoted\" \\ back\nslash\u2028", "score": 9.5, "tags": ["a", "ß"],
         "end_user": {"properties": {"plan": None, "seats": 3, "flag": True}}, "created_at": None},
        {"id": 2, "amount": Decimal("12.50")},
        {},
    ]
    for record in records:
        singer.write_message(singer.RecordMessage(stream="réponses", record=record, version=version,
                                                  time_extracted=extracted_at))
    expected = capsys.readouterr().out
    assert RecordWriter("réponses", version).write(records, extracted_at) == 3
    assert capsys.readouterr().out == expected
    with pytest.raises(ValueError):
        RecordWriter("s").write([{"score": float("nan")}], extracted_at)
