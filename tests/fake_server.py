"""A fake Wootric API on 127.0.0.1 that behaves as ../shared/wootric-api-notes.md describes.

- OAuth: client_credentials, password (+ account_token query) and refresh_token grants; tokens expire.
- Lists (/v1/end_users, /v1/responses, /v1/declines): bare arrays, page 1..30, per_page 1..50
  (400 error_list beyond), per-endpoint default sorts, created[...] everywhere, updated[...] on
  end_users only unless configured, filters compared against sub-second stored times, output
  truncated to the second with a DST-aware Pacific offset.
- Hooks to change data while a sync runs, inject failures, and rate-limit with X-Rate-Limit-* headers.

Run it alone for a demo: python tests/fake_server.py --port 8765 --responses 1200
"""

from __future__ import annotations

import argparse
import json
import operator
import random
import secrets
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Union
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

STREAMS = ("end_users", "responses", "declines")
FIRST_IDS = {"end_users": 100000, "responses": 500000, "declines": 900000}
OPERATORS = ("gt", "gte", "lt", "lte", "eq")
TimeLike = Union[datetime, int, float]

TAGS = ["PERFORMANCE", "SUPPORT", "UX", "PRICING", "ONBOARDING", "BUGS"]
TEXTS = ["Great support!", "Too slow on Mondays", "Très bien, merci", "使いやすい", 'He said "wow"',
         "Pricing is confusing", "Love the new dashboard", "Could be better"]
# Real NPS data skews towards promoters.
SCORE_WEIGHTS = [2, 1, 1, 1, 2, 3, 4, 8, 14, 22, 30]
PLANS = ["Free", "Pro", "Enterprise", "Small Business"]


def as_utc(value: TimeLike) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return datetime.fromtimestamp(value, timezone.utc)


def error_list(status: str, message: str, field: Optional[str] = None) -> Dict[str, Any]:
    return {"type": "error_list", "errors": [{"status": status, "message": message, "field": field}]}


class FakeWootric:
    def __init__(self, *, seed: int = 1, client_id: str = "fake-client-id",
                 client_secret: str = "fake-client-secret-0123456789", username: str = "demo@example.com",
                 password: str = "fake-password-0123456789", token_ttl: int = 7200,
                 honour_updated_filter: Optional[set] = None, account_tz: str = "America/Los_Angeles"):
        self.rnd = random.Random(seed)
        self.client_id, self.client_secret = client_id, client_secret
        self.username, self.password = username, password
        self.token_ttl = token_ttl
        self.honour_updated_filter = set(honour_updated_filter or ())
        self.zone = ZoneInfo(account_tz)
        self.data: Dict[str, Dict[int, Dict[str, Any]]] = {stream: {} for stream in STREAMS}
        self.next_id = dict(FIRST_IDS)
        self.tokens: Dict[str, float] = {}  # access token -> expiry (epoch)
        self.refresh_tokens: set = set()
        self.tokens_issued: List[str] = []
        self.requests: List[Dict[str, Any]] = []
        self.hooks: Dict[int, List[Callable[[FakeWootric], None]]] = {}
        self.failures: Dict[int, tuple] = {}
        self.rate_limit: Optional[int] = None
        self.window_seconds = 60.0
        self._windows: Dict[str, List[float]] = {}
        self.api_request_count = 0
        self.lock = threading.RLock()
        self.server: Optional[ThreadingHTTPServer] = None

    # -- data ---------------------------------------------------------------

    def _new_id(self, stream: str) -> int:
        self.next_id[stream] += 1
        return self.next_id[stream]

    def _properties(self) -> Dict[str, Any]:
        rnd = self.rnd
        candidates = {
            "pricing_plan": rnd.choice(PLANS),
            "revenue amount": rnd.choice([str(rnd.randint(100, 9000)), rnd.randint(100, 9000)]),
            "purchase_date": rnd.randint(1_400_000_000, 1_700_000_000),
            "Department": rnd.choice(["Marketing", "Sales", "R&D", "Support"]),
            "seats": rnd.randint(1, 500),
            "score_avg": round(rnd.uniform(0, 10), 2),
        }
        return {k: v for k, v in candidates.items() if rnd.random() < 0.6}

    def _make(self, stream: str, created: datetime, updated: datetime) -> Dict[str, Any]:
        rnd = self.rnd
        record_id = self._new_id(stream)
        if stream == "end_users":
            return {
                "id": record_id, "created_at": created, "updated_at": updated,
                "email": rnd.choice([f"user{record_id}@example.com"] * 18 + [None, "Unknown"]),
                "last_surveyed": rnd.choice([None, updated]),
                "external_created_at": rnd.choice([None, int(created.timestamp()) - 86400]),
                "last_seen_at": rnd.choice([None, updated]),
                "properties": self._properties(),
                "phone_number": rnd.choice([None, f"+1415555{rnd.randint(1000, 9999)}"]),
                "external_id": rnd.choice([None, f"cust-{rnd.randint(1, 99999)}"]),
                "last_response": rnd.choice([None, {
                    "id": rnd.randint(1, 10**9), "score": rnd.choices(range(11), SCORE_WEIGHTS)[0],
                    "text": rnd.choice([None, *TEXTS]),
                    "survey": {"channel": rnd.choice(["web", "mobile:ios", "email"])}}]),
                "settings": {"email_nps": rnd.random() < 0.8, "mobile_nps": rnd.random() < 0.5,
                             "web_nps": True, "force_mobile_survey": rnd.choice([None, False, True]),
                             "force_web_survey": rnd.choice([None, False]),
                             "surveys_disabled_by_end_user": rnd.choice([None, False, True])},
            }
        users = self.data["end_users"]
        end_user_id = rnd.choice(list(users)) if users else rnd.randint(1, 10**6)
        base = {"id": record_id, "end_user_id": end_user_id, "survey_id": rnd.randint(1000, 1010),
                "ip_address": rnd.choice([None, f"203.0.113.{rnd.randint(1, 254)}"]),
                "origin_url": rnd.choice([None, "https://app.example.com/dashboard"]),
                "created_at": created, "updated_at": updated}
        if stream == "declines":
            base["updated_at"] = created
            base["end_user"] = {"properties": self._properties()}
            return base
        base.update({
            "score": rnd.choices(range(11), SCORE_WEIGHTS)[0], "text": rnd.choice([None, None, *TEXTS]),
            "completed": rnd.random() < 0.9,
            "excluded_from_calculations": rnd.random() < 0.05,
            "tags": rnd.sample(TAGS, rnd.choice([0, 0, 1, 2])),
            "notes": [] if rnd.random() < 0.8 else [{"id": rnd.randint(1, 10**6), "text": rnd.choice(TEXTS),
                                                      "created_at": updated}],
            "end_user": {"email": rnd.choice([None, f"user{end_user_id}@example.com"]),
                         "properties": self._properties()},
        })
        return base

    def generate(self, stream: str, count: int, start: TimeLike, end: TimeLike) -> List[int]:
        start_ts, end_ts = as_utc(start).timestamp(), as_utc(end).timestamp()
        ids = []
        with self.lock:
            for _ in range(count):
                created = as_utc(self.rnd.uniform(start_ts, end_ts))
                updated = created
                if self.rnd.random() < 0.3:
                    updated = as_utc(min(end_ts, created.timestamp() + self.rnd.uniform(0, 5 * 86400)))
                record = self._make(stream, created, updated)
                self.data[stream][record["id"]] = record
                ids.append(record["id"])
        return ids

    def add_burst(self, stream: str, second: TimeLike, count: int, *, field: str = "created_at",
                  same_instant: bool = False) -> List[int]:
        base = int(as_utc(second).timestamp())
        ids = []
        with self.lock:
            instant = as_utc(base + self.rnd.random())
            for _ in range(count):
                moment = instant if same_instant else as_utc(base + self.rnd.randint(0, 999_999) / 1e6)
                created = moment if field == "created_at" else as_utc(base - self.rnd.uniform(86400, 10 * 86400))
                record = self._make(stream, created, moment)
                if stream == "declines":
                    record["updated_at"] = record["created_at"]
                self.data[stream][record["id"]] = record
                ids.append(record["id"])
        return ids

    def update(self, stream: str, record_id: int, *, at: Optional[TimeLike] = None, **changes: Any) -> None:
        with self.lock:
            record = self.data[stream][record_id]
            record.update(changes)
            record["updated_at"] = as_utc(at) if at is not None else datetime.now(timezone.utc)

    def create(self, stream: str, *, at: Optional[TimeLike] = None) -> int:
        moment = as_utc(at) if at is not None else datetime.now(timezone.utc)
        with self.lock:
            record = self._make(stream, moment, moment)
            self.data[stream][record["id"]] = record
        return record["id"]

    def delete(self, stream: str, record_id: int) -> None:
        with self.lock:
            del self.data[stream][record_id]

    def records(self, stream: str) -> List[Dict[str, Any]]:
        with self.lock:
            return [dict(self.data[stream][key]) for key in sorted(self.data[stream])]

    # -- hooks --------------------------------------------------------------

    def on_request(self, n: int, action: Callable[[FakeWootric], None]) -> None:
        self.hooks.setdefault(n, []).append(action)

    def fail(self, n: int, status: int, body: Any = None, headers: Optional[Dict[str, str]] = None) -> None:
        self.failures[n] = (status, body if body is not None else error_list("error", f"injected {status}"),
                            headers or {})

    def list_requests(self, stream: Optional[str] = None) -> List[Dict[str, Any]]:
        paths = {f"/v1/{stream}"} if stream else {f"/v1/{s}" for s in STREAMS}
        return [r for r in self.requests if r["method"] == "GET" and r["path"] in paths]

    # -- rendering ----------------------------------------------------------

    def render_time(self, value: datetime) -> str:
        return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S %z")

    def render(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return self.render_time(value)
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        return value

    # -- server -------------------------------------------------------------

    def start(self, port: int = 0) -> FakeWootric:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> FakeWootric:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url + "/v1"

    @property
    def oauth_url(self) -> str:
        return self.url + "/oauth/token"

    def config(self, **overrides: Any) -> Dict[str, Any]:
        config = {"client_id": self.client_id, "client_secret": self.client_secret,
                  "start_date": "2015-01-01T00:00:00Z", "api_url": self.api_url, "oauth_url": self.oauth_url}
        config.update(overrides)
        return config

    # -- request handling ---------------------------------------------------

    def issue_token(self, with_refresh: bool) -> Dict[str, Any]:
        token = secrets.token_hex(32)
        self.tokens[token] = time.time() + self.token_ttl
        self.tokens_issued.append(token)
        body = {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl,
                "scope": "public", "created_at": int(time.time())}
        if with_refresh:
            refresh = secrets.token_hex(32)
            self.refresh_tokens.add(refresh)
            self.tokens_issued.append(refresh)
            body["refresh_token"] = refresh
        return body

    def handle_token(self, query: Dict[str, str], form: Dict[str, str]) -> tuple:
        if {"client_secret", "password"} & set(query):
            return 400, error_list("bad_request", "credentials must be sent in the request body"), {}
        grant = form.get("grant_type")
        with self.lock:
            if grant == "client_credentials":
                if form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret:
                    return 200, self.issue_token(False), {}
                return 401, {"error": "invalid_client", "error_description": "Client authentication failed due to "
                             "unknown client, no client authentication included, or unsupported authentication "
                             "method."}, {}
            if grant == "password":
                token = query.get("account_token")
                if (form.get("username") == self.username and form.get("password") == self.password
                        and (token is None or token.startswith("NPS-"))):
                    return 200, self.issue_token(True), {}
                return 400, {"error": "invalid_grant", "error_description": "The provided authorization grant is "
                             "invalid, expired, revoked, or does not match."}, {}
            if grant == "refresh_token":
                refresh = form.get("refresh_token")
                if refresh in self.refresh_tokens:
                    self.refresh_tokens.discard(refresh)
                    return 200, self.issue_token(True), {}
                return 400, {"error": "invalid_grant", "error_description": "The refresh token is invalid."}, {}
        return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}, {}

    def _rate_headers(self, path: str) -> tuple:
        """(allowed, headers) for the per-endpoint, per-window budget."""
        if self.rate_limit is None:
            return True, {}
        now = time.time()
        window_start = now - (now % self.window_seconds)
        reset = int(window_start + self.window_seconds)
        hits = [t for t in self._windows.get(path, []) if t >= window_start]
        allowed = len(hits) < self.rate_limit
        if allowed:
            hits.append(now)
        self._windows[path] = hits
        headers = {"X-Rate-Limit-Limit": str(self.rate_limit),
                   "X-Rate-Limit-Remaining": str(max(0, self.rate_limit - len(hits))),
                   "X-Rate-Limit-Reset": str(reset)}
        return allowed, headers

    def handle_api(self, path: str, query: Dict[str, str], authorization: str) -> tuple:
        with self.lock:
            self.api_request_count += 1
            number = self.api_request_count
            actions = self.hooks.pop(number, [])
        for action in actions:
            action(self)
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        expiry = self.tokens.get(token)
        if expiry is None or expiry < time.time():
            return 401, error_list("unauthorized", "Your access token is wrong"), {}
        with self.lock:
            allowed, headers = self._rate_headers(path)
        if not allowed:
            return 429, error_list("too_many_requests", "Rate limit exceeded"), headers
        if number in self.failures:
            status, body, extra = self.failures.pop(number)
            return status, body, {**headers, **extra}
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[1] in STREAMS:
            status, body = self.list(parts[1], query)
            return status, body, headers
        if len(parts) == 3 and parts[1] == "end_users" and parts[2].isdigit():
            record = self.data["end_users"].get(int(parts[2]))
            if record:
                return 200, self.render(record), headers
        return 404, error_list("record_not_found", "The record could not be found"), headers

    def list(self, stream: str, query: Dict[str, str]) -> tuple:
        def bounded(name: str, default: int, high: int) -> Optional[int]:
            raw = query.get(name, str(default))
            return int(raw) if raw.isdigit() and 1 <= int(raw) <= high else None

        page, per_page = bounded("page", 1, 30), bounded("per_page", 25, 50)
        for name, value in (("page", page), ("per_page", per_page)):
            if value is None:
                return 400, error_list("bad_request", f"{name} does not have a valid value", name)
        default_key, default_order = ("email", "asc") if stream == "end_users" else ("created_at", "desc")
        sort_key = query.get("sort_key", default_key)
        sort_order = query.get("sort_order", default_order)
        allowed_keys = ("email", "created_at", "updated_at") if stream == "end_users" else ("created_at", "updated_at")
        if sort_key not in allowed_keys:
            return 400, error_list("bad_request", "sort_key does not have a valid value", "sort_key")
        if sort_order not in ("asc", "desc"):
            return 400, error_list("bad_request", "sort_order does not have a valid value", "sort_order")
        filters = []
        for prefix, field in (("created", "created_at"), ("updated", "updated_at")):
            if prefix == "updated" and stream != "end_users" and stream not in self.honour_updated_filter:
                continue  # Grape ignores undeclared parameters
            for op in OPERATORS:
                raw = query.get(f"{prefix}[{op}]")
                if raw is None:
                    continue
                if not raw.lstrip("-").isdigit():
                    return 400, error_list("bad_request", f"{prefix}[{op}] is invalid", f"{prefix}[{op}]")
                filters.append((field, COMPARE[op], as_utc(int(raw))))
        with self.lock:
            rows = [r for r in self.data[stream].values() if all(compare(r[f], v) for f, compare, v in filters)]
            if sort_key == "email":
                rows.sort(key=lambda r: (r.get("email") or "", r["id"]), reverse=sort_order == "desc")
            else:
                rows.sort(key=lambda r: (r[sort_key], r["id"]), reverse=sort_order == "desc")
            window = rows[(page - 1) * per_page: page * per_page]
            return 200, [self.render(r) for r in window]


COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le, "eq": operator.eq}


def _handler_for(fake: FakeWootric):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every keep-alive request.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, body: Any, headers: Dict[str, str]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _query(self) -> tuple:
            parts = urlsplit(self.path)
            return parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}

        def do_POST(self) -> None:
            path, query = self._query()
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8") if length else ""
            if path != "/oauth/token":
                status, body, headers = 404, error_list("record_not_found", "not found"), {}
            else:
                form = _parse_form(raw, self.headers.get("Content-Type", ""))
                status, body, headers = fake.handle_token(query, form)
            fake.requests.append({"method": "POST", "path": path, "params": query, "status": status,
                                  "time": time.time()})
            self._send(status, body, headers)

        def do_GET(self) -> None:
            path, query = self._query()
            if path.startswith("/v1/"):
                status, body, headers = fake.handle_api(path, query, self.headers.get("Authorization", ""))
            else:
                status, body, headers = 404, error_list("record_not_found", "not found"), {}
            fake.requests.append({"method": "GET", "path": path, "params": query, "status": status,
                                  "time": time.time()})
            self._send(status, body, headers)

    return Handler


def _parse_form(raw: str, content_type: str) -> Dict[str, str]:
    if content_type.startswith("multipart/form-data"):
        boundary = content_type.split("boundary=")[-1]
        form = {}
        for part in raw.split("--" + boundary):
            if 'name="' in part:
                name = part.split('name="')[1].split('"')[0]
                form[name] = part.split("\r\n\r\n", 1)[-1].rstrip("\r\n-")
        return form
    return {k: v[-1] for k, v in parse_qs(raw).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake Wootric API for demos and tests")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-users", type=int, default=300)
    parser.add_argument("--responses", type=int, default=1200)
    parser.add_argument("--declines", type=int, default=200)
    parser.add_argument("--years", type=float, default=3)
    parser.add_argument("--token-ttl", type=int, default=7200)
    args = parser.parse_args()
    fake = FakeWootric(seed=args.seed, token_ttl=args.token_ttl)
    end = datetime.now(timezone.utc) - timedelta(hours=1)
    start = end - timedelta(days=365 * args.years)
    for stream, count in (("end_users", args.end_users), ("responses", args.responses),
                          ("declines", args.declines)):
        fake.generate(stream, count, start, end)
    fake.start(args.port)
    print(json.dumps({"api_url": fake.api_url, "oauth_url": fake.oauth_url, "client_id": fake.client_id,
                      "client_secret": fake.client_secret}), flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    fake.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
