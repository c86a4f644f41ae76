"""The installed tap-wootric command against the fake API over real HTTP."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest
from helpers import NOW, STREAMS, YEARS_AGO, checker, lookback_days, read_strategies, record_counts, seed, select


def utc_second(value: datetime) -> str:
    return value.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")


def emitted_second(value: str) -> str:
    return value[:19]


def test_discovery_lists_every_stream_with_metadata(fake, tap):
    catalog = tap.discover(fake.config())
    by_name = {entry["tap_stream_id"]: entry for entry in catalog["streams"]}
    day_streams = {"nps_summary", "email_stats"}  # INCREMENTAL on a date; checked in test_day_streams.py
    assert set(by_name) == set(STREAMS) | {"segments", "cxi_responses", "cxi_tags", "cxi_projects", "cxi_imports",
                                           "email_stats_sources", "survey_templates"} | day_streams
    for name in set(by_name) - set(STREAMS) - day_streams:
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
        # A first sync reads every row by its scan field: no probe, nothing but full pages.
        assert len(requests) <= -(-count // 50) * 1.05 + 2, (stream, len(requests))
        for request in requests:
            params = request["params"]
            assert params["per_page"] == "50"
            assert params["sort_order"] == "asc"
            assert params["sort_key"] == ("updated_at" if stream == "end_users" else "created_at")


def test_second_run_from_final_state_emits_nothing_new_and_costs_little(fake, tap):
    seed(fake)
    first = tap.run(fake.config())
    fake.requests.clear()
    second = tap.run(fake.config(reconcile_runs=0), state=first.final_state)
    assert second.returncode == 0, second.stderr
    assert second.records() == []
    # end_users: one keyset page. responses: the two probes, whose newest row predates the bookmark.
    # declines are never edited, so the probe cannot prove the sort: a created keyset page finds new rows.
    assert {stream: len(fake.list_requests(stream)) for stream in STREAMS} == \
        {"end_users": 1, "responses": 2, "declines": 3}


def test_a_routine_run_reads_one_tenth_of_each_stream_for_the_reconciliation_pass(fake, tap):
    seed(fake, (400, 900, 250))
    first = tap.run(fake.config())
    fake.requests.clear()
    second = tap.run(fake.config(), state=first.final_state)
    assert second.returncode == 0, second.stderr
    for stream, count, idle_requests in zip(STREAMS, (400, 900, 250), (1, 2, 3)):
        assert len(second.records(stream)) <= -(-count // 10), stream
        # The slice costs ceil(rows / 10 / 50) pages, plus one where it stops inside a page.
        assert len(fake.list_requests(stream)) <= idle_requests + -(-count // 500) + 1, stream
        versions = {m["version"] for m in second.record_messages(stream)}
        assert len(versions) == 1 and versions != {None}
    assert not [m for m in second.messages if m["type"] == "ACTIVATE_VERSION" and m["stream"] in STREAMS]


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_1600_records_in_one_second_are_reached_with_a_warning(fake, tap):
    second = int((NOW - timedelta(days=3)).timestamp())
    fake.generate("end_users", 100, YEARS_AGO, NOW - timedelta(days=1))
    fake.add_burst("end_users", second, 1600, field="updated_at")
    catalog = select(tap.discover(fake.config()), {"end_users": None})
    result = tap.run(fake.config(), catalog=catalog)
    assert result.returncode == 0, result.stderr
    assert sorted(set(result.ids("end_users"))) == sorted(r["id"] for r in fake.records("end_users"))
    assert result.log("WARNING", containing="1600 records share one second"), result.stderr[-2000:]


@pytest.mark.slow
def test_more_than_3000_in_one_second_warns_and_terminates(fake, tap):
    second = int((NOW - timedelta(days=3)).timestamp())
    fake.add_burst("declines", second, 3100)
    fake.generate("declines", 30, NOW - timedelta(days=2), NOW - timedelta(days=1))
    catalog = select(tap.discover(fake.config()), {"declines": None})
    result = tap.run(fake.config(), catalog=catalog)
    assert result.returncode == 0, result.stderr
    ids = result.ids("declines")
    assert len(ids) == len(set(ids)) == 3000 + 30
    assert result.log("WARNING", containing="at least 3000 records share one second"), result.stderr[-2000:]


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
    # The METRIC lines are on stderr, and count what stdout holds.
    emitted = Counter(m["stream"] for m in result.messages if m["type"] == "RECORD")
    assert {stream: count for stream, count in record_counts(result.stderr).items() if count} == emitted
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


@pytest.mark.slow
def test_token_expiring_mid_sync_is_renewed(fake, tap):
    seed(fake, (150, 150, 150))
    fake.token_ttl = 1
    for n in (3, 7):
        fake.on_request(n, lambda server: time.sleep(1.2))  # outlive the token mid-sync
    # One request after another, so that the 7th is never the 3rd's retry (which a delay would make outlive
    # its new token too); test_faults.py renews tokens under the default workers.
    result = tap.run(fake.config(workers=1))
    assert result.returncode == 0, result.stderr
    assert len(result.records()) == 450
    assert len([r for r in fake.requests if r["path"] == "/oauth/token"]) >= 2



def test_updated_filter_is_detected_and_used_when_the_api_honours_it(tap, make_fake):
    fake = make_fake(seed=12, honour_updated_filter={"responses", "declines"})
    seed(fake, (100, 400, 100))
    first = tap.run(fake.config())
    assert first.returncode == 0, first.stderr
    for stream in STREAMS:
        assert sorted(first.ids(stream)) == sorted(r["id"] for r in fake.records(stream))

    # Nothing new: the two probes and no page at all.
    fake.clear_log()
    idle = tap.run(fake.config(reconcile_runs=0), state=first.final_state)
    assert idle.returncode == 0 and idle.records("responses") == []
    # Declines are never edited, so their order cannot prove the sort: the filter alone finds edits.
    assert read_strategies(fake.list_requests("declines")) == ["updated-filtered keyset on the scan field"]
    assert len(fake.list_requests("responses")) == 2

    # An edit to a response created long before any lookback window is caught.
    old = min(fake.records("responses"), key=lambda r: r["created_at"])["id"]
    fake.update("responses", old, score=0)
    fake.clear_log()
    second = tap.run(fake.config(reconcile_runs=0), state=idle.final_state)
    assert second.returncode == 0, second.stderr
    assert second.ids("responses") == [old] and second.records("responses")[0]["score"] == 0
    assert len(fake.list_requests("responses")) == 3
    pages = [r for r in fake.list_requests("responses") if "updated[gte]" in r["params"]
             and r["params"]["per_page"] == "50"]
    assert pages and {r["params"]["sort_key"] for r in pages} == {"updated_at"}
    assert read_strategies(fake.list_requests("responses")) == ["keyset on updated_at"]


def test_filter_honoured_but_sort_ignored_finds_edits_through_the_filter(tap, make_fake):
    """An API that filters on updated[...] but sorts on created_at would make keyset paging on updated_at
    skip rows; the probe sees it, and the filter finds the edits in created order instead."""
    fake = make_fake(seed=14, honour_updated_filter={"responses"})
    fake.ignore_updated_sort = {"responses"}
    seed(fake, (10, 600, 10))
    catalog = select(tap.discover(fake.config()), {"responses": None})
    first = tap.run(fake.config(), catalog=catalog)
    assert first.returncode == 0, first.stderr
    edited = [r["id"] for r in fake.records("responses")[:400:5]]  # 80 of the oldest
    for record_id in edited:
        fake.update("responses", record_id, score=1)
    fake.clear_log()
    second = tap.run(fake.config(reconcile_runs=0), catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr
    assert read_strategies(fake.list_requests("responses")) == ["updated-filtered keyset on the scan field"]
    assert set(edited) <= set(second.ids("responses"))
    assert len(fake.list_requests("responses")) <= 2 + 2 + 1


def test_neither_honoured_uses_the_lookback_rescan(tap, make_fake):
    fake = make_fake(seed=15)
    fake.ignore_updated_sort = {"responses"}
    seed(fake, (20, 200, 50))
    first = tap.run(fake.config())
    assert first.returncode == 0, first.stderr
    recent = max(fake.records("responses"), key=lambda r: r["created_at"])["id"]
    fake.update("responses", recent, score=2)
    before = len(fake.list_requests("responses"))
    second = tap.run(fake.config(reconcile_runs=0), state=first.final_state)
    assert second.returncode == 0, second.stderr
    reads = fake.list_requests("responses")[before:]
    assert read_strategies(reads) == ["lookback rescan"] and lookback_days(reads) == 30
    assert "edits to rows created before the 30-day lookback are not caught, because reconcile_runs is 0" \
        in second.stderr
    assert recent in second.ids("responses")


def test_updated_paging_that_turns_out_unreliable_falls_back_without_loss(tap, make_fake):
    fake = make_fake(seed=13, honour_updated_filter={"responses"})
    seed(fake, (10, 300, 10))
    fresh = set(fake.generate("responses", 120, NOW - timedelta(days=20), NOW - timedelta(days=2)))
    catalog = select(tap.discover(fake.config()), {"responses": None})
    first = tap.run(fake.config(), catalog=catalog)
    # Rows inside the lookback window, so that the fallback reaches their edits.
    recent = sorted((r for r in fake.records("responses") if r["id"] in fresh), key=lambda r: r["created_at"])
    for minutes, record in enumerate(recent, start=1):  # updated in the reverse of creation order
        fake.update("responses", record["id"], score=3, at=NOW - timedelta(minutes=minutes))
    state = first.final_state
    state["bookmarks"]["responses"]["updated_at"] = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The probes prove the sort; then the API stops sorting on updated_at before the first page.
    fake.on_request(fake.api_request_count + 3, lambda server: server.ignore_updated_sort.add("responses"))
    before = len(fake.list_requests("responses"))
    run = tap.run(fake.config(reconcile_runs=0), catalog=catalog, state=state)
    assert run.returncode == 0, run.stderr
    assert read_strategies(fake.list_requests("responses")[before:]) == ["keyset on updated_at", "lookback rescan"]
    assert {r["id"] for r in recent} <= set(run.ids("responses"))
    assert "scan_position" not in run.final_state["bookmarks"]["responses"]


def test_a_future_start_date_warns_once_and_never_lets_older_records_through(fake, tap):
    seed(fake, (40, 60, 20))
    future = "2030-01-01T00:00:00Z"
    first = tap.run(fake.config(start_date=future))
    assert first.returncode == 0, first.stderr
    about_it = [line for line in first.stderr.splitlines() if "lies in the future" in line]
    assert len(about_it) == 1 and about_it[0].startswith("WARNING "), about_it
    assert fake.list_requests() == []  # nothing can be newer than start_date yet: no scan at all
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
