"""The fake API follows the behaviour the API notes describe; the tap's tests rely on it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests


@pytest.fixture
def session(fake):
    token = requests.post(fake.oauth_url, data={"grant_type": "client_credentials", "client_id": fake.client_id,
                                                 "client_secret": fake.client_secret}).json()["access_token"]
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def test_tokens_expire_and_wrong_ones_are_refused(fake):
    fake.token_ttl = -1
    body = requests.post(fake.oauth_url, data={"grant_type": "client_credentials", "client_id": fake.client_id,
                                                "client_secret": fake.client_secret}).json()
    assert "refresh_token" not in body
    expired = requests.get(f"{fake.api_url}/responses", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert expired.status_code == 401
    wrong = requests.post(fake.oauth_url, data={"grant_type": "client_credentials", "client_id": "x",
                                                 "client_secret": "y"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def test_password_grant_gives_a_rotating_refresh_token(fake):
    first = requests.post(fake.oauth_url, data={"grant_type": "password", "username": fake.username,
                                                 "password": fake.password}).json()
    second = requests.post(fake.oauth_url, data={"grant_type": "refresh_token",
                                                  "refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    again = requests.post(fake.oauth_url, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert again.status_code == 400


@pytest.mark.parametrize("params, field", [({"page": 31}, "page"), ({"per_page": 51}, "per_page"),
                                           ({"sort_order": "up"}, "sort_order")])
def test_paging_limits_answer_400_with_an_error_list(fake, session, params, field):
    response = session.get(f"{fake.api_url}/responses", params=params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == f"{field} does not have a valid value"


def test_default_sorts_differ_by_endpoint(fake, session):
    fake.generate("responses", 40, datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2021, 1, 1, tzinfo=timezone.utc))
    fake.generate("end_users", 40, datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2021, 1, 1, tzinfo=timezone.utc))
    responses = session.get(f"{fake.api_url}/responses").json()
    assert len(responses) == 25  # per_page defaults to 25
    created = [r["id"] for r in sorted(fake.records("responses"), key=lambda r: r["created_at"], reverse=True)]
    assert [r["id"] for r in responses] == created[:25]
    users = session.get(f"{fake.api_url}/end_users", params={"per_page": 50}).json()
    emails = [u["email"] or "" for u in users]
    assert emails == sorted(emails)


def test_filters_compare_sub_second_times_but_output_shows_whole_seconds(fake, session):
    second = 1_700_000_000
    fake.add_burst("responses", second, 10)
    shown = session.get(f"{fake.api_url}/responses", params={"created[gt]": second}).json()
    assert len(shown) == 10  # stored at second + fraction, so "gt second" still matches
    assert all(r["created_at"] == "2023-11-14 14:13:20 -0800" for r in shown)
    assert session.get(f"{fake.api_url}/responses", params={"created[lt]": second}).json() == []
    # updated[...] is silently ignored on responses, as the API's framework does.
    assert len(session.get(f"{fake.api_url}/responses", params={"updated[gt]": second + 5}).json()) == 10


def test_offsets_follow_daylight_saving_time(fake, session):
    fake.add_burst("declines", datetime(2023, 7, 1, 12, tzinfo=timezone.utc), 1)
    fake.add_burst("declines", datetime(2023, 1, 1, 12, tzinfo=timezone.utc), 1)
    rendered = {r["created_at"][-5:] for r in session.get(f"{fake.api_url}/declines").json()}
    assert rendered == {"-0700", "-0800"}
