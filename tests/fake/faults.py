"""What the fake does instead of a plain answer: actions before a request, injected statuses and transport
faults, chaos, per-path (or shared) rate-limit budgets, 429s with an HTTP-date ``Retry-After``, and refusals of a route
or a whole API (an account without the feature)."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .common import Body, error_list, http_date, phrase, status_word

if TYPE_CHECKING:
    from .server import FakeWootric

TRANSPORT_FAULTS = ("reset", "slow", "truncated", "garbage")
# Private headers that carry a transport fault from the API logic to the HTTP handler; never sent.
FAULT_HEADER = "X-Fake-Fault"
FAULT_SECONDS_HEADER = "X-Fake-Fault-Seconds"
# The names refuse() takes besides the first path segment of a route: whole APIs.
APIS = ("v1", "v2", "cxi")
TOO_MANY = error_list("too_many_requests", "Rate limit exceeded. Try again later.")
Failure = tuple[Any, Body, dict[str, str]]  # status or transport fault, body, extra headers


class Faults:
    """Mixed into FakeWootric; its state lives under the fake's lock."""

    _lock: threading.RLock

    def _init_faults(self) -> None:
        # Per-path budget of GETs per window (None: unlimited, no X-Rate-Limit-* headers).
        self.rate_limit: int | None = None
        # True: one budget of rate_limit per window for every v1 path together (v2 and CXI keep theirs).
        self.rate_limit_shared: bool = False
        self.window_seconds: float = 60
        # Seconds every API GET takes before it is answered (a slow API).
        self.latency: float = 0.0
        # Faults served so far: (request number, kind), for tests that count retries.
        self.faults_served: list[tuple[int, str | int]] = []
        self._hooks: dict[int, list[Callable[[FakeWootric], Any]]] = {}
        self._failures: dict[int, Failure] = {}
        self._chaos: tuple[float, tuple[int | str, ...], random.Random] | None = None
        self._rate_windows: dict[str, tuple[int, int]] = {}  # path -> (window number, requests used)
        self._date_limits: dict[int, float] = {}  # request number -> seconds of its Retry-After
        self._date_limited_until: float | None = None  # API epoch before which every request gets a 429
        self._refusals: dict[str, int] = {}  # route or API -> status

    # -- actions and injected answers ---------------------------------------------------------------------

    def on_request(self, n: int, action: Callable[[FakeWootric], Any]) -> None:
        """Call ``action(fake)`` just before serving the n-th (1-based) API GET (v1, v2 or CXI)."""
        with self._lock:
            self._hooks.setdefault(n, []).append(action)

    def fail(self, n: int, status: int, body: Body = None, headers: dict[str, str] | None = None) -> None:
        """Answer the n-th (1-based) API GET with ``status`` instead of serving it.

        ``body`` may be JSON-serialisable, or str/bytes sent verbatim (e.g. a proxy's HTML error page).
        """
        if body is None:
            body = error_list(status_word(status), f"injected failure: {status} {phrase(status)}")
        with self._lock:
            self._failures[n] = (status, body, dict(headers or {}))

    def fault(self, n: int, kind: str, seconds: float = 2.0) -> None:
        """Break the n-th (1-based) API GET at the transport level instead of with a status.

        ``reset``: close the connection without a reply. ``slow``: answer after ``seconds``.
        ``truncated``: send half the body under the full Content-Length, then close.
        ``garbage``: a 200 whose body is an HTML page, not JSON.
        """
        if kind not in TRANSPORT_FAULTS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {TRANSPORT_FAULTS}")
        with self._lock:
            self._failures[n] = (kind, None, {FAULT_HEADER: kind, FAULT_SECONDS_HEADER: str(seconds)})

    def chaos(self, rate: float, kinds: tuple[int | str, ...] = (500, 502, 503, 504, "reset", "truncated",
                                                                    "garbage"), *, seed: int = 0) -> None:
        """From now on, break each API GET with probability ``rate``, by a kind drawn from ``kinds``
        (a status code or a transport fault); seeded, so a failing run can be replayed."""
        with self._lock:
            self._chaos = (rate, tuple(kinds), random.Random(seed)) if rate > 0 else None

    def rate_limit_with_date(self, n: int, seconds: float = 2.0) -> None:
        """Answer the n-th (1-based) API GET with a 429 whose ``Retry-After`` is an HTTP-date, the API's now
        plus ``seconds`` (rounded up to the second), and no ``X-Rate-Limit-*`` headers; every API GET
        before that moment gets the same 429."""
        with self._lock:
            self._date_limits[n] = seconds

    # -- refusals -----------------------------------------------------------------------------------------

    def refuse(self, route: str, status: int | None) -> None:
        """After a valid token, answer ``status`` on ``route`` with the API's usual error body; None serves it
        again. ``route`` is a whole API (``"v1"``, ``"v2"``, ``"cxi"``), a v1 route by its first path segment
        (``"segments"``, ``"survey_templates"``, ``"nps_summary"``, ``"end_users"``...), or a v2 or CXI route
        as ``"v2/email_stats"``, ``"cxi/tags"``. A refused 401 stays 401 whatever token comes next."""
        with self._lock:
            if status is None:
                self._refusals.pop(route, None)
            else:
                self._refusals[route] = int(status)

    def refusal_for(self, api: str, first: str) -> int | None:
        """The status a request to ``api`` whose path starts with ``first`` is refused with, if any."""
        keys = (first, api) if api == "v1" else (f"{api}/{first}", api)
        with self._lock:
            return next((self._refusals[key] for key in keys if key in self._refusals), None)

    @property
    def cxi_status(self) -> int | None:
        """The whole CXI API's refusal (424: onboarding not finished; 401, 403): ``refuse("cxi", status)``."""
        return self._refusals.get("cxi")

    @cxi_status.setter
    def cxi_status(self, status: int | None) -> None:
        self.refuse("cxi", status)

    @property
    def v2_status(self) -> int | None:
        """The whole v2 API's refusal (an account without e-mail surveys): ``refuse("v2", status)``."""
        return self._refusals.get("v2")

    @v2_status.setter
    def v2_status(self, status: int | None) -> None:
        self.refuse("v2", status)

    # -- deciding, per request (called under the lock) ----------------------------------------------------

    def _injected(self, number: int) -> Failure | None:
        """What fail(), fault() or chaos() put in place of request ``number``, noted in faults_served."""
        failure = self._failures.pop(number, None)
        if failure is None and self._chaos is not None:
            rate, kinds, rng = self._chaos
            if rng.random() < rate:
                kind = rng.choice(kinds)
                failure = ((kind, None, {FAULT_HEADER: kind, FAULT_SECONDS_HEADER: "2"}) if isinstance(kind, str)
                           else (kind, error_list("server_error", f"injected failure: {kind}"), {}))
        if failure is not None:
            self.faults_served.append((number, failure[0]))
        return failure

    def _date_limited(self, number: int, now: float) -> dict[str, str] | None:
        """The Retry-After header of a date-form 429 for request ``number`` at API epoch ``now``, if any."""
        seconds = self._date_limits.pop(number, None)
        if seconds is not None:
            self._date_limited_until = max(self._date_limited_until or 0.0, math.ceil(now + seconds))
        if self._date_limited_until is not None and now < self._date_limited_until:
            return {"Retry-After": http_date(self._date_limited_until)}
        return None

    def _spend_rate_budget(self, path: str, now: float) -> tuple[bool, dict[str, str]]:
        """Fixed windows of the API's clock (epoch ``now``) aligned to multiples of window_seconds, one budget
        per path (notes §4), or with rate_limit_shared one for every v1 path (the docs' "per account")."""
        if self.rate_limit is None:
            return True, {}
        budget = "/v1/" if self.rate_limit_shared and path.startswith("/v1/") else path
        window = math.floor(now / self.window_seconds)
        current, used = self._rate_windows.get(budget, (window, 0))
        if current != window:
            used = 0
        allowed = used < self.rate_limit
        if allowed:
            used += 1
        self._rate_windows[budget] = (window, used)
        return allowed, {
            "X-Rate-Limit-Limit": str(self.rate_limit),
            "X-Rate-Limit-Remaining": str(max(0, self.rate_limit - used)),
            # Rounded up so that a client sleeping until Reset never wakes inside the old window.
            "X-Rate-Limit-Reset": str(math.ceil((window + 1) * self.window_seconds)),
        }
