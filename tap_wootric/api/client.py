"""HTTP access to the Wootric API: OAuth tokens, retries, and every request through the rate limiter (limiter.py).

Decisions are made on the status code only; bodies are read for the API's own
error message. Credentials travel in the POST body and the Authorization header,
never in a URL, so a logged URL is always safe to show.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

import backoff
import orjson
import requests
from singer import metrics

from tap_wootric.api import http
from tap_wootric.api.apis import Api
from tap_wootric.api.clock import ApiClock, parse_http_date
from tap_wootric.api.in_flight import InFlight
from tap_wootric.api.limiter import Limiter, Ticket
from tap_wootric.cancel import Cancellation
from tap_wootric.config import TapConfig
from tap_wootric.errors import ApiError, AuthError, NetworkError, Refused, TapWootricError

LOGGER = logging.getLogger(__name__)

# Refresh a token this long before the API would start answering 401.
TOKEN_REFRESH_MARGIN_SECONDS = 60.0
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 60.0
MAX_RATE_LIMIT_RETRIES = 10
RESET_MARGIN_SECONDS = 1.0


# Failures of the connection or of the body in transit, as opposed to an answer.
TRANSIENT_REQUEST_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def _says(*signs: str) -> Callable[[Exception], bool]:
    return lambda exc: any(sign in str(exc) for sign in signs)


# How a failed connection reads in one line, by the first test it meets (requests words them loosely).
_NETWORK_FAILURES: Tuple[Tuple[Callable[[Exception], bool], str], ...] = (
    (_says("NameResolutionError", "Failed to resolve", "Name or service not known", "nodename", "name resolution"),
     "cannot reach {host}: host name cannot be resolved"),
    (_says("Connection refused"), "cannot reach {host}: connection refused"),
    (lambda exc: isinstance(exc, requests.Timeout), "{host} gave no answer within {timeout:g} s"),
    (lambda exc: isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)),
     "the answer from {host} was cut off or corrupt"),
    (lambda exc: _says("RemoteDisconnected", "Connection aborted")(exc) or "reset" in str(exc).lower(),
     "{host} closed the connection without an answer"),
)


class RetryableError(Exception):
    """A failure worth another try: 5xx, a dropped connection, a timeout or a broken body.

    `final` is the error to report if every try fails the same way.
    """

    def __init__(self, message: str, final: Optional[TapWootricError] = None):
        super().__init__(message)
        self.final = final


class RateLimited(Exception):
    def __init__(self, wait_seconds: float):
        super().__init__(f"rate limited (429); waiting {wait_seconds:.1f} s")
        self.wait_seconds = wait_seconds


def api_error_message(response: requests.Response) -> str:
    """The API's own words for an error, from either of its error body shapes."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or "").strip()[:200]
    return (_message_of(body) if isinstance(body, dict) else "") or str(body)[:200]


# A digit as "0", any other byte as " ": a run of 19 "0"s then marks a number orjson may not read as requests does.
_DIGITS_ONLY = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_NUMBER = b"0" * 19


def json_body(response: requests.Response) -> Any:
    """The decoded body of an answer, exactly as `response.json()` decodes it, in a third of its time.

    orjson reads UTF-8 bytes as requests' decoder reads their text, but makes an integer beyond 64 bits a
    float; a run of 19 digits (a number that may be one) or a charset other than UTF-8 therefore goes
    requests' way, and so does whatever orjson refuses (a byte-order mark, bytes that are not UTF-8, a lone
    surrogate, a number beyond a double's range), for requests to decode or refuse as it always has."""
    content = response.content
    encoding = response.encoding
    if (encoding is None or encoding.lower() in ("utf-8", "utf8")) and _LONG_NUMBER not in content.translate(
            _DIGITS_ONLY):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return response.json()


def _message_of(body: Dict[str, Any]) -> str:
    """The message of an error object: its `errors` list, or its description, message or error."""
    return _listed_errors(body.get("errors")) or next(
        (str(body[key]) for key in ("error_description", "message", "error") if body.get(key)), "")


def _listed_errors(errors: Any) -> str:
    """`{"errors": [{"message": ...}, ...]}`, the API's usual error body, as one line."""
    if not isinstance(errors, list):
        return ""
    return "; ".join(str(err["message"]) for err in errors if isinstance(err, dict) and err.get("message"))


def _retry_after(value: Optional[str], clock: ApiClock) -> Optional[float]:
    """Retry-After as seconds to wait: a number of seconds, or an HTTP-date on the API's clock (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    moment = parse_http_date(value)
    return None if moment is None else max(0.0, clock.until(moment))


def _prefix(label: Optional[str]) -> str:
    return f"{label}: " if label else ""


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


class WootricClient:
    """One authenticated session against one Wootric account."""

    def __init__(
        self,
        config: TapConfig,
        *,
        max_tries: int = 6,
        backoff_factor: float = 1.0,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        cancellation: Optional[Cancellation] = None,
    ):
        """`time_scale` shrinks the waits the tap chooses itself (backoff, the default 429 wait)
        so tests need not sleep for minutes; waits the server names are kept as they are.
        `cancellation`: SIGTERM or SIGINT ends a pending request or wait at once, and stops the
        tap before its next request (see cancel.py)."""
        self.config = config
        self._cancellation = cancellation or Cancellation()
        # requests.Session is not documented as thread-safe: each worker thread gets its own.
        self._sessions = threading.local()
        self._environment_settings: Dict[str, Dict[str, Any]] = {}
        # Held while a token is fetched: workers that find it stale wait for the one renewal.
        self._token_lock = threading.RLock()
        # `workers` requests in flight for each stream, whichever threads send them (in_flight.py).
        self._in_flight = InFlight(config.workers, self._cancellation.check)
        self._waiting = 0
        self._waits_lock = threading.Lock()
        self._clock = clock
        self.clock = ApiClock(clock)
        # One limiter for every thread; only when requests can overlap must an unknown world be paced as if
        # the endpoints shared one budget.
        self._limiter = Limiter(clock=clock, wait=self._wait, check=self._cancellation.check,
                                spent_wait=self._rate_limit_wait, pooled=config.workers > 1)
        self._max_tries = max_tries
        self._time_scale = time_scale
        self._sleep = sleep
        self._access_token: Optional[str] = None
        self._refresh_token: Optional[str] = None
        self._token_expires_at = 0.0

        # backoff decides whether and how often to retry; the waits are the client's own (`_wait`), since
        # backoff sleeps with time.sleep, which nothing ends in a worker thread: it is handed waits of 0.
        factor = backoff_factor * time_scale
        retry_transient = self._retrying(RetryableError, max_tries, self._back_off(factor, 60 * time_scale))
        # A 429's wait is the limiter's: it holds every request the spent budget covers, this one's retry too.
        wait_out_rate_limit = self._retrying(RateLimited, MAX_RATE_LIMIT_RETRIES, self._back_off(0, None))
        self._get_with_retries = retry_transient(wait_out_rate_limit(self._get_once))
        # The token request is not limited: its 429 waits here.
        self._fetch_token_retrying = self._retrying(RetryableError, 3, self._back_off(factor * 0.5, None))(
            self._retrying(RateLimited, MAX_RATE_LIMIT_RETRIES, self._back_off(0, None, rate_limit_wait=True))(
                self._fetch_token_once))

    @staticmethod
    def _retrying(exception: type, max_tries: int, on_backoff: Callable[[Dict[str, Any]], None]) -> Callable:
        return backoff.on_exception(backoff.constant, exception, interval=0, jitter=None, max_tries=max_tries,
                                    on_backoff=on_backoff, logger=None)

    def _back_off(self, factor: float, max_value: Optional[float], *,
                  rate_limit_wait: bool = False) -> Callable[[Dict[str, Any]], None]:
        """What happens between two tries: the WARNING, then the wait (backoff.expo's, fully jittered; a
        429's when `rate_limit_wait`; none for a 429 of a GET, which the limiter holds)."""

        def handler(details: Dict[str, Any]) -> None:
            exc = details.get("exception")
            if isinstance(exc, RateLimited):
                wait = exc.wait_seconds
            else:
                wait = backoff.full_jitter(min(factor * 2 ** (details["tries"] - 1), max_value or float("inf")))
            self._log_backoff({**details, "wait": wait})
            if not isinstance(exc, RateLimited) or rate_limit_wait:
                self._wait(wait)

        return handler

    @property
    def cancellation(self) -> Cancellation:
        return self._cancellation

    @property
    def session(self) -> requests.Session:
        """This thread's session."""
        session = getattr(self._sessions, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = self.config.user_agent
            session.headers["Accept"] = "application/json"
            # requests reads proxy and CA-bundle variables (and ~/.netrc) from the environment on every
            # request, which cost more than a page's parsing; they are read once per host instead, and a
            # netrc entry cannot replace the Bearer header.
            session.trust_env = False
            self._sessions.session = session
        return session

    @property
    def in_flight(self) -> InFlight:
        return self._in_flight

    @property
    def limiter(self) -> Limiter:
        return self._limiter

    def _wait(self, seconds: float) -> None:
        """A wait the tap chooses (a spent budget): the main thread's is ended by the signal handler; a
        worker's by the cancellation's event, since handlers run only in the main thread."""
        with self._waits_lock:
            self._waiting += 1
        try:
            if threading.current_thread() is threading.main_thread():
                self._sleep(seconds)
            else:
                self._cancellation.sleep(seconds)
        finally:
            with self._waits_lock:
                self._waiting -= 1

    @property
    def waiting(self) -> int:
        """How many threads are sleeping out a spent budget, a 429 or a retry's backoff right now."""
        return self._waiting

    # -- tokens -------------------------------------------------------------

    @property
    def secrets(self) -> list:
        """Every secret this client knows, so callers can scrub them from messages."""
        return [s for s in (*self.config.secrets(), self._access_token, self._refresh_token) if s]

    def authenticate(self) -> None:
        """Fetch a fresh access token; raises AuthError or NetworkError with a clear message."""
        with self._cancellation.interruptible():
            self._fetch_token_with_retries()

    def _fetch_token_with_retries(self) -> None:
        try:
            self._fetch_token_retrying()
        except RetryableError as exc:
            raise exc.final or AuthError(f"OAuth token request failed: {exc}") from None
        except RateLimited:
            raise AuthError(
                f"the OAuth token request was still rate limited (429) after {MAX_RATE_LIMIT_RETRIES} waits"
            ) from None

    def _token_form(self) -> Dict[str, str]:
        if self._refresh_token:
            return {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
        if self.config.grant_type == "client_credentials":
            return {
                "grant_type": "client_credentials",
                "client_id": self.config.client_id or "",
                "client_secret": self.config.client_secret or "",
            }
        return {
            "grant_type": "password",
            "username": self.config.username or "",
            "password": self.config.password or "",
        }

    def _fetch_token_once(self) -> None:
        form = self._token_form()
        params = {"account_token": self.config.account_token} if self.config.account_token else None
        try:
            response = self.session.post(
                self.config.oauth_url, data=form, params=params, timeout=self.config.request_timeout,
                **self._environment_for(self.config.oauth_url),
            )
        except TRANSIENT_REQUEST_ERRORS as exc:
            failure = self._network_failure(self.config.oauth_url, exc)
            raise RetryableError(str(failure), final=failure) from None
        self.clock.observe(response.headers.get("Date"))
        if response.status_code != 200:
            return self._token_refused(response, form["grant_type"])
        self._take_token(response, form["grant_type"])
        return None

    def _token_refused(self, response: requests.Response, grant_type: str) -> None:
        status = response.status_code
        if status == 429:
            raise RateLimited(self._rate_limit_wait(response))
        if status >= 500 or status == 408:
            raise RetryableError(f"OAuth token request answered {status}")
        if grant_type == "refresh_token":
            # A rotated-away or revoked refresh token: start over with the password grant.
            LOGGER.info("Refresh token refused (%s); requesting a new token", status)
            self._refresh_token = None
            return self._fetch_token_once()
        raise AuthError(f"Wootric refused the credentials ({grant_type} grant) at {self.config.oauth_url}: "
                        f"HTTP {status} {api_error_message(response)}")

    def _take_token(self, response: requests.Response, grant_type: str) -> None:
        try:
            body = response.json()
            token = body["access_token"]
            expires_in = float(body.get("expires_in") or 7200)
        except (ValueError, KeyError, TypeError):
            raise RetryableError("OAuth token response had no access_token") from None
        self._access_token = token
        self._refresh_token = body.get("refresh_token") or None
        margin = min(TOKEN_REFRESH_MARGIN_SECONDS, expires_in / 10)
        self._token_expires_at = self._clock() + expires_in - margin
        LOGGER.info("Authenticated with Wootric (%s grant); token valid for %d s", grant_type, expires_in)

    def _ensure_token(self, stale: Optional[str] = None) -> str:
        """The current token, fetched first if there is none, it is about to expire, or it is `stale` (it
        was just refused): under the lock, so that workers finding it stale at once renew it once."""
        with self._token_lock:
            token = self._access_token
            if not token or token == stale or self._clock() >= self._token_expires_at:
                self._fetch_token_with_retries()
            assert self._access_token is not None
            return self._access_token

    # -- requests -----------------------------------------------------------

    def get(self, api: Api, path: str, params: Optional[Dict[str, Any]] = None, label: Optional[str] = None) -> Any:
        """GET `<the API's base>/<path>` and return the decoded JSON body. Raises Refused when the API
        refuses this account the feature, ApiError for any other failure that retries cannot mend.
        `label` (the stream's name) starts the request's log lines and names whose slots it takes."""
        params = params or {}
        if api.base_url(self.config) is None:
            raise Refused(f"api_url {self.config.api_url} does not end in /v1, so the base of {api.title} cannot be "
                          "derived from it", None, api)
        try:
            # Everything in here, retries and rate-limit waits included, may end with Cancelled;
            # nothing in here writes to stdout.
            with self._cancellation.interruptible():
                return self._get_with_retries(api, path, params, label)
        except RetryableError as exc:
            reason = exc.final or exc
            raise ApiError(f"{api.describe(path, params)} failed {self._max_tries} times; last: {reason}") from None
        except RateLimited:
            raise ApiError(
                f"{api.describe(path, params)} was still rate limited (429) after {MAX_RATE_LIMIT_RETRIES} waits"
            ) from None

    def _get_once(self, api: Api, path: str, params: Dict[str, Any], label: Optional[str] = None,
                  _refused_token: Optional[str] = None) -> Any:
        url = f"{api.base_url(self.config)}/{path}"
        ticket = self._limiter.acquire(api, path, label)
        response = None
        try:
            self._in_flight.take(label)
        except BaseException:
            self._limiter.release(ticket, None)
            raise
        started = time.monotonic()
        try:
            # The token is taken last, after every wait for the budget and a free slot: a token taken
            # before them may expire while this request waits behind others.
            token = self._ensure_token(stale=_refused_token)
            response = http.get(self.session, url, params, {"Authorization": f"Bearer {token}"},
                                timeout=self.config.request_timeout, **self._environment_for(url))
        except TRANSIENT_REQUEST_ERRORS as exc:
            self._log_request_metric(path, started, None)
            failure = self._network_failure(url, exc)
            raise RetryableError(f"{failure}", final=failure) from None
        finally:
            self._in_flight.release(label)
            self._release(ticket, response)

        if threading.current_thread() is not threading.main_thread():
            # A run that is ending takes nothing more from a worker, nor a log line after its last.
            self._cancellation.check()
        status = response.status_code
        self.clock.observe(response.headers.get("Date"))
        self._log_request_metric(path, started, status)
        LOGGER.info("%s%s -> %d (%.2f s)", _prefix(label), api.describe(path, params), status,
                    time.monotonic() - started)
        if status == 200:
            try:
                return json_body(response)
            except ValueError:
                raise RetryableError("HTTP 200 with a body that is not valid JSON") from None
        if status == 401 and _refused_token is None:
            LOGGER.info("%s%s answered 401; fetching a new token and retrying once", _prefix(label),
                        api.describe(path))
            return self._get_once(api, path, params, label, _refused_token=token)
        raise self._failure(api, path, params, response)

    def _release(self, ticket: Ticket, response: Optional[requests.Response]) -> None:
        """The request is over: the answers whose rate-limit headers count are 200s and 429s."""
        counted = response is not None and response.status_code in (200, 429)
        self._limiter.release(ticket, response if counted else None)

    def _failure(self, api: Api, path: str, params: Dict[str, Any], response: requests.Response) -> Exception:
        """What an answer other than 200 means: wait, retry, a refusal, or an error to report."""
        status = response.status_code
        if status == 429:
            return RateLimited(self._rate_limit_wait(response))
        if status >= 500 or status == 408:
            return RetryableError(f"HTTP {status} {api_error_message(response)}".rstrip())
        message = f"{api.describe(path, params)} failed with HTTP {status}: {api_error_message(response)}"
        if api.refuses(status):
            return Refused(message, status, api)
        return ApiError(message, status=status)

    @staticmethod
    def _log_request_metric(path: str, started: float, status: Optional[int]) -> None:
        """singer-python's http_request_duration METRIC line. Its Timer context manager re-reads the
        logging config (about 1 ms, and a reset of the log level) on every request, so the point is
        logged directly. Only at DEBUG: at INFO a request gets one line, the readable one."""
        if not LOGGER.isEnabledFor(logging.DEBUG):
            return
        tags: Dict[str, Any] = {metrics.Tag.endpoint: path}
        if status is not None:
            tags[metrics.Tag.http_status_code] = status
        tags[metrics.Tag.status] = metrics.Status.succeeded if status is not None else metrics.Status.failed
        metrics.log(LOGGER, metrics.Point("timer", metrics.Metric.http_request_duration,
                                          time.monotonic() - started, tags))

    def _rate_limit_wait(self, response: requests.Response) -> float:
        """How long a 429 (or a spent budget) asks the tap to wait: Retry-After, in seconds or as an
        HTTP-date; else until X-Rate-Limit-Reset (an epoch second); else the default. Dates are on the
        API's clock."""
        wait = _retry_after(response.headers.get("Retry-After"), self.clock)
        if wait is not None:
            return wait
        try:
            # The reset value is an epoch second, not a duration; the extra second covers its truncation.
            until_reset = self.clock.until(float(response.headers.get("X-Rate-Limit-Reset") or "nan"))
        except ValueError:
            until_reset = float("nan")
        # A reset in the past (or none) says nothing: then the default wait applies.
        if until_reset > 0:
            return until_reset + RESET_MARGIN_SECONDS * self._time_scale
        return DEFAULT_RATE_LIMIT_WAIT_SECONDS * self._time_scale

    # -- helpers ------------------------------------------------------------

    def _environment_for(self, url: str) -> Dict[str, Any]:
        """The proxies and CA bundle the environment sets for this URL's host (HTTPS_PROXY, NO_PROXY,
        REQUESTS_CA_BUNDLE ...), as requests itself would read them."""
        host = _host(url)
        settings = self._environment_settings.get(host)
        if settings is None:
            with requests.Session() as reader:
                merged = reader.merge_environment_settings(url, {}, None, None, None)
            settings = {"proxies": merged["proxies"], "verify": merged["verify"]}
            self._environment_settings[host] = settings
        return settings

    def _network_failure(self, url: str, exc: Exception) -> NetworkError:
        host = _host(url)
        if isinstance(exc, requests.exceptions.ProxyError):
            proxy = urlsplit(requests.utils.select_proxy(url, self._environment_for(url)["proxies"]) or "")
            # Only host and port: a proxy URL may carry a user name and password.
            where = f"{proxy.hostname}:{proxy.port}" if proxy.port else (proxy.hostname or "")
            return NetworkError(f"cannot reach {host} through the proxy {where} set in the environment "
                                "(HTTPS_PROXY / HTTP_PROXY; NO_PROXY lists hosts to reach directly)")
        for matches, message in _NETWORK_FAILURES:
            if matches(exc):
                return NetworkError(message.format(host=host, timeout=self.config.request_timeout))
        return NetworkError(f"cannot reach {host}: {type(exc).__name__}")

    def _log_backoff(self, details: Dict[str, Any]) -> None:
        args = details.get("args") or ()
        what = f"{_prefix(args[3] if len(args) >= 4 else None)}{args[0].describe(args[1], args[2])}" \
            if len(args) >= 3 else "OAuth token request"
        LOGGER.warning(
            "%s: %s; retry %d in %.1f s", what, details.get("exception", "failed"), details["tries"], details["wait"]
        )
