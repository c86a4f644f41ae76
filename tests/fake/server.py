"""The fake's HTTP side: FakeWootric (the world, its faults and a server on 127.0.0.1), the token endpoint,
the token check, the request log and the dispatch to each API's routes."""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import routes_cxi, routes_v1, routes_v2
from .common import (
    CXI_PREFIX,
    STREAMS,
    V2_PREFIX,
    Answer,
    Body,
    JsonRows,
    Reply,
    error_list,
    http_date,
    oauth_error,
    parse_form,
    status_word,
)
from .faults import FAULT_HEADER, FAULT_SECONDS_HEADER, TOO_MANY, Faults
from .world import World

if TYPE_CHECKING:  # only for annotations; typing.Self needs Python 3.11
    from typing_extensions import Self

CREDENTIAL_FIELDS = ("client_id", "client_secret", "username", "password", "refresh_token")
INVALID_CLIENT = ("Client authentication failed due to unknown client, no client authentication included, "
                  "or unsupported authentication method.")
INVALID_GRANT = ("The provided authorization grant is invalid, expired, revoked, does not match the redirection "
                 "URI used in the authorization request, or was issued to another client.")
INVALID_REQUEST = ("The request is missing a required parameter, includes an unsupported parameter value, "
                   "or is otherwise malformed.")
UNSUPPORTED_GRANT = "The authorization grant type is not supported by the authorization server."
UNAUTHORIZED = error_list("unauthorized", "Your access token is wrong")
ROUTES = {"v1": routes_v1.route, "v2": routes_v2.route, "cxi": routes_cxi.route}


def _v1_refusal(status: int, word: str) -> Answer:
    return status, error_list(word, "This account does not have this feature")


REFUSALS = {"v1": _v1_refusal, "v2": routes_v2.refusal, "cxi": routes_cxi.refusal}


def api_of(path: str) -> tuple[str, list[str]] | None:
    """Which API a path belongs to and the rest of it split at slashes; None for no API."""
    if path.startswith(CXI_PREFIX):
        return "cxi", path[len(CXI_PREFIX):].strip("/").split("/")
    if path.startswith(V2_PREFIX):
        return "v2", path[len(V2_PREFIX):].strip("/").split("/")
    if path == "/v1" or path.startswith("/v1/"):
        return "v1", path.strip("/").split("/")[1:]
    return None


class FakeWootric(World, Faults):
    """The fake API: its data (World), its behaviour hooks (Faults) and its HTTP server. Every option and hook
    is described in the package's docstring (tests/fake/__init__.py)."""

    def __init__(self, *, seed: int = 1, client_id: str = "fake-client-id", client_secret: str = "fake-client-secret",
                 username: str = "demo@example.com", password: str = "fake-password", token_ttl: int = 7200,
                 honour_updated_filter: set[str] | None = None, shuffle_ties: bool = False,
                 whole_seconds: bool = False, account_tz: str = "America/Los_Angeles", clock_offset: float = 0.0,
                 late_visibility: float = 0.0, send_date: bool = True):
        World.__init__(self, seed=seed, honour_updated_filter=honour_updated_filter, shuffle_ties=shuffle_ties,
                       whole_seconds=whole_seconds, account_tz=account_tz, clock_offset=clock_offset,
                       late_visibility=late_visibility)
        self._init_faults()
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.token_ttl = token_ttl
        # Every answer carries a Date header on the API's clock; False sends none.
        self.send_date = send_date
        self.requests: list[dict[str, Any]] = []
        self.tokens_issued: list[str] = []
        self.refresh_tokens_issued: list[str] = []
        self.grants: list[str] = []  # the grant_type of every token issued, in order
        # Exceptions raised inside the fake (including by on_request actions); each also produced a 500.
        self.errors: list[BaseException] = []
        self.api_request_count = 0
        self._access_tokens: dict[str, float] = {}  # token -> epoch (this machine's) when it stops working
        self._refresh_tokens: set[str] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    def clear_log(self) -> None:
        """Forget the request log (the data, tokens and request numbering stay)."""
        with self._lock:
            self.requests = []

    def expire_tokens(self) -> None:
        """Make every access token issued so far stop working, as if its lifetime had run out."""
        with self._lock:
            self._access_tokens = dict.fromkeys(self._access_tokens, 0.0)


    def list_requests(self, stream: str | None = None) -> list[dict[str, Any]]:
        """Logged ``GET /v1/<stream>`` list requests, for one stream or all three."""
        if stream is not None:
            self._check_stream(stream)
        paths = {f"/v1/{name}" for name in ((stream,) if stream else STREAMS)}
        with self._lock:
            return [entry for entry in self.requests if entry["method"] == "GET" and entry["path"] in paths]

    # -- server --------------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeWootric:
        if self._server is not None:
            raise RuntimeError("the fake is already running")
        self._server = _Server(("127.0.0.1", port), _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-wootric-{self._server.server_address[1]}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # Idle keep-alive connections would otherwise keep being served after stop().
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url + "/v1"

    @property
    def oauth_url(self) -> str:
        return self.url + "/oauth/token"

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A tap config pointing at this fake, the CXI API included. Tests change rows at the fake's now and
        run the tap at once, so the margin for late commits is 0 unless a test sets it (the margin's own
        tests do): with the default, a change waits two minutes for the run after next."""
        config = {"client_id": self.client_id, "client_secret": self.client_secret,
                  "start_date": "2015-01-01T00:00:00Z", "api_url": self.api_url, "oauth_url": self.oauth_url,
                  "cxi_api_url": self.cxi_url, "commit_margin_seconds": 0}
        config.update(overrides)
        return config

    @property
    def cxi_url(self) -> str:
        return self.url + "/cxi/v1"

    # -- request handling (called from the server's threads) ----------------------------------------------

    def _handle(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> Reply:
        if path == "/oauth/token":
            if method != "POST":
                return 404, error_list("not_found", "Not Found"), {}
            return self._token(query, parse_form(body, headers.get("Content-Type", "")))
        if api_of(path) is not None:
            if method != "GET":
                return 405, error_list("method_not_allowed", "405 Not Allowed"), {}
            return self._api(path, query, headers.get("Authorization", ""))
        return 404, routes_v1.NOT_FOUND, {}

    def _token(self, query: dict[str, str], form: dict[str, str]) -> Reply:
        # The docs warn that credentials in a URL end up in logs (notes §1.1).
        if any(name in query for name in CREDENTIAL_FIELDS):
            return 400, oauth_error("invalid_request", "Credentials must be sent in the request body."), {}
        grant = form.get("grant_type")
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        with self._lock:
            if grant == "client_credentials":
                if form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret:
                    return 200, self._issue(grant, refresh=False), no_store
                return 401, oauth_error("invalid_client", INVALID_CLIENT), {}
            if grant == "password":
                account = query.get("account_token")
                if account is not None and not account.startswith("NPS-"):
                    return 404, {"error": "Not found", "status": 404}, {}  # RUDDER's captured reply (notes §1.1)
                if form.get("username") == self.username and form.get("password") == self.password:
                    return 200, self._issue(grant, refresh=True), no_store
                return 400, oauth_error("invalid_grant", INVALID_GRANT), {}
            if grant == "refresh_token":
                token = form.get("refresh_token")
                if token in self._refresh_tokens:
                    self._refresh_tokens.discard(token)  # rotated: each refresh token works once
                    return 200, self._issue(grant, refresh=True), no_store
                return 400, oauth_error("invalid_grant", INVALID_GRANT), {}
        if not grant:
            return 400, oauth_error("invalid_request", INVALID_REQUEST), {}
        return 400, oauth_error("unsupported_grant_type", UNSUPPORTED_GRANT), {}

    def _issue(self, grant: str, *, refresh: bool) -> dict[str, Any]:
        self.grants.append(grant)
        token = secrets.token_hex(32)
        # Lifetimes run on this machine's clock; the stamp in the body is the API's.
        self._access_tokens[token] = time.time() + self.token_ttl
        self.tokens_issued.append(token)
        body: dict[str, Any] = {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl,
                                "scope": "public", "created_at": int(self.now_epoch())}
        if refresh:
            body["refresh_token"] = secrets.token_hex(32)
            self._refresh_tokens.add(body["refresh_token"])
            self.refresh_tokens_issued.append(body["refresh_token"])
        return body

    def _api(self, path: str, query: dict[str, str], authorization: str) -> Reply:
        with self._lock:
            self.api_request_count += 1
            number = self.api_request_count
            actions = self._hooks.pop(number, [])
        # Outside the lock: actions call back into the fake, and other requests may be in flight.
        for action in actions:
            action(self)
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            now = self.now_epoch()
            retry_after = self._date_limited(number, now)
            if retry_after is not None:
                return 429, TOO_MANY, retry_after
            allowed, limit_headers = self._spend_rate_budget(path, now)
            failure = self._injected(number)
        if failure is not None:
            status, body, extra = failure
            if isinstance(status, str):
                # Transport faults break a real answer, so serve it first.
                if not self._authorised(authorization):
                    return 401, UNAUTHORIZED, limit_headers
                kind = status
                status, body = self._route(path, query, number)
                if kind == "garbage":
                    status, body = 200, "<html><body><h1>Service Unavailable</h1></body></html>"
                    extra = {**extra, "Content-Type": "text/html"}
            return status, body, {**limit_headers, **extra}
        if not allowed:
            return 429, TOO_MANY, limit_headers
        if not self._authorised(authorization):
            return 401, UNAUTHORIZED, limit_headers
        status, body = self._route(path, query, number)
        return status, body, limit_headers

    def _route(self, path: str, query: dict[str, str], number: int) -> Answer:
        """An authorised GET: refused if the account lacks the route or its API, else served by the API's routes."""
        found = api_of(path)
        assert found is not None
        api, parts = found
        refused = self.refusal_for(api, parts[0] if parts else "")
        if refused is not None:
            return REFUSALS[api](refused, status_word(refused))
        return ROUTES[api](self, parts, query, number)

    def _authorised(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        with self._lock:
            expires = self._access_tokens.get(token.strip())
        return expires is not None and time.time() <= expires

    def _log(self, method: str, path: str, query: dict[str, list[str]], status: int) -> None:
        params = {name: values[0] if len(values) == 1 else list(values) for name, values in query.items()}
        with self._lock:
            self.requests.append({"method": method, "path": path, "params": params, "status": status,
                                  "time": time.time()})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeWootric):
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-request (e.g. a killed tap) is normal in tests; anything else is a bug.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm and delayed ACKs every
    # keep-alive request would stall for ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        """As the base class, but the Date header shows the API's clock (or is left out with send_date=False)."""
        fake = self.server.fake
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())
        if fake.send_date:
            self.send_header("Date", http_date(fake.now_epoch()))

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            # Rack keeps the last of repeated plain parameters.
            status, payload, headers = fake._handle(method, parts.path, {k: v[-1] for k, v in query.items()},
                                                    self.headers, body)
        except Exception as exc:  # noqa: BLE001 - any bug in the fake reaches the test via fake.errors and a 500
            with fake._lock:
                fake.errors.append(exc)
            status, payload, headers = 500, error_list("internal_server_error", f"fake failed: {exc!r}"), {}
        # Logged before replying, so a client that has its answer always finds the request in the log.
        fake._log(method, parts.path, query, status)
        self._send(status, payload, headers)

    def _send(self, status: int, payload: Body, headers: dict[str, str]) -> None:
        if isinstance(payload, JsonRows):
            payload = ("[" + ",".join(payload) + "]").encode("utf-8")
            headers = {"Content-Type": "application/json", **headers}
        fault = headers.pop(FAULT_HEADER, None)
        seconds = float(headers.pop(FAULT_SECONDS_HEADER, "0") or 0)
        if fault == "reset":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "slow":
            time.sleep(seconds)
        if isinstance(payload, (bytes, str)):
            data = payload.encode("utf-8") if isinstance(payload, str) else payload
            content_type = "text/plain; charset=utf-8"
        else:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            content_type = "application/json"
        if not any(name.lower() == "content-type" for name in headers):
            headers = {"Content-Type": content_type, **headers}
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "truncated":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)


