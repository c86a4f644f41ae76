"""The fake Wootric API behaves as the shared API notes (../shared/wootric-api-notes.md) describe; the tap's tests
rely on it."""

from __future__ import annotations

import functools
import json
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from fake import FakeWootric
from fake.routes_v1 import list_rows

UTC = timezone.utc
JAN_2020 = datetime(2020, 1, 1, tzinfo=UTC)
JAN_2021 = datetime(2021, 1, 1, tzinfo=UTC)
RENDERED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}$")


@pytest.fixture
def wootric():
    with FakeWootric(seed=5) as server:
        yield server


def client_credentials(server: FakeWootric, **fields: str) -> requests.Response:
    data = {"grant_type": "client_credentials", "client_id": server.client_id,
            "client_secret": server.client_secret, **fields}
    return requests.post(server.oauth_url, data=data, timeout=5)


@pytest.fixture
def api(wootric):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {client_credentials(wootric).json()['access_token']}"
    with session:
        yield session


def parse(rendered: str) -> datetime:
    return datetime.strptime(rendered, "%Y-%m-%d %H:%M:%S %z")


def get(session: requests.Session, server: FakeWootric, path: str, **params: object) -> requests.Response:
    return session.get(f"{server.api_url}/{path}", params=params, timeout=5)


def test_client_credentials_token_has_no_refresh_token(wootric):
    body = client_credentials(wootric).json()
    assert re.fullmatch(r"[0-9a-f]{64}", body["access_token"])
    assert body["token_type"] == "bearer" and body["expires_in"] == 7200 and body["scope"] == "public"
    assert abs(body["created_at"] - time.time()) < 5
    assert "refresh_token" not in body
    assert wootric.tokens_issued == [body["access_token"]] and wootric.grants == ["client_credentials"]


def test_token_endpoint_accepts_multipart_and_refuses_bad_requests(wootric):
    fields = {"grant_type": "client_credentials", "client_id": wootric.client_id,
              "client_secret": wootric.client_secret}
    multipart = requests.post(wootric.oauth_url, files={k: (None, v) for k, v in fields.items()}, timeout=5)
    assert multipart.status_code == 200 and len(multipart.json()["access_token"]) == 64

    wrong = client_credentials(wootric, client_secret="nope")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    in_query = requests.post(wootric.oauth_url, params=fields, timeout=5)
    assert in_query.status_code == 400
    unknown = requests.post(wootric.oauth_url, data={"grant_type": "implicit"}, timeout=5)
    assert unknown.status_code == 400 and unknown.json()["error"] == "unsupported_grant_type"


def test_password_grant_rotates_refresh_tokens(wootric):
    credentials = {"grant_type": "password", "username": wootric.username, "password": wootric.password}
    first = requests.post(wootric.oauth_url, params={"account_token": "NPS-1234abcd"}, data=credentials, timeout=5)
    assert first.status_code == 200 and re.fullmatch(r"[0-9a-f]{64}", first.json()["refresh_token"])
    refresh = {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]}
    second = requests.post(wootric.oauth_url, data=refresh, timeout=5)
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first.json()["refresh_token"]
    assert requests.post(wootric.oauth_url, data=refresh, timeout=5).json()["error"] == "invalid_grant"
    bad = requests.post(wootric.oauth_url, data={**credentials, "password": "wrong"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"


def test_api_refuses_missing_unknown_and_expired_tokens(wootric, api):
    unauthorised = {"type": "error_list",
                    "errors": [{"status": "unauthorized", "message": "Your access token is wrong", "field": None}]}
    assert get(api, wootric, "responses").status_code == 200
    missing = requests.get(f"{wootric.api_url}/responses", timeout=5)
    assert missing.status_code == 401 and missing.json() == unauthorised
    unknown = requests.get(f"{wootric.api_url}/responses", headers={"Authorization": "Bearer " + "0" * 64}, timeout=5)
    assert unknown.status_code == 401
    wootric.expire_tokens()
    assert get(api, wootric, "responses").status_code == 401


def test_short_token_ttl_expires():
    with FakeWootric(token_ttl=1) as server:
        token = client_credentials(server).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{server.api_url}/declines", headers=headers, timeout=5).status_code == 200
        time.sleep(1.1)
        assert requests.get(f"{server.api_url}/declines", headers=headers, timeout=5).status_code == 401


@pytest.mark.parametrize("params, field", [({"page": 31}, "page"), ({"page": 0}, "page"), ({"page": "x"}, "page"),
                                           ({"per_page": 51}, "per_page"), ({"sort_order": "up"}, "sort_order"),
                                           ({"sort_key": "email"}, "sort_key")])
def test_out_of_range_parameters_answer_400(wootric, api, params, field):
    response = get(api, wootric, "responses", **params)
    assert response.status_code == 400
    assert response.json() == {"type": "error_list", "errors": [
        {"status": "bad_request", "message": f"{field} does not have a valid value", "field": field}]}


def test_paging_limits_and_past_the_end(wootric, api):
    wootric.generate("declines", 60, JAN_2020, JAN_2021)
    assert len(get(api, wootric, "declines").json()) == 25
    assert len(get(api, wootric, "declines", per_page=50, page=2).json()) == 10
    assert get(api, wootric, "declines", per_page=50, page=30).json() == []
    assert get(api, wootric, "declines", **{"created[gt]": "soon"}).status_code == 400


def test_default_sort_orders_differ_by_endpoint(wootric, api):
    wootric.generate("end_users", 120, JAN_2020, JAN_2021)
    wootric.generate("responses", 30, JAN_2020, JAN_2021)
    wootric.generate("declines", 30, JAN_2020, JAN_2021)
    for stream in ("responses", "declines"):
        newest_first = sorted(wootric.records(stream), key=lambda r: r["created_at"], reverse=True)
        assert [r["id"] for r in get(api, wootric, stream).json()] == [r["id"] for r in newest_first[:25]]
    users = wootric.records("end_users")
    by_email = sorted((u for u in users if u["email"]), key=lambda u: (u["email"], u["id"]))
    expected = [u["id"] for u in by_email] + [u["id"] for u in users if u["email"] is None]
    pages = [get(api, wootric, "end_users", per_page=50, page=page).json() for page in (1, 2, 3)]
    assert [u["id"] for page in pages for u in page] == expected
    assert any(u["email"] is None for u in users) and any(u["email"] == "Unknown" for u in users)


def test_ties_break_by_id_unless_shuffled(wootric, api):
    ids = wootric.add_burst("responses", JAN_2020, 30, same_instant=True)
    params = {"sort_key": "created_at", "per_page": 50}
    assert [r["id"] for r in get(api, wootric, "responses", sort_order="asc", **params).json()] == ids
    assert [r["id"] for r in get(api, wootric, "responses", sort_order="desc", **params).json()] == ids[::-1]
    wootric.shuffle_ties = True
    orders = {tuple(r["id"] for r in get(api, wootric, "responses", **params).json()) for _ in range(3)}
    assert len(orders) > 1 and all(sorted(order) == ids for order in orders)


def test_filters_compare_the_stored_sub_second_time(wootric, api):
    second = int(datetime(2020, 3, 3, 12, 0, 0, tzinfo=UTC).timestamp())
    before = wootric.create("responses", at=second - 0.5)
    burst = set(wootric.add_burst("responses", second, 5))
    after = wootric.create("responses", at=second + 1)

    def ids(**filters: int) -> set[int]:
        params = {f"created[{op}]": value for op, value in filters.items()}
        return {r["id"] for r in get(api, wootric, "responses", per_page=50, **params).json()}

    shown = {r["created_at"] for r in get(api, wootric, "responses", per_page=50).json() if r["id"] in burst}
    assert shown == {"2020-03-03 04:00:00 -0800"}  # whole seconds, Pacific winter offset
    assert ids(gt=second) == burst | {after}  # gt T still returns rows shown as T
    assert ids(gte=second) == burst | {after}
    assert ids(lt=second) == {before}  # nothing shown as T
    assert ids(lte=second) == {before}
    assert ids(gt=second - 1, lt=second + 1) == burst | {before}
    assert ids(eq=second) == set()


def filtered_ids(session: requests.Session, server: FakeWootric, stream: str = "responses", prefix: str = "created",
                 **filters: int) -> set[int]:
    params = {f"{prefix}[{op}]": value for op, value in filters.items()}
    return {r["id"] for r in get(session, server, stream, per_page=50, sort_key="created_at", **params).json()}


def test_whole_second_storage_compares_whole_seconds_and_renders_the_same():
    second = int(datetime(2020, 3, 3, 12, 0, 0, tzinfo=UTC).timestamp())
    rendered = {}
    for whole_seconds in (False, True):
        with FakeWootric(seed=5, whole_seconds=whole_seconds) as server:
            before = server.create("responses", at=second - 0.5)
            burst = set(server.add_burst("responses", second, 5))
            after = server.create("responses", at=second + 1)
            user = server.create("end_users", at=second + 0.25)
            server.update("end_users", user, at=second + 0.75)
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {client_credentials(server).json()['access_token']}"
            rendered[whole_seconds] = (get(session, server, "responses", per_page=50).json(),
                                       get(session, server, "end_users", per_page=50).json())
            if not whole_seconds:
                continue
            assert {r["created_at"].microsecond for r in server.records("responses")} == {0}
            for indexed in (True, False):  # the sorted-index fast path and the reference path agree
                server.indexed = indexed
                ids = functools.partial(filtered_ids, session, server)
                assert ids(gt=second) == {after}  # gt T excludes every row shown as T
                assert ids(gte=second) == burst | {after}
                assert ids(lt=second) == {before}  # stored at T - 1
                assert ids(lte=second) == burst | {before}
                assert ids(eq=second) == burst
                assert ids("end_users", "updated", gt=second) == set()
                assert ids("end_users", "updated", eq=second) == {user}
            session.close()
    assert rendered[True] == rendered[False]


def test_tied_rows_come_in_a_fresh_order_on_every_request():
    second = int(datetime(2020, 3, 3, 12, 0, 0, tzinfo=UTC).timestamp())
    with FakeWootric(seed=5, whole_seconds=True, shuffle_ties=True) as server:
        users = server.generate("end_users", 3, JAN_2020, JAN_2021)
        tied = server.add_burst("responses", second, 40)  # distinct microseconds, one whole second
        server.create("responses", at=second + 1)
        for record_id in tied:
            server.update("responses", record_id, end_user_id=users[0], at=second + 5)
        server.generate_cxi(responses=40, start=second, end=second + 1)  # feedback_date: two values
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {client_credentials(server).json()['access_token']}"
        paths = {"created_at": ("responses", {"sort_key": "created_at", "created[gte]": second,
                                              "created[lt]": second + 1}),
                 "updated_at": ("responses", {"sort_key": "updated_at"}),
                 "end-user scoped": (f"end_users/{users[0]}/responses", {"sort_key": "created_at"})}
        for name, (path, params) in paths.items():
            pages = [[r["id"] for r in get(session, server, path, per_page=50, sort_order=order, **params).json()
                      if r["id"] in tied] for order in ("asc", "asc", "asc", "desc")]
            assert all(sorted(page) == tied for page in pages), name
            assert len({tuple(page) for page in pages}) == 4, f"{name}: the same order twice"
        first_page = [get(session, server, "responses", page=1, per_page=20, sort_key="created_at",
                          sort_order="asc").json() for _ in range(2)]
        assert {r["id"] for r in first_page[0]} != {r["id"] for r in first_page[1]}  # a page holds other rows
        cxi = [requests.get(f"{server.url}/cxi/v1/responses", params={"per_page": 50}, timeout=5,
                            headers=session.headers).json()["items"] for _ in range(2)]
        assert [r["id"] for r in cxi[0]] != [r["id"] for r in cxi[1]]
        for items in cxi:
            dates = [r["feedback_date"] for r in items]
            assert dates == sorted(dates, reverse=True)
        session.close()


def test_updated_filter_only_where_honoured(api, wootric):
    old = wootric.generate("responses", 5, JAN_2020, datetime(2020, 2, 1, tzinfo=UTC))
    wootric.update("responses", old[0], at=datetime(2020, 6, 1, tzinfo=UTC), score=3, text="Changé d'avis")
    cutoff = {"updated[gt]": int(datetime(2020, 5, 1, tzinfo=UTC).timestamp())}
    assert len(get(api, wootric, "responses", **cutoff).json()) == 5  # silently ignored
    wootric.honour_updated_filter.add("responses")
    [changed] = get(api, wootric, "responses", **cutoff).json()
    assert changed["id"] == old[0] and changed["score"] == 3 and changed["text"] == "Changé d'avis"
    users = wootric.generate("end_users", 5, JAN_2020, datetime(2020, 2, 1, tzinfo=UTC))
    wootric.update("end_users", users[2], at=datetime(2020, 6, 1, tzinfo=UTC))
    assert [u["id"] for u in get(api, wootric, "end_users", **cutoff).json()] == [users[2]]


def test_times_render_with_the_dst_offset_of_the_account_zone(wootric, api):
    record_id = wootric.create("end_users", at=datetime(2021, 1, 15, 20, 0, 0, 999_999, tzinfo=UTC))
    wootric.update("end_users", record_id, at=datetime(2021, 7, 15, 20, 0, 0, 500_000, tzinfo=UTC))
    user = get(api, wootric, f"end_users/{record_id}").json()
    assert user["created_at"] == "2021-01-15 12:00:00 -0800"
    assert user["updated_at"] == "2021-07-15 13:00:00 -0700"
    assert wootric.records("end_users")[0]["updated_at"].microsecond == 500_000
    assert get(api, wootric, "end_users/999").status_code == 404
    assert get(api, wootric, "nps_summaries").json()["errors"][0]["status"] == "record_not_found"


def test_generated_records_have_the_documented_shapes(wootric, api):
    wootric.generate("end_users", 40, JAN_2020, JAN_2021)
    wootric.generate("responses", 200, JAN_2020, JAN_2021)
    wootric.generate("declines", 20, JAN_2020, JAN_2021)
    user, response, decline = (get(api, wootric, s, per_page=50).json() for s in ("end_users", "responses", "declines"))
    assert set(user[0]) == {"id", "created_at", "updated_at", "email", "last_surveyed", "external_created_at",
                            "last_seen_at", "properties", "phone_number", "external_id", "last_response", "settings"}
    assert set(response[0]) == {"id", "end_user_id", "survey_id", "score", "text", "completed",
                                "excluded_from_calculations", "ip_address", "origin_url", "created_at",
                                "updated_at", "tags", "notes", "end_user"}
    assert set(decline[0]) == {"id", "end_user_id", "survey_id", "ip_address", "origin_url", "created_at",
                               "updated_at", "end_user"}
    user_ids = {u["id"] for u in wootric.records("end_users")}
    assert all(r["end_user_id"] in user_ids for r in response + decline)
    assert all(RENDERED.match(r["created_at"]) and parse(r["updated_at"]) >= parse(r["created_at"]) for r in response)
    assert all(d["updated_at"] == d["created_at"] for d in decline)
    texts = " ".join(r["text"] or "" for r in response)
    assert "é" in texts and "日本" in texts and '"' in texts


def test_same_seed_same_data():
    def build() -> list[dict]:
        server = FakeWootric(seed=42)
        server.generate("end_users", 30, JAN_2020, JAN_2021)
        server.generate("responses", 30, JAN_2020, JAN_2021)
        server.add_burst("declines", JAN_2021, 10)
        return [server.records(s) for s in ("end_users", "responses", "declines")]

    assert build() == build()


def test_on_request_and_fail_hooks(wootric, api):
    wootric.on_request(2, lambda fake: fake.create("declines", at=JAN_2020))
    wootric.fail(3, 503)
    assert get(api, wootric, "declines").json() == []
    assert len(get(api, wootric, "declines").json()) == 1
    failed = get(api, wootric, "declines")
    assert failed.status_code == 503 and failed.json()["type"] == "error_list"
    assert get(api, wootric, "declines").status_code == 200
    logged = wootric.list_requests("declines")
    assert [r["status"] for r in logged] == [200, 200, 503, 200]
    assert logged[0]["params"] == {} and wootric.list_requests("responses") == []


def test_rate_limit_headers_and_429():
    with FakeWootric() as server:
        server.rate_limit, server.window_seconds = 3, 1
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {client_credentials(server).json()['access_token']}"
        # Start at the beginning of a window so that all four requests fall inside it.
        time.sleep(1 - time.time() % 1)
        replies = [get(session, server, "responses") for _ in range(4)]
        assert [r.status_code for r in replies] == [200, 200, 200, 429]
        assert [r.headers["X-Rate-Limit-Remaining"] for r in replies] == ["2", "1", "0", "0"]
        assert all(r.headers["X-Rate-Limit-Limit"] == "3" for r in replies)
        reset = int(replies[-1].headers["X-Rate-Limit-Reset"])
        assert time.time() < reset <= time.time() + 1
        assert replies[-1].json()["type"] == "error_list"
        assert get(session, server, "declines").status_code == 200  # budgets are per endpoint
        time.sleep(max(0.0, reset - time.time()) + 0.05)
        assert get(session, server, "responses").status_code == 200
        session.close()


def test_command_line_demo_serves_and_stops_quietly():
    script = Path(__file__).with_name("fake_wootric.py")
    process = subprocess.Popen([sys.executable, str(script), "--port", "0", "--end-users", "20", "--responses", "50",
                                "--declines", "5", "--years", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        settings = json.loads(process.stdout.readline())
        token = requests.post(settings["oauth_url"], timeout=5, data={
            "grant_type": "client_credentials", "client_id": settings["client_id"],
            "client_secret": settings["client_secret"]}).json()["access_token"]
        rows = requests.get(f"{settings['api_url']}/responses", params={"per_page": 50}, timeout=5,
                            headers={"Authorization": f"Bearer {token}"}).json()
        assert len(rows) == 50
        assert parse(rows[0]["created_at"]) < datetime.now(UTC) - timedelta(minutes=59)
        # CXI streams go to the fake too, never to the real host.
        assert settings["cxi_api_url"] == settings["api_url"][:-len("/v1")] + "/cxi/v1"
        cxi = requests.get(f"{settings['cxi_api_url']}/projects", timeout=5,
                           headers={"Authorization": f"Bearer {token}"})
        assert cxi.status_code == 200 and cxi.json() == []
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0 and out == "" and err == ""


def test_indexed_queries_answer_exactly_as_the_reference_path():
    import random as stdlib_random

    fake = FakeWootric(seed=4)
    start, end = datetime(2023, 1, 1, tzinfo=timezone.utc), datetime(2023, 3, 1, tzinfo=timezone.utc)
    fake.generate("responses", 400, start, end)
    fake.add_burst("responses", datetime(2023, 2, 1, tzinfo=timezone.utc), 120)
    rng = stdlib_random.Random(9)
    low, high = int(start.timestamp()), int(end.timestamp())
    for _ in range(200):
        query = {"page": str(rng.randint(1, 4)), "per_page": str(rng.choice((10, 50))),
                 "sort_key": "created_at", "sort_order": rng.choice(("asc", "desc"))}
        for op in rng.sample(("gt", "gte", "lt", "lte", "eq"), rng.randint(0, 2)):
            query[f"created[{op}]"] = str(rng.choice((rng.randint(low, high), 1675209600)))
        fake.indexed = True
        indexed = list_rows(fake, "responses", query, 1)
        fake.indexed = False
        assert list_rows(fake, "responses", query, 1) == indexed, query
