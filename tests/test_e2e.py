"""The installed tap-wootric command against the fake API over real HTTP."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest
from conftest import NOW, STREAMS, YEARS_AGO, seed, select


def utc_second(value: datetime) -> str:
    return value.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")


def emitted_second(value: str) -> str:
    return value[:19]


def checker():
    return jsonschema.FormatChecker()  # strict-rfc3339 makes it check date-time


def test_discovery_lists_every_stream_with_metadata(fake, tap):
    catalog = tap.discover(fake.config())
    by_name = {entry["tap_stream_id"]: entry for entry in catalog["streams"]}
    assert set(by_name) == set(STREAMS) | {"segments", "cxi_responses", "cxi_tags", "cxi_projects", "cxi_imports"}
    for name in set(by_name) - set(STREAMS):
        stream_md = next(item["metadata"] for item in by_name[name]["metadata"] if item["breadcrumb"] == [])
        assert stream_md["forced-replication-method"] == "FULL_TABLE"
        assert stream_md["selected-by-default"] is (name == "segments")
        jsonschema.Draft4Validator.check_schema(by_name[name]["schema"])
    assert by_name["segments"]["key_properties"] == ["name"]
    for entry in (by_name[name] for name in STREAMS):
        mdata = {tuple(item["breadcrumb"]): item["metadata"] for item in entry["metadata"]}
        stream_md = mdata[()]
        assert stream_md["table-key-properties"] == ["id"]
        assert stream_md["valid-replication-keys"] == ["updated_at"]
        assert stream_md["forced-replication-method"] == "INCREMENTAL"
        assert stream_md["selected-by-default"] is True
        assert "selected" not in stream_md
        for name in entry["schema"]["properties"]:
            expected = "automatic" if name in ("id", "updated_at") else "available"
            assert mdata[("properties", name)]["inclusion"] == expected
        jsonschema.Draft4Validator.check_schema(entry["schema"])
    responses = by_name["responses"]["schema"]["properties"]
    assert responses["end_user"]["properties"]["properties"]["type"] == ["null", "object"]
    assert responses["tags"]["items"] == {"type": "string"}
    assert by_name["end_users"]["schema"]["properties"]["last_surveyed"]["type"] == ["null", "string"]
    assert fake.tokens_issued, "discovery checks the credentials"


def test_discovery_fails_on_bad_credentials(fake, tap):
    result = tap.run(fake.config(client_secret="wrong"), "--discover")
    assert result.returncode != 0 and result.stdout == ""
    assert "refused the credentials" in result.stderr and "Traceback" not in result.stderr
    assert "wrong" not in result.stderr


def test_full_sync_emits_exactly_the_source_records_with_utc_instants(fake, tap):
    seed(fake)
    result = tap.run(fake.config())
    assert result.returncode == 0, result.stderr
    schemas = result.schemas()
    for stream in STREAMS:
        source = {row["id"]: row for row in fake.records(stream)}
        emitted = result.record_messages(stream)
        assert sorted(m["record"]["id"] for m in emitted) == sorted(source)
        assert schemas[stream]["key_properties"] == ["id"]
        assert schemas[stream]["bookmark_properties"] == ["updated_at"]
        for message in emitted:
            record = message["record"]
            jsonschema.validate(record, schemas[stream]["schema"], format_checker=checker())
            assert message["time_extracted"].endswith("Z")
            row = source[record["id"]]
            for name in ("created_at", "updated_at"):
                assert record[name].endswith("Z")
                assert emitted_second(record[name]) == utc_second(row[name])
    # Nested data stays nested.
    response = next(r for r in result.records("responses") if r["end_user"]["properties"])
    assert isinstance(response["end_user"]["properties"], dict)
    state = result.final_state
    assert state["currently_syncing"] is None
    assert set(state["bookmarks"]) == set(STREAMS) | {"segments"}


def test_requests_are_close_to_the_ideal_and_always_sort_explicitly(fake, tap):
    seed(fake, (600, 1000, 300))
    result = tap.run(fake.config())
    assert result.returncode == 0, result.stderr
    for stream, count in zip(STREAMS, (600, 1000, 300)):
        requests = fake.list_requests(stream)
        assert len(requests) <= -(-count // 50) * 1.05 + 2, (stream, len(requests))
        probes = [r for r in requests if r["params"]["per_page"] == "1"]
        assert len(probes) == (0 if stream == "end_users" else 1)
        for probe in probes:  # the one-row check of whether updated[...] is honoured
            assert probe["params"]["sort_key"] == "updated_at" and probe["params"]["sort_order"] == "desc"
        for request in requests:
            if request in probes:
                continue
            params = request["params"]
            assert params["per_page"] == "50"
            assert params["sort_order"] == "asc"
            assert params["sort_key"] == ("updated_at" if stream == "end_users" else "created_at")


def test_second_run_from_final_state_emits_nothing_new_and_costs_little(fake, tap):
    seed(fake)
    first = tap.run(fake.config())
    fake.requests.clear()
    second = tap.run(fake.config(), state=first.final_state)
    assert second.returncode == 0, second.stderr
    assert second.records() == []
    for stream in STREAMS:
        assert len(fake.list_requests(stream)) <= 2


def test_edits_and_new_rows_are_picked_up_by_the_next_run(fake, tap):
    seed(fake)
    first = tap.run(fake.config())
    recent_response = max(fake.records("responses"), key=lambda r: r["created_at"])["id"]
    user = fake.records("end_users")[0]["id"]
    fake.update("responses", recent_response, score=0, text="changed my mind")
    fake.update("end_users", user, email="new@example.com")
    new_response = fake.create("responses")
    new_decline = fake.create("declines")
    second = tap.run(fake.config(), state=first.final_state)
    assert second.returncode == 0, second.stderr
    responses = {r["id"]: r for r in second.records("responses")}
    assert responses[recent_response]["score"] == 0
    assert new_response in responses
    assert {r["id"]: r for r in second.records("end_users")}[user]["email"] == "new@example.com"
    assert new_decline in second.ids("declines")


def test_stream_and_field_selection_is_honoured(fake, tap):
    seed(fake)
    catalog = select(tap.discover(fake.config()), {"responses": ["score", "created_at"]})
    result = tap.run(fake.config(), catalog=catalog)
    assert result.returncode == 0, result.stderr
    assert {m["stream"] for m in result.messages if m["type"] in ("RECORD", "SCHEMA")} == {"responses"}
    assert set(result.schemas()["responses"]["schema"]["properties"]) == {"id", "updated_at", "score", "created_at"}
    for record in result.records("responses"):
        assert set(record) == {"id", "updated_at", "score", "created_at"}


def test_legacy_properties_flag_works(fake, tap):
    seed(fake)
    catalog = select(tap.discover(fake.config()), {"declines": None})
    result = tap.run(fake.config(), "--properties", str(tap.write("props.json", catalog)))
    assert result.returncode == 0, result.stderr
    assert sorted(result.ids("declines")) == sorted(r["id"] for r in fake.records("declines"))
    assert result.records("responses") == []


def test_start_date_limits_what_is_replicated(fake, tap):
    seed(fake)
    cut = NOW - timedelta(days=365)
    result = tap.run(fake.config(start_date=cut.strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert result.returncode == 0, result.stderr
    for stream, field in (("responses", "created_at"), ("end_users", "updated_at")):
        cut_second = cut.replace(microsecond=0)
        expected = {r["id"] for r in fake.records(stream) if r[field].replace(microsecond=0) >= cut_second}
        assert set(result.ids(stream)) == expected


def test_more_than_1500_records_in_one_narrow_window(fake, tap):
    window_start = NOW - timedelta(days=10)
    fake.generate("responses", 2000, window_start, window_start + timedelta(minutes=20))
    fake.generate("responses", 50, YEARS_AGO, NOW - timedelta(days=20))
    catalog = select(tap.discover(fake.config()), {"responses": None})
    result = tap.run(fake.config(), catalog=catalog)
    assert result.returncode == 0, result.stderr
    assert sorted(set(result.ids("responses"))) == sorted(r["id"] for r in fake.records("responses"))
    assert len(fake.list_requests("responses")) <= -(-2050 // 50) * 1.1 + 2


@pytest.mark.parametrize("stream, field", [("responses", "created_at"), ("end_users", "updated_at")])
def test_200_records_in_one_second(fake, tap, stream, field):
    second = int((NOW - timedelta(days=3)).timestamp())
    fake.generate(stream, 100, YEARS_AGO, NOW - timedelta(days=4))
    fake.add_burst(stream, second, 200, field=field)
    catalog = select(tap.discover(fake.config()), {stream: None})
    result = tap.run(fake.config(), catalog=catalog)
    assert result.returncode == 0, result.stderr
    assert sorted(set(result.ids(stream))) == sorted(r["id"] for r in fake.records(stream))


def test_1600_records_in_one_second_are_reached_with_a_warning(fake, tap):
    second = int((NOW - timedelta(days=3)).timestamp())
    fake.generate("end_users", 100, YEARS_AGO, NOW - timedelta(days=1))
    fake.add_burst("end_users", second, 1600, field="updated_at")
    catalog = select(tap.discover(fake.config()), {"end_users": None})
    result = tap.run(fake.config(), catalog=catalog)
    assert result.returncode == 0, result.stderr
    assert sorted(set(result.ids("end_users"))) == sorted(r["id"] for r in fake.records("end_users"))
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert any("1600 records share one second" in line for line in warnings), result.stderr[-2000:]


def test_more_than_3000_in_one_second_warns_and_terminates(fake, tap):
    second = int((NOW - timedelta(days=3)).timestamp())
    fake.add_burst("declines", second, 3100)
    fake.generate("declines", 30, NOW - timedelta(days=2), NOW - timedelta(days=1))
    catalog = select(tap.discover(fake.config()), {"declines": None})
    result = tap.run(fake.config(), catalog=catalog)
    assert result.returncode == 0, result.stderr
    ids = result.ids("declines")
    assert len(ids) == len(set(ids)) == 3000 + 30
    assert any("at least 3000 records share one second" in line for line in result.stderr.splitlines())


def test_records_changed_during_the_sync_are_not_lost(fake, tap):
    seed(fake, (400, 400, 100))
    before = {stream: {r["id"] for r in fake.records(stream)} for stream in STREAMS}
    users = sorted(before["end_users"])

    def churn(server):
        # Users already read move to the end; rows appear; a response is edited.
        for user_id in users[:: 37]:
            server.update("end_users", user_id)
        server.create("end_users")
        server.create("responses")

    for n in (2, 4, 6, 9, 12):
        fake.on_request(n, churn)
    first = tap.run(fake.config())
    assert first.returncode == 0, first.stderr
    second = tap.run(fake.config(), state=first.final_state)
    for stream in STREAMS:
        emitted = set(first.ids(stream)) | set(second.ids(stream))
        assert before[stream] <= emitted, stream
        assert {r["id"] for r in fake.records(stream)} <= emitted, stream


def test_interrupted_run_resumes_at_the_stream_it_stopped_in(fake, tap):
    seed(fake)
    first = tap.run(fake.config())
    # A state as it stood mid-way through responses.
    mid = next(s for s in first.states() if s.get("currently_syncing") == "responses"
               and "scan_position" in s["bookmarks"].get("responses", {}))
    resumed = tap.run(fake.config(), state=mid)
    assert resumed.returncode == 0, resumed.stderr
    order = [m["stream"] for m in resumed.messages if m["type"] == "SCHEMA"]
    assert order[0] == "responses"
    emitted = set(resumed.ids("responses")) | {
        r["id"] for m in first.messages[: first.messages.index({"type": "STATE", "value": mid}) + 1]
        if m["type"] == "RECORD" and m["stream"] == "responses" for r in [m["record"]]}
    assert emitted == {r["id"] for r in fake.records("responses")}


def test_logs_go_to_stderr_and_stdout_holds_only_singer_messages(fake, tap):
    seed(fake)
    result = tap.run(fake.config())
    assert {m["type"] for m in result.messages} <= {"SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION"}
    assert "done:" in result.stderr
    logging.getLogger(__name__).debug(result.stderr)


def test_password_grant_works_instead_of_client_credentials(fake, tap):
    seed(fake, (10, 10, 10))
    config = fake.config(username=fake.username, password=fake.password, account_token="NPS-12345678")
    del config["client_id"], config["client_secret"]
    result = tap.run(config)
    assert result.returncode == 0, result.stderr
    assert len(result.records()) == 30
    token_requests = [r for r in fake.requests if r["path"] == "/oauth/token"]
    assert token_requests and token_requests[0]["params"] == {"account_token": "NPS-12345678"}


def test_bookmarks_never_pass_the_start_of_the_sync(fake, tap):
    seed(fake, (50, 50, 50))
    fake.create("end_users", at=NOW + timedelta(days=2))  # a clock-skewed row "from the future"
    started = datetime.now(timezone.utc).replace(microsecond=0)
    result = tap.run(fake.config())
    finished = datetime.now(timezone.utc)
    for value in result.states():
        for bookmark in value.get("bookmarks", {}).values():
            for key in ("updated_at", "scan_signpost"):
                if key in bookmark:
                    moment = datetime.strptime(bookmark[key], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                    assert moment <= finished
    final = result.final_state["bookmarks"]["end_users"]["updated_at"]
    assert started <= datetime.strptime(final, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) <= finished


def test_token_expiring_mid_sync_is_renewed(fake, tap):
    seed(fake, (150, 150, 150))
    fake.token_ttl = 1
    for n in (3, 7):
        fake.on_request(n, lambda server: time.sleep(1.2))  # outlive the token mid-sync
    result = tap.run(fake.config())
    assert result.returncode == 0, result.stderr
    assert len(result.records()) == 450
    assert len([r for r in fake.requests if r["path"] == "/oauth/token"]) >= 2



def test_updated_filter_is_detected_and_used_when_the_api_honours_it(tap):
    from fake_wootric import FakeWootric

    fake = FakeWootric(seed=12, honour_updated_filter={"responses", "declines"}).start()
    try:
        seed(fake, (100, 400, 100))
        first = tap.run(fake.config())
        assert first.returncode == 0, first.stderr
        assert "the API honours updated[...] and its sort on /responses" in first.stderr
        # Declines are never edited, so their order cannot prove the sort: the safe lookback path.
        assert "whether it sorts on updated_at could not be confirmed on /declines" in first.stderr
        for stream in STREAMS:
            assert sorted(first.ids(stream)) == sorted(r["id"] for r in fake.records(stream))
        pages = [r for r in fake.list_requests("responses") if r["params"]["per_page"] == "50"
                 and "updated[gte]" in r["params"]]
        assert pages and {r["params"]["sort_key"] for r in pages} == {"updated_at"}

        # Nothing new: the two probes and no page at all.
        fake.clear_log()
        idle = tap.run(fake.config(), state=first.final_state)
        assert idle.returncode == 0 and idle.records("responses") == []
        assert len(fake.list_requests("responses")) == 2

        # An edit to a response created long before the lookback window is caught.
        old = min(fake.records("responses"), key=lambda r: r["created_at"])["id"]
        fake.update("responses", old, score=0)
        fake.clear_log()
        second = tap.run(fake.config(), state=idle.final_state)
        assert second.returncode == 0, second.stderr
        assert second.ids("responses") == [old] and second.records("responses")[0]["score"] == 0
        assert len(fake.list_requests("responses")) == 3
    finally:
        fake.stop()


def test_filter_honoured_but_sort_ignored_is_caught_before_paging(tap):
    """An API that filters on updated[...] but sorts on created_at would make keyset paging skip rows
    whenever an edited row ends a page; the probe must see it and keep the lookback scan."""
    from fake_wootric import FakeWootric

    fake = FakeWootric(seed=14, honour_updated_filter={"responses"}).start()
    fake.ignore_updated_sort = {"responses"}
    try:
        start = NOW - timedelta(days=10)
        ids = [fake.create("responses", at=start + timedelta(minutes=i)) for i in range(100)]
        fake.update("responses", ids[49], at=start + timedelta(days=1))
        catalog = select(tap.discover(fake.config()), {"responses": None})
        first = tap.run(fake.config(), catalog=catalog)
        assert first.returncode == 0, first.stderr
        assert "does not sort on updated_at" in first.stderr or "could not be confirmed" in first.stderr
        assert sorted(first.ids("responses")) == sorted(ids)
    finally:
        fake.stop()


def test_ignored_updated_filter_falls_back_to_the_lookback_scan(fake, tap):
    seed(fake, (20, 200, 50))
    result = tap.run(fake.config())
    assert result.returncode == 0, result.stderr
    assert "the API ignores updated[...] on /responses; paging on created_at with a 30-day lookback" in result.stderr
    assert sorted(result.ids("responses")) == sorted(r["id"] for r in fake.records("responses"))
    assert len(result.ids("responses")) == 200  # the probe emitted nothing of its own


def test_updated_paging_that_turns_out_unreliable_falls_back_without_loss(tap):
    from fake_wootric import FakeWootric

    fake = FakeWootric(seed=13, honour_updated_filter={"responses"}).start()
    fake.ignore_updated_sort = {"responses"}
    try:
        seed(fake, (10, 300, 10))
        for record in fake.records("responses")[::3]:  # updated out of creation order, never in the future
            fake.update("responses", record["id"], at=min(record["created_at"] + timedelta(days=400), NOW))
        catalog = select(tap.discover(fake.config()), {"responses": None})
        run = tap.run(fake.config(), catalog=catalog)
        assert run.returncode == 0, run.stderr
        assert "does not sort on updated_at" in run.stderr
        assert set(run.ids("responses")) == {r["id"] for r in fake.records("responses")}
        assert "scan_position" not in run.final_state["bookmarks"]["responses"]
    finally:
        fake.stop()


def test_a_future_start_date_warns_once_and_never_lets_older_records_through(fake, tap):
    seed(fake, (40, 60, 20))
    future = "2030-01-01T00:00:00Z"
    first = tap.run(fake.config(start_date=future))
    assert first.returncode == 0, first.stderr
    assert len([line for line in first.stderr.splitlines() if "lies in the future" in line]) == 1
    assert "to 20" not in " ".join(line for line in first.stderr.splitlines() if "scan of" in line)
    for stream in STREAMS:
        assert first.records(stream) == []
        assert first.final_state["bookmarks"][stream]["updated_at"] == future
    # The next run starts from the bookmark, which is start_date, not the present: still nothing older.
    fake.create("end_users")
    second = tap.run(fake.config(start_date=future), state=first.final_state)
    assert second.returncode == 0, second.stderr
    assert not any(second.records(stream) for stream in STREAMS)


def test_a_bookmark_below_a_raised_start_date_brings_back_nothing_older(fake, tap):
    seed(fake, (80, 120, 40))
    start_date = NOW - timedelta(days=365)
    old_bookmark = format_rfc3339(start_date - timedelta(days=365))
    state = {"bookmarks": {stream: {"updated_at": old_bookmark} for stream in STREAMS}}
    run = tap.run(fake.config(start_date=format_rfc3339(start_date)), state=state)
    assert run.returncode == 0, run.stderr
    floor = format_rfc3339(start_date)
    assert run.records("end_users") and all(r["updated_at"] >= floor for r in run.records("end_users"))
    for stream in ("responses", "declines"):
        assert run.records(stream) and all(r["created_at"] >= floor for r in run.records(stream))
    for stream in STREAMS:
        assert run.final_state["bookmarks"][stream]["updated_at"] >= floor


def format_rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
