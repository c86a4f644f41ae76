"""The fake's options for the API as deployed (notes §7, pitfalls 14-16): a clock of its own, late visibility
of writes, refusals per route, and a 429 with a date-form Retry-After. Each is off by default."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
import requests
from fake import FakeWootric

UTC = timezone.utc
JAN_2020 = datetime(2020, 1, 1, tzinfo=UTC)
LIMIT_HEADERS = ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset")


def token(server: FakeWootric) -> str:
    return requests.post(server.oauth_url, timeout=5, data={
        "grant_type": "client_credentials", "client_id": server.client_id,
        "client_secret": server.client_secret}).json()["access_token"]


def session_for(server: FakeWootric) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token(server)}"
    return session


def get(session: requests.Session, url: str, **params: object) -> requests.Response:
    return session.get(url, params=params, timeout=5)


def date_of(reply: requests.Response) -> float:
    """The Date header as epoch seconds; it must be an RFC 9110 IMF-fixdate."""
    value = reply.headers["Date"]
    assert value.endswith(" GMT") and len(value) == 29, value
    return parsedate_to_datetime(value).timestamp()


def every_kind_of_answer(server: FakeWootric) -> list[requests.Response]:
    """A token, a 200 list, a 401, a 404, a 400, a v2 and a CXI answer, and a token endpoint error."""
    session = session_for(server)
    return [
        requests.post(server.oauth_url, timeout=5, data={"grant_type": "client_credentials",
                                                         "client_id": server.client_id,
                                                         "client_secret": server.client_secret}),
        requests.post(server.oauth_url, timeout=5, data={"grant_type": "client_credentials"}),
        get(session, f"{server.api_url}/responses"),
        requests.get(f"{server.api_url}/responses", timeout=5, headers={"Authorization": "Bearer wrong"}),
        get(session, f"{server.api_url}/no_such_route"),
        get(session, f"{server.api_url}/responses", page=31),
        get(session, f"{server.url}/v2/email_stats/sources"),
        get(session, f"{server.cxi_url}/projects"),
    ]


# -- clock offset ------------------------------------------------------------------------------------------


def test_every_answer_carries_a_date_on_the_machine_clock_by_default(make_fake):
    server = make_fake()
    replies = every_kind_of_answer(server)
    assert [r.status_code for r in replies] == [200, 401, 200, 401, 404, 400, 200, 200]
    for reply in replies:
        assert abs(date_of(reply) - time.time()) < 2, reply.url


@pytest.mark.parametrize("offset", [-600, 3600])
def test_clock_offset_moves_the_date_header_of_every_answer(make_fake, offset):
    server = make_fake(clock_offset=offset)
    for reply in every_kind_of_answer(server):
        assert abs(date_of(reply) - (time.time() + offset)) < 2, reply.url


def test_clock_offset_can_be_changed_on_a_running_fake(make_fake):
    server = make_fake()
    session = session_for(server)
    server.clock_offset = -7200
    assert abs(date_of(get(session, f"{server.api_url}/declines")) - (time.time() - 7200)) < 2


def test_clock_offset_stamps_writes_and_filters_compare_those_stamps(make_fake):
    server = make_fake(clock_offset=-600, honour_updated_filter={"responses"})
    server.generate("responses", 5, JAN_2020, JAN_2020 + timedelta(days=1))
    edited = server.ids("responses").pop()
    server.update("responses", edited, score=0)
    created = server.create("responses")
    api_now = time.time() - 600
    for record_id in (edited, created):
        stamp = {r["id"]: r for r in server.records("responses")}[record_id]["updated_at"].timestamp()
        assert api_now - 2 < stamp <= api_now + 0.1, record_id
    session = session_for(server)

    def updated_since(epoch: float) -> set[int]:
        return {r["id"] for r in get(session, f"{server.api_url}/responses", per_page=50,
                                     **{"updated[gt]": int(epoch)}).json()}

    # On the API's clock the writes are a moment old; on this machine's they lie ten minutes ahead.
    assert updated_since(api_now - 30) == {edited, created}
    assert updated_since(time.time() - 30) == set()
    body = requests.post(server.oauth_url, timeout=5, data={"grant_type": "client_credentials",
                                                            "client_id": server.client_id,
                                                            "client_secret": server.client_secret}).json()
    assert abs(body["created_at"] - api_now) < 3


def test_clock_offset_moves_the_rate_limit_reset(make_fake):
    server = make_fake(clock_offset=-600)
    server.rate_limit, server.window_seconds = 100, 60
    reply = get(session_for(server), f"{server.api_url}/responses")
    reset = int(reply.headers["X-Rate-Limit-Reset"])
    api_now = time.time() - 600
    assert api_now < reset <= api_now + 61 and reset % 60 == 0


def test_send_date_false_leaves_the_date_header_out(make_fake):
    server = make_fake(send_date=False)
    replies = every_kind_of_answer(server)
    assert [r.status_code for r in replies] == [200, 401, 200, 401, 404, 400, 200, 200]
    assert all("Date" not in reply.headers for reply in replies)
    server.send_date = True
    assert "Date" in get(session_for(server), f"{server.api_url}/responses").headers


# -- late visibility ---------------------------------------------------------------------------------------


def test_late_visibility_shows_the_previous_version_then_the_edit(make_fake):
    server = make_fake(late_visibility=1.0)
    server.generate("responses", 20, JAN_2020, JAN_2020 + timedelta(days=1))
    session = session_for(server)
    url = f"{server.api_url}/responses"
    before = {r["id"]: r for r in get(session, url, per_page=50, sort_key="updated_at").json()}
    edited = sorted(before)[3]
    written = time.time()
    server.update("responses", edited, score=before[edited]["score"] ^ 1)
    created = server.create("responses")
    stamp = {r["id"]: r for r in server.records("responses")}[edited]["updated_at"]
    # Every list path (indexed or not, any sort, any filter) sees the old version and not the new row.
    for params in ({}, {"sort_key": "updated_at", "sort_order": "asc"}, {"sort_key": "created_at"},
                   {"created[gte]": int(JAN_2020.timestamp())}):
        rows = {r["id"]: r for r in get(session, url, per_page=50, **params).json()}
        assert time.time() < written + 1.0, "the reads took too long for this test"
        assert rows[edited] == before[edited], params
        assert created not in rows and len(rows) == 20, params
    time.sleep(max(0.0, written + 1.05 - time.time()))
    rows = {r["id"]: r for r in get(session, url, per_page=50).json()}
    assert rows[edited]["score"] == before[edited]["score"] ^ 1 and created in rows
    # The stamps are the time of the write, not the time it became visible.
    assert {r["id"]: r for r in server.records("responses")}[edited]["updated_at"] == stamp
    assert abs(stamp.timestamp() - written) < 0.5


def test_late_visibility_hides_a_new_row_from_its_filter_until_it_shows(make_fake):
    server = make_fake(late_visibility=0.6)
    session = session_for(server)
    start = int(time.time()) - 5
    created = server.create("end_users")
    url = f"{server.api_url}/end_users"
    assert get(session, url, **{"updated[gt]": start}).json() == []
    time.sleep(0.7)
    assert [r["id"] for r in get(session, url, **{"updated[gt]": start}).json()] == [created]


def test_late_visibility_with_two_edits_shows_each_in_turn(make_fake):
    server = make_fake(late_visibility=0.6)
    server.generate("declines", 3, JAN_2020, JAN_2020 + timedelta(days=1))
    session = session_for(server)
    target = min(server.ids("declines"))
    url = f"{server.api_url}/declines"

    def origin() -> str:
        return {r["id"]: r for r in get(session, url).json()}[target]["origin_url"]

    original = origin()
    server.update("declines", target, origin_url="https://first.example/")
    time.sleep(0.3)
    server.update("declines", target, origin_url="https://second.example/")
    assert origin() == original
    time.sleep(0.4)
    assert origin() == "https://first.example/"
    time.sleep(0.4)
    assert origin() == "https://second.example/"


def test_late_visibility_is_off_by_default(make_fake):
    server = make_fake()
    created = server.create("responses")
    assert created in {r["id"] for r in get(session_for(server), f"{server.api_url}/responses").json()}


# -- refusals ----------------------------------------------------------------------------------------------


def test_refused_route_answers_its_status_after_the_token_check(make_fake):
    server = make_fake()
    server.refuse("survey_templates", 404)
    session = session_for(server)
    refused = get(session, f"{server.api_url}/survey_templates")
    assert refused.status_code == 404
    assert refused.json()["type"] == "error_list" and refused.json()["errors"][0]["status"] == "not_found"
    assert get(session, f"{server.api_url}/segments").status_code == 200
    assert get(session, f"{server.api_url}/responses").status_code == 200
    # A bad token is still a 401 first.
    unauthorised = requests.get(f"{server.api_url}/survey_templates", timeout=5,
                                headers={"Authorization": "Bearer wrong"})
    assert unauthorised.status_code == 401
    server.refuse("survey_templates", None)
    assert get(session, f"{server.api_url}/survey_templates").status_code == 200


def test_refused_401_stays_401_after_a_token_renewal(make_fake):
    server = make_fake()
    server.refuse("nps_summary", 401)
    for _ in range(2):  # a fresh token each time
        assert get(session_for(server), f"{server.api_url}/nps_summary").status_code == 401
    assert len(server.tokens_issued) == 2


def test_refused_cxi_and_v2_answer_in_their_own_shapes(make_fake):
    server = make_fake()
    server.refuse("cxi", 424)
    server.refuse("v2", 403)
    session = session_for(server)
    for path in ("responses", "tags", "projects", "imports"):
        reply = get(session, f"{server.cxi_url}/{path}")
        assert reply.status_code == 424 and reply.json() == {"message": "Please complete the onboarding flow first."}
    for path in ("email_stats", "email_stats/sources"):
        reply = get(session, f"{server.url}/v2/{path}")
        assert reply.status_code == 403 and reply.json()["errors"][0]["status"] == "forbidden"
    assert server.cxi_status == 424 and server.v2_status == 403
    assert get(session, f"{server.api_url}/responses").status_code == 200  # v1 is untouched
    server.cxi_status = None
    assert get(session, f"{server.cxi_url}/projects").status_code == 200
    server.refuse("cxi/tags", 403)
    assert get(session, f"{server.cxi_url}/tags").json() == {"message": "Forbidden"}
    assert get(session, f"{server.cxi_url}/projects").status_code == 200


# -- 429 with an HTTP-date Retry-After ---------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, -600])
def test_429_with_date_retry_after_and_no_rate_limit_headers(make_fake, offset):
    server = make_fake(clock_offset=offset)
    server.rate_limit = 100  # the other answers carry the headers; the date-form 429 does not
    session = session_for(server)
    url = f"{server.api_url}/responses"
    server.rate_limit_with_date(2, seconds=2)
    first = get(session, url)
    asked = time.time() + offset
    limited = get(session, url)
    assert first.status_code == 200 and all(name in first.headers for name in LIMIT_HEADERS)
    assert limited.status_code == 429 and not any(name in limited.headers for name in LIMIT_HEADERS)
    retry_at = parsedate_to_datetime(limited.headers["Retry-After"]).timestamp()
    assert asked + 2 - 1 <= retry_at <= asked + 2 + 1.5, (retry_at, asked)
    assert abs(date_of(limited) - asked) < 2
    # Every request before that moment, on any path, gets the same answer.
    again = get(session, f"{server.api_url}/declines")
    assert again.status_code == 429 and again.headers["Retry-After"] == limited.headers["Retry-After"]
    time.sleep(max(0.0, retry_at - (time.time() + offset)) + 0.05)
    assert get(session, url).status_code == 200
    assert [r["status"] for r in server.requests if r["path"].startswith("/v1/")] == [200, 429, 429, 200]
