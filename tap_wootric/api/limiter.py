"""One rate limiter per client: every request of every thread asks it before it goes out.

Wootric limits "some endpoints" to a number of requests "per minute per account" (notes §4), and says
nothing of whether its endpoints share one budget. So the limiter learns it, per API, from the
`X-Rate-Limit-*` headers of the answers (200s and 429s):

- **Shared**: an answer from endpoint Y reports less left than Y's previous answer in the same window
  (same `X-Rate-Limit-Reset`) by more than the requests this tap could have had counted on Y in between,
  while it sent requests to other endpoints: someone else spent Y's budget.
- **Separate**: Y's request went out after endpoint X had reported r left in the same window, and Y's
  answer still reports r or more: one shared budget would have counted Y's request after X's and left
  at most r - 1. (Another client of the account can only make numbers drop, so this proof holds whatever
  else spends the budget.) Two endpoints reporting different `X-Rate-Limit-Limit`s are separate too.

Until the verdict is in, and while requests can overlap (`pooled`: more than one worker), a request must
fit both worlds: its endpoint's own budget (what it reported, less its requests in flight) and the API's
pool (the least any endpoint reported in the newest window, less every request in flight to a limited
endpoint). After "separate" only the endpoint's own budget counts; after "shared", only the pool's. With
one worker nothing overlaps, and an unknown world is paced per endpoint, as the tap always did.

When nothing is known of a budget (the first request, or the first after a reset) one request goes
alone to learn it. A spent budget is slept out before the next request instead of walking into a 429;
a 429 holds every request its budget covers (the pool's, unless the endpoints are known separate) until
the reset it names. An endpoint whose answers carry no `X-Rate-Limit-Remaining` is not limited: nothing
holds it, and its requests do not count in the pool. Every wait goes through the client's cancellable
wait, and a wait for answers in flight looks up every POLL_SECONDS, so a stop ends either at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import requests

from tap_wootric.api.apis import Api

LOGGER = logging.getLogger(__name__)

SHARED = "shared"
SEPARATE = "separate"
POLL_SECONDS = 0.1
_VERDICT_WORDS = {SHARED: "one budget shared by every endpoint", SEPARATE: "a budget for each endpoint"}


class _Budget:
    """What is known of one rate-limit window: an endpoint's own, or an API's pool."""

    def __init__(self) -> None:
        self.remaining: Optional[int] = None  # the least an answer of this window reported; None: unknown
        self.window: Optional[str] = None  # its X-Rate-Limit-Reset, which names the window
        self.limit: Optional[str] = None  # its X-Rate-Limit-Limit
        self.resets_at: Optional[float] = None  # while set, a spent window or a 429 holds its requests
        self.told: Optional[float] = None  # the hold a pause line has announced: one line, however many wait
        self.in_flight = 0

    def allows_one_more(self) -> bool:
        return self.in_flight < (1 if self.remaining is None else self.remaining)

    def take(self, remaining: int, window: Optional[str], limit: Optional[str]) -> None:
        # Answers of one window can arrive out of order; the least count left is the true one.
        if self.remaining is not None and window == self.window:
            remaining = min(remaining, self.remaining)
        self.remaining, self.window, self.limit = remaining, window, limit

    def hold(self, until: float, *, extend: bool) -> None:
        if self.resets_at is None or (extend and until > self.resets_at):
            self.resets_at = until

    def forget_window(self) -> None:
        self.resets_at, self.remaining, self.window = None, None, None


class _Endpoint(_Budget):
    def __init__(self) -> None:
        super().__init__()
        self.limited: Optional[bool] = None  # False once an answer came without the headers (notes §4)
        self.sent = 0  # requests started
        self.ended = 0  # requests answered or failed
        # The last counted answer: (remaining, window, `ended` and others' `sent` when its request started).
        self.previous: Optional[Tuple[int, Optional[str], int, int]] = None


class _Pool(_Budget):
    """An API's endpoints together: the budget they would have if they shared one, and the verdict."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title
        self.verdict: Optional[str] = None
        self.sent = 0  # requests started to endpoints not known to be unlimited
        self.endpoints: Dict[str, _Endpoint] = {}


@dataclass
class Ticket:
    """One request let through: what was known when it started, to judge its answer by."""

    scope: str
    path: str
    in_pool: bool = False
    ended_before: int = 0  # its endpoint's requests ended when it started
    others_sent: int = 0  # requests started to the API's other endpoints before it
    # (window, least remaining, limit) each other endpoint had reported when it started.
    others_seen: List[Tuple[Optional[str], Optional[int], Optional[str]]] = field(default_factory=list)


class Limiter:
    """Every API's budgets, shared by every thread of one client."""

    def __init__(self, *, clock: Callable[[], float], wait: Callable[[float], None], check: Callable[[], None],
                 spent_wait: Callable[[requests.Response], float], pooled: bool):
        """`wait` sleeps in a way a stop ends; `check` raises when the run is ending; `spent_wait` is how
        long an answer says its spent window or 429 lasts; `pooled`: requests can overlap."""
        self._clock = clock
        self._wait = wait
        self._check = check
        self._spent_wait = spent_wait
        self._pooled = pooled
        self._lock = threading.Condition()
        self._pools: Dict[str, _Pool] = {}
        self._local = threading.local()  # the 429 hold this thread met itself (its retry WARNING told it)
        # Whether any answer has carried rate-limit headers: then budgets, not the tap's CPU, bound the run.
        self.seen_limits = False

    def verdict(self, scope: str) -> Optional[str]:
        """SHARED, SEPARATE, or None while unknown."""
        with self._lock:
            return self._pool(scope).verdict

    # -- a request's way through ---------------------------------------------------------------------

    def acquire(self, api: Api, path: str, label: Optional[str] = None) -> Ticket:
        """Block until a request to `path` may go out without overrunning what any budget that may cover
        it has left; `label` (the stream) starts a pause line."""
        while True:
            with self._lock:
                pool = self._pool(api.name, api.title)
                endpoint = pool.endpoints.setdefault(path, _Endpoint())
                budgets = self._budgets(pool, endpoint)
                now = self._clock()
                held = _still_held(budgets, now)
                if not held:
                    if all(budget.allows_one_more() for budget in budgets):
                        return self._start(api.name, path, pool, endpoint)
                    # The answers in flight tell how much is left: wait for one, looking up for a stop.
                    self._lock.wait(POLL_SECONDS)
                    self._check()
                    continue
                until, told = _pause_until(held)
                whose = f"of {api.title}'s endpoints together" if endpoint not in held else f"of {api.describe(path)}"
            self._sleep_out(held, until, now, f"{label}: " if label else "", whose, told)

    def release(self, ticket: Ticket, response: Optional[requests.Response]) -> None:
        """A request ended; `response` is its answer when its headers count (a 200 or a 429)."""
        with self._lock:
            pool = self._pool(ticket.scope)
            endpoint = pool.endpoints.setdefault(ticket.path, _Endpoint())
            endpoint.in_flight = max(0, endpoint.in_flight - 1)
            endpoint.ended += 1
            if ticket.in_pool:
                pool.in_flight = max(0, pool.in_flight - 1)
            if response is not None:
                self._note(pool, endpoint, ticket, response)
            self._lock.notify_all()

    def note(self, scope: str, path: str, response: requests.Response) -> None:
        """Take in what an answer says without a request of this limiter's (a test's, or a replay)."""
        with self._lock:
            pool = self._pool(scope)
            self._note(pool, pool.endpoints.setdefault(path, _Endpoint()), Ticket(scope, path), response)

    # -- deciding ----------------------------------------------------------------------------------

    def _pool(self, scope: str, title: str = "") -> _Pool:
        pool = self._pools.get(scope)
        if pool is None:
            pool = self._pools[scope] = _Pool(title=title or scope)
        return pool

    def _budgets(self, pool: _Pool, endpoint: _Endpoint) -> List[_Budget]:
        """The budgets a request to `endpoint` must fit: none for an unlimited endpoint; else its own unless
        the API is known to share one, and the pool if it is, or may be while requests overlap."""
        if endpoint.limited is False:
            return []
        own: List[_Budget] = [] if pool.verdict == SHARED else [endpoint]
        pooled = pool.verdict == SHARED or (pool.verdict is None and self._pooled)
        return own + ([pool] if pooled else [])

    def _start(self, scope: str, path: str, pool: _Pool, endpoint: _Endpoint) -> Ticket:
        in_pool = endpoint.limited is not False
        ticket = Ticket(scope, path, in_pool=in_pool, ended_before=endpoint.ended,
                        others_sent=pool.sent - endpoint.sent, others_seen=[(other.window, other.remaining, other.limit)
                                     for name, other in pool.endpoints.items()
                                     if name != path and other.limited and other.remaining is not None])
        endpoint.in_flight += 1
        endpoint.sent += 1
        if in_pool:
            pool.in_flight += 1
            pool.sent += 1
        return ticket

    def _sleep_out(self, held: List[_Budget], until: float, now: float, prefix: str, whose: str,
                   told: bool) -> None:
        pause = until - now
        if getattr(self._local, "announced", None) == until:
            self._local.announced = None  # this thread's own 429: its retry WARNING said how long
        elif not told:
            LOGGER.info("%sRate-limit budget %s used up; pausing %.1f s until it resets", prefix, whose, pause)
        self._wait(pause)
        with self._lock:
            # Slept out: the window is over, whatever a clock that did not move says.
            for budget in held:
                if budget.resets_at is not None and budget.resets_at <= until:
                    budget.forget_window()

    # -- learning from an answer -------------------------------------------------------------------

    def _note(self, pool: _Pool, endpoint: _Endpoint, ticket: Ticket, response: requests.Response) -> None:
        headers = response.headers
        limited_429 = response.status_code == 429
        remaining = _count(headers.get("X-Rate-Limit-Remaining"))
        if headers.get("X-Rate-Limit-Remaining") is None and not limited_429:
            endpoint.limited = False
            return
        endpoint.limited = True
        self.seen_limits = True
        if remaining is not None:
            self._take_count(pool, endpoint, ticket, remaining, headers.get("X-Rate-Limit-Reset"),
                             headers.get("X-Rate-Limit-Limit"), counted=not limited_429)
        # A spent window holds the budgets it spent; a 429 holds, or holds longer, every one that covers it.
        spent = _spent(endpoint, pool, remaining, limited_429)
        if spent:
            until = self._clock() + self._spent_wait(response)
            for budget in spent:
                budget.hold(until, extend=limited_429)
        if limited_429:
            self._local.announced = max((budget.resets_at or 0.0 for budget in self._budgets(pool, endpoint)),
                                        default=None)

    def _take_count(self, pool: _Pool, endpoint: _Endpoint, ticket: Ticket, remaining: int, window: Optional[str],
                    limit: Optional[str], *, counted: bool) -> None:
        """Take in the count an answer reports left; `counted`: its request was counted (not a 429)."""
        # Learn before taking: the verdict compares this answer with the endpoint's previous one.
        self._learn(pool, endpoint, ticket, remaining, window, limit, counted=counted)
        if counted:
            endpoint.previous = (remaining, window, ticket.ended_before, ticket.others_sent)
        endpoint.take(remaining, window, limit)
        if _in_newest_window(pool, window):
            pool.take(remaining, window, limit)

    def _learn(self, pool: _Pool, endpoint: _Endpoint, ticket: Ticket, remaining: int, window: Optional[str],
               limit: Optional[str], *, counted: bool) -> None:
        if window is None:
            return  # without the window's name, two answers cannot be compared
        # A 429's request was not counted, so it cannot show that a shared budget would have counted it.
        if counted and _proves_separate(ticket, remaining, window, limit):
            self._judge(pool, SEPARATE, ticket)
        elif pool.verdict is None and _proves_shared(pool, endpoint, remaining, window):
            self._judge(pool, SHARED, ticket)

    def _judge(self, pool: _Pool, verdict: str, ticket: Ticket) -> None:
        if pool.verdict == verdict or (pool.verdict == SEPARATE and verdict == SHARED):
            # Once proved separate, a drop is another client of the account, not a shared budget.
            return
        pool.verdict = verdict
        LOGGER.info("Rate limits of %s: %s (learned from the answers of /%s)", pool.title, _VERDICT_WORDS[verdict],
                    ticket.path)


def _still_held(budgets: List[_Budget], now: float) -> List[_Budget]:
    """The budgets whose hold has not reset by `now`. A hold that has reset ends its window, and the
    window's count goes with it: the next request goes alone to learn the new window's."""
    for budget in budgets:
        if budget.resets_at is not None and budget.resets_at <= now:
            budget.forget_window()
    return [budget for budget in budgets if budget.resets_at is not None]


def _pause_until(held: List[_Budget]) -> Tuple[float, bool]:
    """When the last of the held budgets resets, and whether a pause line has told of that already: one
    line per hold, however many requests wait it out."""
    until = max(budget.resets_at for budget in held if budget.resets_at is not None)
    told = all(budget.told == until for budget in held)
    for budget in held:
        budget.told = until
    return until, told


def _proves_separate(ticket: Ticket, remaining: int, window: str, limit: Optional[str]) -> bool:
    """Whether an answer shows its endpoint's budget is not another endpoint's: that one reported r left in
    this window before the request started, and one shared budget would have left at most r - 1 after
    counting it; or the two report different limits."""
    return any(
        seen_window == window and (remaining >= seen_remaining or (limit and seen_limit and limit != seen_limit))
        for seen_window, seen_remaining, seen_limit in ticket.others_seen if seen_remaining is not None)


def _proves_shared(pool: _Pool, endpoint: _Endpoint, remaining: int, window: str) -> bool:
    """Whether an answer shows its endpoint's budget spent by requests to other endpoints: it reports less
    left than the endpoint's previous answer in the same window by more than this tap's own requests to it
    could have taken, while this tap sent requests to other endpoints."""
    if endpoint.previous is None:
        return False
    before, before_window, ended_then, others_then = endpoint.previous
    # Requests of this tap that the server may have counted on this endpoint since that answer: every
    # one not ended when that answer's request started, besides it (this one included).
    ours = endpoint.sent - ended_then - 1
    elsewhere = (pool.sent - endpoint.sent) - others_then
    return before_window == window and before - remaining > ours and elsewhere > 0


def _in_newest_window(pool: _Pool, window: Optional[str]) -> bool:
    """Whether an answer's window is the pool's newest: the pool keeps what the newest window has left,
    and an answer of a window already over (a late one) would only bring back a stale count."""
    return pool.remaining is None or pool.window == window or _newer(window, pool.window)


def _spent(endpoint: _Endpoint, pool: _Pool, remaining: Optional[int], limited_429: bool) -> List[_Budget]:
    """The budgets an answer shows used up, to hold until the reset: after a 429 every one that may cover
    its endpoint; else those with nothing left in the window this answer named."""
    if limited_429:
        return [endpoint, pool]
    if remaining is None:
        return []  # a count that cannot be read tells nothing
    return [budget for budget in (endpoint, pool) if budget.window == endpoint.window and (budget.remaining or 0) <= 0]


def _count(value: Optional[str]) -> Optional[int]:
    try:
        return None if value is None else int(float(value))
    except ValueError:
        return None


def _newer(window: Optional[str], than: Optional[str]) -> bool:
    """Whether window names a later window than `than` (epoch seconds of their resets); unknown: yes."""
    try:
        return float(window or "") > float(than or "")
    except ValueError:
        return True
