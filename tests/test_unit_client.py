"""In-memory tests of the client's decisions and of choose: the API's clock, how long a 429 asks to
wait, and which read each API world gets. No network: the decisions take a clock and a response."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
import requests

from tap_wootric.api.apis import CXI, V1, V2
from tap_wootric.api.client import DEFAULT_RATE_LIMIT_WAIT_SECONDS, RESET_MARGIN_SECONDS, WootricClient
from tap_wootric.api.clock import ApiClock, parse_http_date
from tap_wootric.config import load_config
from tap_wootric.incremental.keyset import KeysetRead
from tap_wootric.incremental.probe import Verdict
from tap_wootric.incremental.strategies import EditWalkRead, choose
from tap_wootric.streams import get_stream

LOCAL = 1_800_000_000.0
CONFIG = {"client_id": "a", "client_secret": "b", "start_date": "2020-01-01T00:00:00Z"}


def http_date(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, timezone.utc), usegmt=True)


def test_http_dates_in_every_form_rfc_9110_allows():
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777
    assert parse_http_date("soon") is None and parse_http_date(None) is None and parse_http_date("") is None


@pytest.mark.parametrize("offset", [-600, 0, 3.4, 600])
def test_the_api_clock_follows_the_date_header_and_never_runs_ahead(offset):
    clock = ApiClock(lambda: LOCAL)
    assert clock.now() == LOCAL  # no answer yet: this machine's clock
    clock.observe(http_date(LOCAL + offset))
    # The header is cut to the second: the estimate is at most a second early, never late.
    assert LOCAL + offset - 1 <= clock.now() <= LOCAL + offset
    assert clock.until(clock.now() + 2) == pytest.approx(2)
    clock.observe("garbage")  # an unreadable header changes nothing
    assert LOCAL + offset - 1 <= clock.now() <= LOCAL + offset


def client_at(local: float, api_offset: float) -> WootricClient:
    client = WootricClient(load_config(CONFIG), clock=lambda: local, sleep=lambda seconds: None)
    client.clock.observe(http_date(local + api_offset))
    return client


def answer(status: int, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


@pytest.mark.parametrize("api_offset", [-600, 0, 600])
def test_a_429_waits_what_it_asks_on_the_apis_clock(api_offset):
    client = client_at(LOCAL, api_offset)
    api_now = LOCAL + api_offset
    assert client._rate_limit_wait(answer(429, **{"Retry-After": "7"})) == 7
    assert client._rate_limit_wait(answer(429, **{"Retry-After": http_date(api_now + 2)})) == pytest.approx(2, abs=1)
    reset = answer(429, **{"X-Rate-Limit-Reset": str(int(api_now + 30))})
    assert client._rate_limit_wait(reset) == pytest.approx(30 + RESET_MARGIN_SECONDS, abs=1)
    # A reset already past (or a date in the past) says nothing new: the default, or no wait.
    assert client._rate_limit_wait(answer(429, **{"X-Rate-Limit-Reset": str(int(api_now - 30))})) == \
        DEFAULT_RATE_LIMIT_WAIT_SECONDS
    assert client._rate_limit_wait(answer(429, **{"Retry-After": http_date(api_now - 5)})) == 0
    assert client._rate_limit_wait(answer(429)) == DEFAULT_RATE_LIMIT_WAIT_SECONDS


def test_a_spent_budget_holds_only_its_own_endpoint():
    slept = []
    now = {"t": LOCAL}
    # workers: 1, where nothing overlaps and an unproven world is paced per endpoint; with several workers
    # an unproven world must fit a shared budget too (tests/test_unit_limiter.py).
    client = WootricClient(load_config({**CONFIG, "workers": 1}), clock=lambda: now["t"], sleep=slept.append)
    spent = answer(200, **{"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": str(int(LOCAL + 10))})
    limiter = client.limiter

    def wait_for_budget(path):
        """Sleep out what holds a request to the endpoint, without sending one."""
        limiter.release(limiter.acquire(V1, path), None)

    limiter.note(V1.name, "responses", spent)
    wait_for_budget("end_users")
    assert slept == []
    wait_for_budget("responses")
    assert slept and slept[0] == pytest.approx(10 + RESET_MARGIN_SECONDS, abs=1)
    wait_for_budget("responses")  # held once, not again
    assert len(slept) == 1


def test_refusals_are_one_rule_for_every_api():
    for api in (V1, V2, CXI):
        assert all(api.refuses(status) for status in (401, 403, 404, 424))
        assert not any(api.refuses(status) for status in (400, 408, 429, 500, 503, None))
    assert V2.shared and CXI.shared and not V1.shared
    assert V1.describe("responses", {"page": 2}) == "GET /responses page=2"
    assert V2.describe("email_stats") == "GET /v2/email_stats"
    assert CXI.describe("tags", {"flat": "true"}) == "GET CXI /tags flat=true"


def verdict(filter_honoured: bool, sort_honoured: bool) -> Verdict:
    return Verdict(filter_honoured, sort_honoured, "sorts" if sort_honoured else "does not sort", [], 1_700_000_500)


RESPONSES = get_stream("responses")
BOOKMARK = {"updated_at": "2023-11-14T22:13:20Z"}  # 1_700_000_000


def chosen(bookmark, world=None, spec=RESPONSES):
    probed = []

    def probe():
        probed.append(True)
        return world

    read = choose(spec, bookmark, probe, start_date=1_600_000_000, configured_lookback=30, passes_on=True)
    return read, bool(probed)


def test_choose_describes_the_read_for_each_api_world():
    first, probed = chosen({})
    assert isinstance(first, KeysetRead) and first.field == "created_at" and not probed
    resumed, probed = chosen({**BOOKMARK, "scan_position": "2023-01-01T00:00:00Z"})
    assert resumed.field == "created_at" and resumed.lookback_days == 0 and not probed

    a, probed = chosen(BOOKMARK, verdict(True, True))
    assert probed and isinstance(a, KeysetRead) and a.field == "updated_at" and a.filter_param == "updated"
    assert a.replication_scan and a.created_since == 1_600_000_000 and a.unchanged_since == 1_700_000_500
    b, _ = chosen(BOOKMARK, verdict(False, True))
    assert isinstance(b, EditWalkRead) and b.since == 1_700_000_000
    filtered, _ = chosen(BOOKMARK, verdict(True, False))
    assert filtered.from_start_date and dict(filtered.extra_params) == {"updated[gte]": 1_700_000_000}
    assert filtered.require_updated_since == 1_700_000_000
    c, _ = chosen(BOOKMARK, verdict(False, False))
    assert c.name == "lookback rescan" and c.lookback_days == 30 and c.relies_on_pass and c.fallback is None
    # Every proved world falls back to the lookback rescan when the API stops honouring what was proved.
    for read in (a, b, filtered):
        assert read.fallback is not None and read.fallback.name == "lookback rescan"


def test_choose_needs_no_probe_where_the_filter_is_documented():
    read, probed = chosen(BOOKMARK, spec=get_stream("end_users"))
    assert not probed and read.field == "updated_at" and read.filter_param == "updated" and read.replication_scan


def test_declines_never_edited_need_no_lookback_while_the_pass_runs():
    read, _ = chosen(BOOKMARK, verdict(False, False), spec=get_stream("declines"))
    assert read.lookback_days == 0
