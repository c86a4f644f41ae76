"""In-memory tests of the rate limiter (tap_wootric/api/limiter.py): what it learns from the answers'
X-Rate-Limit-* headers, what it holds and for how long. A model server answers with the headers of fixed
windows, either one budget per endpoint or one for all; time moves only when the limiter waits. Requests
"in flight" at once are tickets taken and not yet released, so concurrency is played out in one thread,
in an exact order."""

from __future__ import annotations

import math
import signal
import threading
import time
from typing import Dict, List, Optional

import backoff
import pytest
import requests

from tap_wootric.api.apis import V1, V2
from tap_wootric.api.client import WootricClient
from tap_wootric.api.limiter import SEPARATE, SHARED, Limiter, Ticket
from tap_wootric.cancel import Cancellation, Cancelled, WorkerStopped
from tap_wootric.config import load_config

WINDOW = 60.0
LIMIT = 5
T0 = 1_800_000_000.0


class Blocked(Exception):
    """The limiter waited for answers in flight (it looked up for a stop)."""


class World:
    """A clock, the limiter's waits, and a server with fixed windows of LIMIT requests."""

    def __init__(self, *, shared: bool, pooled: bool = True):
        self.now = T0
        self.shared = shared
        self.waits: List[float] = []
        self.used: Dict[str, tuple] = {}
        self.served: List[str] = []
        self.limiter = Limiter(clock=lambda: self.now, wait=self.wait, check=self.check, spent_wait=self.spent_wait,
                               pooled=pooled)

    def wait(self, seconds: float) -> None:
        self.waits.append(round(seconds, 3))
        self.now += seconds

    @staticmethod
    def check() -> None:
        raise Blocked()

    def spent_wait(self, response: requests.Response) -> float:
        if response.headers.get("Retry-After"):
            return float(response.headers["Retry-After"])
        return float(response.headers["X-Rate-Limit-Reset"]) - self.now + 1

    def answer(self, path: str, *, limited: bool = True) -> requests.Response:
        """What the server answers a request to `path` that reaches it now (and counts it)."""
        response = requests.Response()
        response.status_code = 200
        self.served.append(path)
        if not limited:
            return response
        budget = "all" if self.shared else path
        window = math.floor(self.now / WINDOW)
        current, used = self.used.get(budget, (window, 0))
        used = used + 1 if current == window else 1
        self.used[budget] = (window, used)
        if used > LIMIT:
            response.status_code = 429
        response.headers.update({"X-Rate-Limit-Limit": str(LIMIT), "X-Rate-Limit-Remaining": str(max(0, LIMIT - used)),
                                 "X-Rate-Limit-Reset": str(int((window + 1) * WINDOW))})
        return response

    def start(self, path: str, api=V1) -> Ticket:
        return self.limiter.acquire(api, path, "test")

    def finish(self, ticket: Ticket, response: Optional[requests.Response] = None) -> requests.Response:
        response = response if response is not None else self.answer(ticket.path)
        self.limiter.release(ticket, response)
        return response

    def request(self, path: str, api=V1, **answer_options) -> requests.Response:
        ticket = self.start(path, api)
        return self.finish(ticket, self.answer(path, **answer_options))

    def blocked(self, path: str, api=V1) -> bool:
        try:
            ticket = self.start(path, api)
        except Blocked:
            return True
        self.limiter.release(ticket, None)
        return False


def overlapping_first_requests(world: World) -> None:
    """end_users alone (nothing is known), then responses and end_users in flight at once, answered in
    the order they were sent, as the server counted them."""
    world.request("end_users")
    responses, end_users = world.start("responses"), world.start("end_users")
    world.finish(responses)
    world.finish(end_users)


def test_learns_that_the_endpoints_share_one_budget():
    world = World(shared=True)
    overlapping_first_requests(world)
    # end_users fell from 4 to 2 with one request of its own: the other went to responses.
    assert world.limiter.verdict("v1") == SHARED
    # 2 left for all: two requests to any endpoints, then nothing until the reset, and no 429.
    first, second = world.start("declines"), world.start("responses")
    assert world.blocked("segments") and world.blocked("end_users")
    assert world.finish(first).status_code == 200 and world.finish(second).status_code == 200
    assert world.request("segments").status_code == 200  # the spent window is slept out first
    assert world.waits == [pytest.approx(WINDOW + 1, abs=1)]


def test_learns_that_each_endpoint_has_its_own_budget_and_then_paces_each_on_its_own():
    world = World(shared=False)
    overlapping_first_requests(world)
    # responses said 4 left after end_users had said 4: one shared budget would have had 3 at most.
    assert world.limiter.verdict("v1") == SEPARATE
    for _ in range(3):
        world.request("end_users")  # end_users' own budget is spent
    tickets = [world.start("responses") for _ in range(4)]  # all of responses' own budget at once
    assert world.blocked("responses")
    assert all(world.finish(ticket).status_code == 200 for ticket in tickets)
    assert world.waits == []
    world.request("declines")  # a fresh endpoint: its own budget, no wait
    assert world.waits == []
    world.request("end_users")
    assert world.waits == [pytest.approx(WINDOW + 1, abs=1)]


def test_until_the_world_is_known_overlapping_requests_fit_both_worlds():
    for shared in (True, False):
        world = World(shared=shared)
        world.request("end_users")  # 4 left, whichever world
        # Each endpoint yet unheard of sends one request alone; the pool of 4 holds the rest.
        tickets = [world.start(path) for path in ("responses", "declines", "segments", "end_users")]
        assert world.blocked("nps_summary") and world.blocked("responses")
        for ticket in tickets:
            assert world.finish(ticket).status_code == 200
    # Nothing is held when requests cannot overlap: one worker paces each endpoint on its own, as before.
    sequential = World(shared=False, pooled=False)
    for _ in range(LIMIT):
        sequential.request("end_users")
    sequential.request("responses")
    assert sequential.waits == []


def test_a_429_holds_every_request_its_budget_covers_until_the_reset():
    world = World(shared=True)
    overlapping_first_requests(world)
    limited = requests.Response()
    limited.status_code = 429
    limited.headers.update({"Retry-After": "30", "X-Rate-Limit-Remaining": "0"})
    world.finish(world.start("responses"), limited)
    world.request("declines")  # another endpoint: held until the 429's reset
    assert world.waits == [30]
    # Once separate, a 429 holds its own endpoint only.
    separate = World(shared=False)
    overlapping_first_requests(separate)
    separate.finish(separate.start("responses"), limited)
    separate.request("declines")
    assert separate.waits == []
    separate.request("responses")
    assert separate.waits == [30]


def test_an_endpoint_without_the_headers_is_never_held():
    world = World(shared=True)
    world.request("nps_summary", limited=False)
    overlapping_first_requests(world)
    for _ in range(2):
        world.request("declines")  # the shared budget is spent

    def ten_unheld() -> None:
        tickets = [world.start("nps_summary") for _ in range(10)]  # nothing holds it, nor counts it
        for ticket in tickets:
            world.finish(ticket, world.answer("nps_summary", limited=False))
        assert world.waits == []

    ten_unheld()
    world.request("end_users")
    assert world.waits == [pytest.approx(WINDOW + 1, abs=1)]
    world.waits.clear()
    limited = requests.Response()
    limited.status_code = 429
    limited.headers.update({"Retry-After": "30"})
    world.finish(world.start("responses"), limited)
    ten_unheld()
    world.request("end_users")
    assert world.waits == [30]


def test_apis_have_their_own_pools():
    world = World(shared=False)
    for _ in range(LIMIT):
        world.request("end_users")  # v1's pool is spent, and unknown: every v1 endpoint would wait
    world.request("email_stats", api=V2)
    assert world.waits == []


def test_one_worker_sends_the_same_requests_with_the_same_waits_as_before():
    """Sequential reads of three endpoints under per-endpoint budgets: only a spent endpoint waits, and
    only before its own next request (the waits of the limiter before it: tap-wootric's main at 1b257bd)."""
    world = World(shared=False, pooled=False)
    plan = ["end_users"] * 5 + ["responses"] * 3 + ["declines"] * 6 + ["end_users"] * 2
    for path in plan:
        assert world.request(path).status_code == 200
    assert world.served == plan
    # end_users spends its window, and responses goes on at once; declines spends its own on its 5th
    # request and waits before its 6th, into a window where end_users has its budget again.
    assert world.waits == [pytest.approx(WINDOW + 1, abs=1)]


# -- retry waits in worker threads --------------------------------------------------------------------------


def test_a_stop_ends_a_workers_retry_wait_at_once(monkeypatch):
    """A worker waiting to retry a failed request (here a backoff of 100 s) ends as soon as the run stops:
    backoff's own time.sleep could not be ended in a worker thread."""
    monkeypatch.setattr(backoff, "full_jitter", lambda value: value)

    def refuse(*args, **kwargs):
        raise requests.ConnectionError("Connection refused")

    monkeypatch.setattr(requests.Session, "get", refuse)
    cancellation = Cancellation()
    config = load_config({"client_id": "a", "client_secret": "b", "start_date": "2020-01-01T00:00:00Z",
                          "api_url": "http://127.0.0.1:9/v1", "workers": 4})
    client = WootricClient(config, backoff_factor=100, cancellation=cancellation)
    client._access_token, client._token_expires_at = "token", float("inf")
    ended: Dict[str, object] = {}

    def worker() -> None:
        try:
            client.get(V1, "responses", {"page": 1}, label="responses")
        except BaseException as exc:  # noqa: BLE001 - the test reads what ended it
            ended["by"] = exc
            ended["at"] = time.monotonic()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    time.sleep(0.3)  # the first try failed; the 100 s wait is on
    assert thread.is_alive()
    stopped = time.monotonic()
    cancellation._on_signal(signal.SIGTERM, None)
    thread.join(2)
    assert not thread.is_alive()
    assert isinstance(ended["by"], Cancelled) and ended["at"] - stopped < 0.2
    # A run that ends for another reason (a fatal error elsewhere) ends the waits the same way.
    other = Cancellation()
    client = WootricClient(config, backoff_factor=100, cancellation=other)
    client._access_token, client._token_expires_at = "token", float("inf")
    ended.clear()
    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    time.sleep(0.3)
    stopped = time.monotonic()
    other.stop_workers()
    thread.join(2)
    assert isinstance(ended["by"], WorkerStopped) and ended["at"] - stopped < 0.2
