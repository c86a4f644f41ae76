"""A fake Wootric REST API v1 on 127.0.0.1 for tests and demos.

It follows the shared API notes, wootric-api-notes.md (sections 1.1, 2.2, 2.3, 3, 4, 5 and 9):

- ``POST /oauth/token`` with the client_credentials, password and refresh_token grants;
  access tokens expire after ``token_ttl`` seconds.
- ``GET /v1/end_users``, ``/v1/responses``, ``/v1/declines``: bare JSON arrays, ``page`` 1..30,
  ``per_page`` 1..50 (400 ``error_list`` outside), per-endpoint default sorts, ``created[op]`` filters
  everywhere and ``updated[op]`` on end_users only (unless configured), all compared against the stored
  microsecond times while the output shows whole seconds in the account's DST-aware offset.
- ``GET /v1/nps_summary``, ``/v1/survey_templates``, ``/v2/email_stats`` and ``/v2/email_stats/sources``
  (notes §2.1, §3.5). The summaries are computed from the fake's own responses and declines over whole days
  of the account's zone: NPS leaves out excluded responses; the e-mail funnel is drawn per day from a seed,
  around the day's responses (the fake's account surveys by e-mail only, so ``total_responses`` is the
  number of responses created in the period).
- Two switches for ties, which the notes cannot settle (§2.3, §7 pitfalls 2-3): ``whole_seconds`` stores
  whole seconds, so filters compare whole seconds and every row of a second ties; ``shuffle_ties`` gives
  tied rows a fresh random order on every request, as a database may for ORDER BY on a non-unique key.
- Hooks to change data mid-sync, inject failures and enforce ``X-Rate-Limit-*`` budgets.

In tests it runs in a daemon thread (``with FakeWootric(seed=3) as fake: ...``); for a demo run it alone::

    python tests/fake_wootric.py --port 8765 --seed 7 --end-users 300 --responses 1200 --declines 200 --years 3
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import copy
import json
import math
import operator
import random
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from datetime import time as clock_time
from email import policy
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # only for annotations; typing.Self needs Python 3.11
    from typing_extensions import Self

STREAMS = ("end_users", "responses", "declines")
FIRST_ID = {"end_users": 100000, "responses": 500000, "declines": 900000}
MAX_PAGE = 30
MAX_PER_PAGE = 50
DEFAULT_PER_PAGE = 25
COMPARATORS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le, "eq": operator.eq}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MICROSECOND = timedelta(microseconds=1)
INTEGER = re.compile(r"-?\d+")
CXI_PREFIX = "/cxi/v1/"
V2_PREFIX = "/v2/"
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
CXI_ONBOARDING_MESSAGE = "Please complete the onboarding flow first."
TRANSPORT_FAULTS = ("reset", "slow", "truncated", "garbage")
# Private headers that carry a transport fault from the API logic to the HTTP handler; never sent.
FAULT_HEADER = "X-Fake-Fault"
FAULT_SECONDS_HEADER = "X-Fake-Fault-Seconds"
CREDENTIAL_FIELDS = ("client_id", "client_secret", "username", "password", "refresh_token")

INVALID_CLIENT = ("Client authentication failed due to unknown client, no client authentication included, "
                  "or unsupported authentication method.")
INVALID_GRANT = ("The provided authorization grant is invalid, expired, revoked, does not match the redirection "
                 "URI used in the authorization request, or was issued to another client.")
INVALID_REQUEST = ("The request is missing a required parameter, includes an unsupported parameter value, "
                   "or is otherwise malformed.")
UNSUPPORTED_GRANT = "The authorization grant type is not supported by the authorization server."

# Text values deliberately carry non-ASCII and quotes so that encoding bugs show up.
TEXTS = ("Great support!", "Très bien, merci", "使いやすいです。日本語のサポートも良い", 'He said "wow" twice',
         "Don't change a thing", "Pricing is confusing", "Le délai de réponse est trop long",
         "Love the new dashboard 🎉", "Could be better; see ticket #42", "Backslash \\ and 'single' quotes")
NOTE_TEXTS = ("Called back, résolu", "Escalated to 日本 team", 'Customer wrote "thanks"')
TAGS = ("PERFORMANCE", "SUPPORT", "UX", "PRICING", "ONBOARDING", "BUGS")
FIRST_NAMES = ("ana", "bob", "chloé", "dmitri", "emma", "fatima", "gus", "hiro", "ines", "jon", "kim", "lena")
LAST_NAMES = ("smith", "garcia", "müller", "tanaka", "okafor", "dubois", "rossi", "nguyen", "o'brien")
DOMAINS = ("example.com", "example.org", "example.net")
PLANS = ("Free", "Pro", "Enterprise", "Small Business")
DEPARTMENTS = ("Marketing", "Sales", "R&D", "Support", "Ventes & Marketing", "研究開発")
CHANNELS = ("web", "mobile:ios", "email")
ORIGINS = ("https://app.example.com/dashboard", "https://app.example.com/settings?tab=billing",
           "https://www.example.org/pricing")
# Real NPS data skews towards promoters.
SCORE_WEIGHTS = (2, 1, 1, 1, 2, 3, 4, 8, 14, 22, 30)

Body = Any  # JSON-serialisable value, or str/bytes sent as they are
Reply = tuple[int, Body, dict[str, str]]  # status, body, extra headers


def error_list(status: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The v1 API's error envelope (notes §5)."""
    return {"type": "error_list", "errors": [{"status": status, "message": message, "field": field}]}


def oauth_error(error: str, description: str) -> dict[str, str]:
    """The token endpoint's RFC 6749 error body (notes §1.1)."""
    return {"error": error, "error_description": description}


def to_utc(value: datetime | float) -> datetime:
    """An aware datetime or epoch seconds as a plain UTC datetime (pendulum instances become stdlib ones)."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime or epoch seconds")
        utc = value.astimezone(timezone.utc)
        return datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond,
                        tzinfo=timezone.utc)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected an aware datetime or epoch seconds, got {value!r}")
    if isinstance(value, int):
        return EPOCH + timedelta(seconds=value)
    return EPOCH + timedelta(microseconds=round(value * 1_000_000))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


class FakeWootric:
    """The fake API: its data, its behaviour hooks and its HTTP server."""

    def __init__(self, *, seed: int = 1, client_id: str = "fake-client-id", client_secret: str = "fake-client-secret",
                 username: str = "demo@example.com", password: str = "fake-password", token_ttl: int = 7200,
                 honour_updated_filter: set[str] | None = None, shuffle_ties: bool = False,
                 whole_seconds: bool = False, account_tz: str = "America/Los_Angeles"):
        unknown = set(honour_updated_filter or ()) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown streams in honour_updated_filter: {sorted(unknown)}")
        self.seed = seed
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.token_ttl = token_ttl
        self.honour_updated_filter = set(honour_updated_filter or ())
        # Tied rows (equal stored sort values) in a new random order on every request, on every list path.
        self.shuffle_ties = shuffle_ties
        # created_at and updated_at stored cut to the whole second, so that created[gt]=T excludes every row
        # shown as T. It applies as rows are stored, hence a constructor argument; the output is the same.
        self.whole_seconds = whole_seconds
        self.account_tz = account_tz
        self.zone = ZoneInfo(account_tz)
        self.rate_limit: int | None = None
        self.window_seconds: float = 60
        # Seconds every GET under /v1 takes before it is answered (a slow API).
        self.latency: float = 0.0
        # Streams whose sort_key=updated_at is silently ignored (created_at order instead).
        self.ignore_updated_sort: set[str] = set()
        # Serve time-range queries from sorted indexes (False: filter and sort every row, the reference path).
        self.indexed = True
        # Faults served so far: (request number, kind), for tests that count retries.
        self.faults_served: list[tuple[int, str | int]] = []

        # GET /v1/segments (segments have no id; names are unique).
        self.segments: list[dict[str, Any]] = []
        # The CXI API (notes §6), under /cxi/v1. cxi_status: None serves it; 424 (onboarding not finished),
        # 401 or 403 answers every CXI request with that status instead.
        self.cxi_status: int | None = None
        self.cxi_omit_total = False  # leave total_count out of the responses envelope
        self.cxi_responses: dict[int, dict[str, Any]] = {}
        self.cxi_imports: list[dict[str, Any]] = []
        self.cxi_projects: list[dict[str, Any]] = []
        self.cxi_tags: list[dict[str, Any]] = []  # top-level tags, children nested
        # GET /v1/survey_templates (notes §3.5): the templates and which one is the default.
        self.survey_templates: list[dict[str, Any]] = [
            {"id": 123, "name": "Your default NPS survey", "default_language": "en",
             "languages": [{"code": "en", "name": "English"}], "non_configured_language_count": 1,
             "custom_samplings": []},
            {"id": 124, "name": "Enquête de satisfaction", "default_language": "fr",
             "languages": [{"code": "fr", "name": "French"}, {"code": "en", "name": "English"}],
             "non_configured_language_count": 0, "custom_samplings": [{"id": 9, "name": "Pro plan", "rate": 50}]},
        ]
        self.default_survey_template_id: int | None = 123
        # The v2 API (e-mail stats). v2_status: None serves it; a status (401, 403, 404) answers every v2
        # request with it, as for an account without e-mail surveys.
        self.v2_status: int | None = None
        self.email_sources: dict[str, list[dict[str, Any]]] = {
            "ongoing": [{"id": "email_api", "name": "Email API *"}, {"id": "webhook_trigger", "name": "Webhook *"}],
            "sends": [{"id": 1, "name": "Q1_file.csv", "date": "Jan 11, 2024  9:01AM"},
                      {"id": 2, "name": "Q2_renewals.csv", "date": "Apr  2, 2024 10:15AM"}],
        }
        self.requests: list[dict[str, Any]] = []
        self.tokens_issued: list[str] = []
        self.refresh_tokens_issued: list[str] = []
        # Exceptions raised inside the fake (including by on_request actions); each also produced a 500.
        self.errors: list[BaseException] = []
        self.api_request_count = 0

        self._rng = random.Random(seed)
        self._data: dict[str, dict[int, dict[str, Any]]] = {stream: {} for stream in STREAMS}
        self._last_id = dict(FIRST_ID)
        self._access_tokens: dict[str, float] = {}  # token -> epoch when it stops working
        self._refresh_tokens: set[str] = set()
        self._hooks: dict[int, list[Callable[[FakeWootric], Any]]] = {}
        self._failures: dict[int, tuple[int | str, Body, dict[str, str]]] = {}
        self._chaos: tuple[float, tuple[int | str, ...], random.Random] | None = None
        self._rate_windows: dict[str, tuple[int, int]] = {}  # path -> (window number, requests used)
        self._lock = threading.RLock()
        # (stream, field) -> (keys, rows) sorted by (field, id); dropped whenever the stream's data changes.
        self._indexes: dict[tuple[str, str], tuple[list[datetime], list[dict[str, Any]]]] = {}
        self._user_ids: list[int] = []  # end user ids in insertion order, for fast random picks
        self._json_cache: dict[tuple[str, int], str] = {}  # (stream, id) -> the rendered row as JSON
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- data ---------------------------------------------------------------------------------------------

    def generate(self, stream: str, count: int, start: datetime | float, end: datetime | float) -> list[int]:
        """Add ``count`` records created uniformly at random (to the microsecond) in [start, end)."""
        self._check_stream(stream)
        low, high = micros(to_utc(start)), micros(to_utc(end))
        if high <= low:
            raise ValueError("generate() needs start < end")
        with self._lock:
            # Ids follow creation time within a batch, as database ids roughly do.
            moments = sorted(self._rng.randrange(low, high) for _ in range(count))
            # Updates happen before `end` and never in the future.
            ceiling = min(high, micros(utc_now()))
            ids = []
            for created in moments:
                updated = created
                if stream != "declines" and self._rng.random() < 0.4:
                    room = max(0, min(ceiling - created, 5 * 86400 * 1_000_000))
                    updated = created + self._rng.randrange(room + 1)
                ids.append(self._add(stream, from_micros(created), from_micros(updated)))
        return ids

    def add_burst(self, stream: str, second: datetime | float, count: int, *, field: str = "created_at",
                  same_instant: bool = False) -> list[int]:
        """Add ``count`` records whose ``field`` lies inside one whole second.

        Microseconds are drawn from 1..999999 (distinct unless ``same_instant``), so every record is stored
        strictly after ``second``.000000: a ``[gt]=second`` filter returns all of them, ``[lte]=second`` none.
        With ``whole_seconds`` they are all stored as ``second`` itself, and the other way round.
        """
        self._check_stream(stream)
        if field not in ("created_at", "updated_at"):
            raise ValueError("field must be created_at or updated_at")
        if not 0 <= count <= 999_999:
            raise ValueError("a burst holds at most 999999 distinct microseconds")
        base = to_utc(second).replace(microsecond=0) if isinstance(second, datetime) else to_utc(math.floor(second))
        base_us = micros(base)
        with self._lock:
            if same_instant:
                offsets = [self._rng.randrange(1, 1_000_000)] * count
            else:
                offsets = sorted(self._rng.sample(range(1, 1_000_000), count))
            ids = []
            for offset in offsets:
                moment = base_us + offset
                if field == "created_at":
                    created = moment
                    lag = 0 if stream == "declines" or self._rng.random() < 0.5 else self._rng.randrange(120_000_000)
                    updated = created + lag
                else:
                    updated = moment
                    created = moment - self._rng.randrange(86400 * 1_000_000, 30 * 86400 * 1_000_000)
                ids.append(self._add(stream, from_micros(created), from_micros(updated)))
        return ids

    def update(self, stream: str, record_id: int, *, at: datetime | float | None = None, **changes: Any) -> None:
        """Apply field changes (e.g. ``score=3``) and set ``updated_at`` to ``at`` (default: now)."""
        self._check_stream(stream)
        if "id" in changes:
            raise ValueError("update() cannot change id")
        if "updated_at" in changes:
            raise ValueError("pass the new updated_at as at=")
        with self._lock:
            record = self._record(stream, record_id)
            unknown = set(changes) - set(record)
            if unknown:
                raise ValueError(f"{stream} records have no fields {sorted(unknown)}")
            for key, value in changes.items():
                record[key] = to_utc(value) if isinstance(value, datetime) else copy.deepcopy(value)
            if isinstance(record["created_at"], datetime):
                record["created_at"] = self._stored_time(record["created_at"])
            record["updated_at"] = self._stored_time(utc_now() if at is None else to_utc(at))
            self._changed(stream)
            self._json_cache.pop((stream, record_id), None)

    def corrupt(self, stream: str, record_id: int, **fields: Any) -> None:
        """Set raw values, unknown fields and wrong types included, as an unannounced API change would;
        ``updated_at`` is left alone. Datetime values are rendered like the API's own."""
        self._check_stream(stream)
        with self._lock:
            self._record(stream, record_id).update(copy.deepcopy(fields))
            self._changed(stream)
            self._json_cache.pop((stream, record_id), None)

    def create(self, stream: str, *, at: datetime | float | None = None) -> int:
        """Add one record created and updated at ``at`` (default: now); returns its id."""
        self._check_stream(stream)
        moment = utc_now() if at is None else to_utc(at)
        with self._lock:
            return self._add(stream, moment, moment)

    def delete(self, stream: str, record_id: int) -> None:
        self._check_stream(stream)
        with self._lock:
            self._record(stream, record_id)
            del self._data[stream][record_id]
            self._changed(stream)
            self._json_cache.pop((stream, record_id), None)
            if stream == "end_users":
                self._user_ids.remove(record_id)

    def records(self, stream: str) -> list[dict[str, Any]]:
        """Deep copies of the stored records (UTC datetimes with microseconds), sorted by id."""
        self._check_stream(stream)
        with self._lock:
            return [copy.deepcopy(self._data[stream][key]) for key in sorted(self._data[stream])]

    def ids(self, stream: str) -> set[int]:
        """Ids of the stored records (cheap, unlike records())."""
        self._check_stream(stream)
        with self._lock:
            return set(self._data[stream])

    def warm(self) -> None:
        """Render every row and build the sort indexes now, as the first requests would: a timed run
        then measures the tap, not the fake's first pass over its data."""
        with self._lock:
            for stream in STREAMS:
                for row in self._data[stream].values():
                    self._row_json(stream, row)
                for field in ("created_at", "updated_at"):
                    self._index(stream, field)

    def clear_log(self) -> None:
        """Forget the request log (the data, tokens and request numbering stay)."""
        with self._lock:
            self.requests = []

    def expire_tokens(self) -> None:
        """Make every access token issued so far stop working, as if its lifetime had run out."""
        with self._lock:
            self._access_tokens = dict.fromkeys(self._access_tokens, 0.0)

    def _check_stream(self, stream: str) -> None:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")

    def _record(self, stream: str, record_id: int) -> dict[str, Any]:
        try:
            return self._data[stream][record_id]
        except KeyError:
            raise KeyError(f"no {stream} record with id {record_id}") from None

    def _add(self, stream: str, created: datetime, updated: datetime) -> int:
        self._last_id[stream] += 1
        record_id = self._last_id[stream]
        builder = {"end_users": self._end_user, "responses": self._response, "declines": self._decline}[stream]
        record = builder(record_id, created, updated)
        # Cut after building, so that one seed draws the same rows with or without whole_seconds.
        record["created_at"], record["updated_at"] = self._stored_time(created), self._stored_time(updated)
        self._data[stream][record_id] = record
        self._changed(stream)
        if stream == "end_users":
            self._user_ids.append(record_id)
        return record_id

    def _stored_time(self, moment: datetime) -> datetime:
        return moment.replace(microsecond=0) if self.whole_seconds else moment

    def _changed(self, stream: str) -> None:
        for key in [key for key in self._indexes if key[0] == stream]:
            del self._indexes[key]

    def _index(self, stream: str, field: str) -> tuple[list[datetime], list[dict[str, Any]]]:
        key = (stream, field)
        if key not in self._indexes:
            rows = sorted(self._data[stream].values(), key=lambda row: (row[field], row["id"]))
            self._indexes[key] = ([row[field] for row in rows], rows)
        return self._indexes[key]

    # Every draw below comes from self._rng in a fixed order, so one seed always yields the same data.

    def _between(self, low: datetime, high: datetime) -> datetime:
        return from_micros(self._rng.randint(micros(low), micros(high)))

    def _maybe(self, probability: float, value: Any) -> Any:
        return value if self._rng.random() < probability else None

    def _properties(self) -> dict[str, Any]:
        rnd = self._rng
        if rnd.random() < 0.15:
            return {}
        candidates = {
            "pricing_plan": rnd.choice(PLANS),
            # Mixed types on purpose: the real API returns both (notes §3.2).
            "revenue amount": rnd.choice((str(rnd.randint(100, 9000)), rnd.randint(100, 9000))),
            "purchase_date": rnd.randint(1_400_000_000, 1_700_000_000),
            "Department": rnd.choice(DEPARTMENTS),
            "seats": rnd.randint(1, 500),
            "score_avg": round(rnd.uniform(0, 10), 2),
        }
        return {key: value for key, value in candidates.items() if rnd.random() < 0.6}

    def _score(self) -> int:
        return self._rng.choices(range(11), SCORE_WEIGHTS)[0]

    def _end_user(self, record_id: int, created: datetime, updated: datetime) -> dict[str, Any]:
        rnd = self._rng
        draw = rnd.random()
        if draw < 0.05:
            email = None
        elif draw < 0.08:
            email = "Unknown"  # what the mobile SDK sends when it knows no email (notes §3.2)
        else:
            email = f"{rnd.choice(FIRST_NAMES)}.{rnd.choice(LAST_NAMES)}{record_id}@{rnd.choice(DOMAINS)}"
        last_response = None
        if rnd.random() < 0.6:
            last_response = {"id": rnd.randint(1, 10**9), "score": self._score(),
                             "text": self._maybe(0.7, rnd.choice(TEXTS)),
                             "survey": {"channel": rnd.choice(CHANNELS)}}
        phone = rnd.choice((f"+1415555{rnd.randint(0, 9999):04d}", f"+8190{rnd.randint(0, 99999999):08d}"))
        return {
            "id": record_id,
            "created_at": created,
            "updated_at": updated,
            "email": email,
            "last_surveyed": self._maybe(0.6, self._between(created, updated)),
            "external_created_at": self._maybe(0.5, int(created.timestamp()) - rnd.randint(0, 400 * 86400)),
            "last_seen_at": self._maybe(0.5, self._between(created, updated)),
            "properties": self._properties(),
            "phone_number": self._maybe(0.3, phone),
            "external_id": self._maybe(0.5, f"cust-{rnd.randint(1, 99999)}"),
            "last_response": last_response,
            "settings": {
                "email_nps": rnd.random() < 0.8,
                "mobile_nps": rnd.random() < 0.5,
                "web_nps": rnd.random() < 0.9,
                "force_mobile_survey": rnd.choice((None, False, True)),
                "force_web_survey": rnd.choice((None, False, True)),
                "surveys_disabled_by_end_user": rnd.choice((None, False, True)),
            },
        }

    def _survey_context(self) -> dict[str, Any]:
        """Fields shared by responses and declines; the end user's data is copied as it was at that time."""
        rnd = self._rng
        users = self._data["end_users"]
        user = users[rnd.choice(self._user_ids)] if users else None
        return {
            "end_user_id": user["id"] if user else rnd.randint(1, 10**8),
            "survey_id": rnd.randint(731240, 731249),
            "ip_address": self._maybe(0.8, f"203.0.113.{rnd.randint(1, 254)}"),
            "origin_url": self._maybe(0.7, rnd.choice(ORIGINS)),
            "email": user["email"] if user else self._maybe(0.5, f"someone{rnd.randint(1, 999)}@example.com"),
            "properties": copy.deepcopy(user["properties"]) if user else self._properties(),
        }

    def _response(self, record_id: int, created: datetime, updated: datetime) -> dict[str, Any]:
        rnd = self._rng
        context = self._survey_context()
        notes = []
        if rnd.random() < 0.1:
            notes = [{"id": rnd.randint(1, 10**6), "text": rnd.choice(NOTE_TEXTS),
                      "created_at": self._between(created, updated)} for _ in range(rnd.randint(1, 2))]
        return {
            "id": record_id,
            "end_user_id": context["end_user_id"],
            "survey_id": context["survey_id"],
            "score": self._score(),
            "text": self._maybe(0.7, rnd.choice(TEXTS)),
            "completed": rnd.random() < 0.9,
            "excluded_from_calculations": rnd.random() < 0.05,
            "ip_address": context["ip_address"],
            "origin_url": context["origin_url"],
            "created_at": created,
            "updated_at": updated,
            "tags": rnd.sample(TAGS, rnd.choice((0, 0, 0, 1, 2))),
            "notes": notes,
            "end_user": {"email": context["email"], "properties": context["properties"]},
        }

    def _decline(self, record_id: int, created: datetime, updated: datetime) -> dict[str, Any]:
        context = self._survey_context()
        return {
            "id": record_id,
            "end_user_id": context["end_user_id"],
            "survey_id": context["survey_id"],
            "ip_address": context["ip_address"],
            "origin_url": context["origin_url"],
            "created_at": created,
            "updated_at": updated,
            "end_user": {"properties": context["properties"]},
        }

    # -- segments and CXI ----------------------------------------------------------------------------------

    def generate_segments(self, count: int) -> None:
        with self._lock:
            for number in range(count):
                self.segments.append({"name": f"segment_{number:03d}",
                                      "data_type": self._rng.choice(("string", "date", "integer")),
                                      "created_at": from_micros(self._rng.randrange(1_400_000_000_000_000,
                                                                                    1_700_000_000_000_000))})

    def generate_cxi(self, *, responses: int, imports: int = 3, projects: int = 2, tags: int = 4,
                     start: datetime | float = 1_500_000_000, end: datetime | float = 1_700_000_000,
                     from_wootric: float = 0.25) -> None:
        """CXI data: projects, tags (each with two children), imports, and responses. Responses are spread over
        the imports, except a share ``from_wootric`` that come from Wootric itself and belong to no import."""
        rnd = self._rng
        low, high = int(to_utc(start).timestamp()), int(to_utc(end).timestamp())
        with self._lock:
            base = 70_000 + len(self.cxi_projects)
            for number in range(projects):
                self.cxi_projects.append({"id": base + number, "name": f"Project {base + number}",
                                          "response_count": 0, "created_at": rnd.randint(low, high)})
            next_tag = 80_000 + 10 * len(self.cxi_tags)
            for number in range(tags):
                children = [{"id": next_tag + 1 + child, "name": f"tag_{number}_{child}",
                             "display_name": f"Tag {number}.{child}", "description": None, "mode": "manual",
                             "enabled": True, "scope_by_parent": True, "text_match_terms": [], "filter_rules": {},
                             "response_count": rnd.randint(0, 50), "usage": rnd.randint(0, 100),
                             "sentiment_breakdown": {"positive": 1, "neutral": 0, "negative": 2, "null": 0},
                             "children": []} for child in range(2)]
                self.cxi_tags.append({"id": next_tag, "name": f"tag_{number}", "display_name": f"Tag {number}",
                                      "description": "Generated", "mode": rnd.choice(("manual", "smart", "text_match")),
                                      "enabled": True, "scope_by_parent": False, "text_match_terms": ["slow"],
                                      "filter_rules": {"all": []}, "response_count": rnd.randint(0, 500),
                                      "usage": rnd.randint(0, 100),
                                      "sentiment_breakdown": {"positive": 5, "neutral": 3, "negative": 1, "null": 0},
                                      "children": children})
                next_tag += 10
            base = 60_000 + len(self.cxi_imports)
            new_imports = [{"id": base + number, "name": f"Survey export {number}.csv", "source": "csv",
                            "metric_type": "nps", "language": "en", "secondary_product_category_id": None,
                            "response_count": 0, "created_at": rnd.randint(low, high), "sample_analyzed": False}
                           for number in range(imports)]
            self.cxi_imports.extend(new_imports)
            all_tags = [tag for top in self.cxi_tags for tag in (top, *top["children"])]
            next_id = 1_000_000 + len(self.cxi_responses)
            for _ in range(responses):
                next_id += 1
                source = rnd.choice(new_imports) if new_imports and rnd.random() >= from_wootric else None
                if source is not None:
                    source["response_count"] += 1
                tags_of = rnd.sample(all_tags, rnd.choice((0, 1, 2))) if all_tags else []
                self.cxi_responses[next_id] = {
                    "id": next_id, "import_id": source["id"] if source else None,
                    "project_ids": [rnd.choice(self.cxi_projects)["id"]] if self.cxi_projects else [],
                    "feedback": rnd.choice(TEXTS), "translated_feedback": None,
                    "user_id": f"user-{rnd.randint(1, 999)}",
                    "feedback_date": rnd.randint(low, high), "score": self._score(),
                    "metric_type": "nps",
                    "custom_properties": [{"key": "plan", "data_type": "string", "value": rnd.choice(PLANS)},
                                          {"key": "seats", "data_type": "integer", "value": rnd.randint(1, 90)}],
                    "tags": [{key: tag[key] for key in ("id", "name", "display_name", "description", "mode",
                                                        "text_match_terms", "filter_rules")}
                             | {"sentiment": rnd.choice(("positive", "negative", "neutral"))} for tag in tags_of],
                    "sentiment": rnd.choice(("positive", "negative", "neutral", None)),
                    "wootric_response_id": None if source else rnd.randint(1, 10**7),
                    "wootric_account_id": 4242,
                }

    # -- summaries (nps_summary, email_stats) -----------------------------------------------------------------

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """The UTC instants where an account-local day starts and the next one starts (23 or 25 hours
        apart on daylight-saving days)."""
        start = datetime.combine(day, clock_time(), self.zone).astimezone(timezone.utc)
        end = datetime.combine(day + timedelta(days=1), clock_time(), self.zone).astimezone(timezone.utc)
        return start, end

    def _created_between(self, stream: str, low: datetime, high: datetime) -> list[dict[str, Any]]:
        keys, rows = self._index(stream, "created_at")
        return rows[bisect.bisect_left(keys, low):bisect.bisect_left(keys, high)]

    def nps_summary(self, start: date, end: date) -> dict[str, Any]:
        """What GET /v1/nps_summary answers for the account-local days start..end (both included)."""
        with self._lock:
            low, high = self.day_bounds(start)[0], self.day_bounds(end)[1]
            responses = self._created_between("responses", low, high)
            declines = self._created_between("declines", low, high)
            counted = [row["score"] for row in responses
                       if not row["excluded_from_calculations"] and row["score"] is not None]
            email = self._email_raw(start, end)
        promoters = sum(score >= 9 for score in counted)
        detractors = sum(score <= 6 for score in counted)
        shown = len(responses) + len(declines)
        return {"nps": _rounded(100 * (promoters - detractors) / len(counted)) if counted else 0,
                "responses": len(counted), "detractors": detractors,
                "passives": len(counted) - promoters - detractors, "promoters": promoters,
                "response_rate": _rounded(100 * len(responses) / shown) if shown else 0,
                "email_response_rate": _rounded(100 * email["total_responses"] / email["delivered"])
                if email["delivered"] else 0}

    def _email_day(self, day: date) -> dict[str, int]:
        """One day's e-mail funnel: drawn from a seed of its own, around the responses of that day."""
        rng = random.Random(f"email-{self.seed}-{day.isoformat()}")
        responses = len(self._created_between("responses", *self.day_bounds(day)))
        if responses == 0 and rng.random() < 0.6:
            return dict.fromkeys(_EMAIL_COUNTS, 0)
        opened = responses + rng.randint(0, 3 + responses)
        delivered = opened + rng.randint(0, 5 + opened)
        bounce, dropped = rng.randint(0, 2), rng.choice((0, 0, 0, 1))
        processed = delivered + bounce + dropped
        return {"processed": processed, "bounce": bounce, "dropped": dropped, "delivered": delivered,
                "opted_out": rng.randint(0, 2), "not_delivered": bounce + dropped, "open": opened,
                "spamreport": min(delivered, rng.choice((0,) * 9 + (1,))), "not_eligible": rng.randint(0, 2),
                "total_surveys": processed, "total_responses": responses}

    def _email_raw(self, start: date, end: date) -> dict[str, int]:
        totals = dict.fromkeys(_EMAIL_COUNTS, 0)
        for offset in range((end - start).days + 1):
            for key, value in self._email_day(start + timedelta(days=offset)).items():
                totals[key] += value
        return totals

    def email_stats(self, start: date, end: date) -> dict[str, Any]:
        """What GET /v2/email_stats answers for the account-local days start..end (both included)."""
        with self._lock:
            raw = self._email_raw(start, end)
        sent = raw["processed"]
        requests = sent + raw["opted_out"] + raw["not_eligible"]
        refused = raw["opted_out"] + raw["not_eligible"]
        first, last = self.day_bounds(start)[0], self.day_bounds(end)[1] - timedelta(seconds=1)
        stats = {
            "send_date": f"{_display_day(start)}-{_display_day(end)}", "send_requests": requests,
            "emails_sent": sent, "delivered": raw["delivered"],
            "delivered_percentage": f"{_percent(raw['delivered'], sent):.1f}%",
            "bounce_rate": round(_percent(raw["bounce"], sent), 1),
            "bounce_rate_percentage": f"{_percent(raw['bounce'], sent):.1f}%",
            "open_rate": f"{_rounded(_percent(raw['open'], raw['delivered']))}%",
            "response_rate": f"{_rounded(_percent(raw['total_responses'], raw['delivered']))}%",
            "not_eligible": f"{refused} ({_rounded(_percent(refused, requests))}%)",
            "raw_results": {**raw, "sart_date": first.astimezone(self.zone).isoformat(),
                            "end_date": last.astimezone(self.zone).isoformat()},
        }
        return {"email_stats": stats, "initial_send": None, "reminder_send": None}

    def _day_range(self, query: dict[str, str], start_name: str, end_name: str) -> tuple[date, date] | str:
        """The days a summary query names, or the message of its 400. Without them, the last month."""
        today = utc_now().astimezone(self.zone).date()
        values = []
        for name, default in ((start_name, today - timedelta(days=30)), (end_name, today)):
            raw = query.get(name)
            if raw is None:
                values.append(default)
                continue
            try:
                values.append(date.fromisoformat(raw) if DAY.fullmatch(raw) else None)
            except ValueError:
                values.append(None)
            if values[-1] is None:
                return f"{name} is invalid"
        if values[0] > values[1]:
            return f"{start_name} is after {end_name}"
        return values[0], values[1]

    def _summary_route(self, parts: list[str], query: dict[str, str], v2: bool) -> tuple[int, Body] | None:
        """The summary endpoints; None for any other v1 path."""
        if v2:
            if self.v2_status is not None:
                return self.v2_status, error_list(_phrase(self.v2_status).lower().replace(" ", "_"),
                                                  "This account has no e-mail surveys")
            if parts == ["email_stats", "sources"]:
                with self._lock:
                    return 200, copy.deepcopy(self.email_sources)
            if parts == ["email_stats"]:
                return self._summary(query, "date_range[start_date]", "date_range[end_date]", self.email_stats)
            return 404, error_list("record_not_found", "The record could not be found")
        if parts == ["survey_templates"]:
            with self._lock:
                return 200, {"default_survey_template_id": self.default_survey_template_id,
                             "survey_templates": copy.deepcopy(self.survey_templates)}
        if parts == ["nps_summary"]:
            return self._summary(query, "date[start]", "date[end]", self.nps_summary)
        return None

    def _summary(self, query: dict[str, str], start_name: str, end_name: str,
                 summary: Callable[[date, date], dict[str, Any]]) -> tuple[int, Body]:
        days = self._day_range(query, start_name, end_name)
        if isinstance(days, str):
            return 400, error_list("bad_request", days, start_name)
        return 200, summary(*days)

    def _cxi_public(self, response: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in response.items() if key != "import_id"}

    def _cxi_route(self, parts: list[str], query: dict[str, str], number: int) -> tuple[int, Body]:
        if self.cxi_status is not None:
            if self.cxi_status == 424:
                return 424, {"message": CXI_ONBOARDING_MESSAGE}
            return self.cxi_status, {"message": _phrase(self.cxi_status)}
        page = _bounded_int(query, "page", 1, MAX_PAGE)
        per_page = _bounded_int(query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
        if page is None or per_page is None:
            return 400, {"message": "page and per_page must be within 1..30 and 1..50"}
        window = slice((page - 1) * per_page, page * per_page)
        with self._lock:
            if parts == ["responses"]:
                descending = query.get("sort_order", "desc") != "asc"
                tiebreak = self._tiebreak(self.cxi_responses.values(), number)
                rows = sorted(self.cxi_responses.values(),
                              key=lambda row: (row["feedback_date"], tiebreak.get(row["id"], row["id"])),
                              reverse=descending)
                envelope = {"items": [self._cxi_public(row) for row in rows[window]]}
                return 200, envelope if self.cxi_omit_total else {"total_count": len(rows), **envelope}
            if parts == ["projects"]:
                return 200, copy.deepcopy(self.cxi_projects)
            if parts == ["imports"]:
                return 200, copy.deepcopy(self.cxi_imports[window])
            if len(parts) == 2 and parts[0] == "imports" and parts[1].isdigit():
                found = next((row for row in self.cxi_imports if row["id"] == int(parts[1])), None)
                if found is None:
                    return 404, {"message": "Not found"}
                members = [self._cxi_public(row) for row in self.cxi_responses.values()
                           if row["import_id"] == found["id"]]
                return 200, {**copy.deepcopy(found), "responses": members}
            if parts == ["tags"]:
                tops = sorted(self.cxi_tags, key=lambda tag: tag["name"], reverse=query.get("sort") == "name_desc")
                flat = query.get("flat") == "true"
                rows = [tag for top in tops for tag in (top, *top["children"])] if flat else tops
                return 200, copy.deepcopy(rows[window])
        return 404, {"message": "Not found"}

    # -- rendering -----------------------------------------------------------------------------------------

    def render_time(self, moment: datetime) -> str:
        """``"YYYY-MM-DD HH:MM:SS -0800"`` in the account's zone, cut to the whole second (notes §3.1)."""
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S %z")

    def render(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return self.render_time(value)
        if isinstance(value, dict):
            return {key: self.render(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.render(item) for item in value]
        return value

    # -- behaviour hooks -----------------------------------------------------------------------------------

    def on_request(self, n: int, action: Callable[[FakeWootric], Any]) -> None:
        """Call ``action(fake)`` just before serving the n-th (1-based) GET under /v1."""
        with self._lock:
            self._hooks.setdefault(n, []).append(action)

    def fail(self, n: int, status: int, body: Body = None, headers: dict[str, str] | None = None) -> None:
        """Answer the n-th (1-based) GET under /v1 with ``status`` instead of serving it.

        ``body`` may be JSON-serialisable, or str/bytes sent verbatim (e.g. a proxy's HTML error page).
        """
        if body is None:
            phrase = _phrase(status)
            body = error_list(phrase.lower().replace(" ", "_") or "error", f"injected failure: {status} {phrase}")
        with self._lock:
            self._failures[n] = (status, body, dict(headers or {}))

    def fault(self, n: int, kind: str, seconds: float = 2.0) -> None:
        """Break the n-th (1-based) GET under /v1 at the transport level instead of with a status.

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
        """From now on, break each GET under /v1 with probability ``rate``, by a kind drawn from ``kinds``
        (a status code or a transport fault); seeded, so a failing run can be replayed."""
        with self._lock:
            self._chaos = (rate, tuple(kinds), random.Random(seed)) if rate > 0 else None

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
        """A tap config pointing at this fake."""
        config = {"client_id": self.client_id, "client_secret": self.client_secret,
                  "start_date": "2015-01-01T00:00:00Z", "api_url": self.api_url, "oauth_url": self.oauth_url}
        config.update(overrides)
        return config

    # -- request handling (called from the server's threads) ----------------------------------------------

    def _handle(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> Reply:
        if path == "/oauth/token":
            if method != "POST":
                return 404, error_list("not_found", "Not Found"), {}
            return self._token(query, _parse_form(body, headers.get("Content-Type", "")))
        if path == "/v1" or path.startswith("/v1/") or path.startswith(CXI_PREFIX) or path.startswith(V2_PREFIX):
            if method != "GET":
                return 405, error_list("method_not_allowed", "405 Not Allowed"), {}
            return self._api(path, query, headers.get("Authorization", ""))
        return 404, error_list("record_not_found", "The record could not be found"), {}

    def _token(self, query: dict[str, str], form: dict[str, str]) -> Reply:
        # The docs warn that credentials in a URL end up in logs (notes §1.1).
        if any(name in query for name in CREDENTIAL_FIELDS):
            return 400, oauth_error("invalid_request", "Credentials must be sent in the request body."), {}
        grant = form.get("grant_type")
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        with self._lock:
            if grant == "client_credentials":
                if form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret:
                    return 200, self._issue(refresh=False), no_store
                return 401, oauth_error("invalid_client", INVALID_CLIENT), {}
            if grant == "password":
                account = query.get("account_token")
                if account is not None and not account.startswith("NPS-"):
                    return 404, {"error": "Not found", "status": 404}, {}  # RUDDER's captured reply (notes §1.1)
                if form.get("username") == self.username and form.get("password") == self.password:
                    return 200, self._issue(refresh=True), no_store
                return 400, oauth_error("invalid_grant", INVALID_GRANT), {}
            if grant == "refresh_token":
                token = form.get("refresh_token")
                if token in self._refresh_tokens:
                    self._refresh_tokens.discard(token)  # rotated: each refresh token works once
                    return 200, self._issue(refresh=True), no_store
                return 400, oauth_error("invalid_grant", INVALID_GRANT), {}
        if not grant:
            return 400, oauth_error("invalid_request", INVALID_REQUEST), {}
        return 400, oauth_error("unsupported_grant_type", UNSUPPORTED_GRANT), {}

    def _issue(self, *, refresh: bool) -> dict[str, Any]:
        now = time.time()
        token = secrets.token_hex(32)
        self._access_tokens[token] = now + self.token_ttl
        self.tokens_issued.append(token)
        body: dict[str, Any] = {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl,
                                "scope": "public", "created_at": int(now)}
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
            allowed, limit_headers = self._spend_rate_budget(path)
            failure = self._failures.pop(number, None)
            if failure is None and self._chaos is not None:
                rate, kinds, rng = self._chaos
                if rng.random() < rate:
                    kind = rng.choice(kinds)
                    failure = ((kind, None, {FAULT_HEADER: kind, FAULT_SECONDS_HEADER: "2"}) if isinstance(kind, str)
                               else (kind, error_list("server_error", f"injected failure: {kind}"), {}))
            if failure is not None:
                self.faults_served.append((number, failure[0]))
        if failure is not None:
            status, body, extra = failure
            if isinstance(status, str):
                # Transport faults break a real answer, so serve it first.
                if not self._authorised(authorization):
                    return 401, error_list("unauthorized", "Your access token is wrong"), limit_headers
                kind = status
                status, body = self._route(path, query, number)
                if kind == "garbage":
                    status, body = 200, "<html><body><h1>Service Unavailable</h1></body></html>"
                    extra = {**extra, "Content-Type": "text/html"}
            return status, body, {**limit_headers, **extra}
        if not allowed:
            return 429, error_list("too_many_requests", "Rate limit exceeded. Try again later."), limit_headers
        if not self._authorised(authorization):
            return 401, error_list("unauthorized", "Your access token is wrong"), limit_headers
        status, body = self._route(path, query, number)
        return status, body, limit_headers

    def _spend_rate_budget(self, path: str) -> tuple[bool, dict[str, str]]:
        """Fixed windows aligned to multiples of window_seconds, one budget per path (notes §4)."""
        if self.rate_limit is None:
            return True, {}
        window = math.floor(time.time() / self.window_seconds)
        current, used = self._rate_windows.get(path, (window, 0))
        if current != window:
            used = 0
        allowed = used < self.rate_limit
        if allowed:
            used += 1
        self._rate_windows[path] = (window, used)
        return allowed, {
            "X-Rate-Limit-Limit": str(self.rate_limit),
            "X-Rate-Limit-Remaining": str(max(0, self.rate_limit - used)),
            # Rounded up so that a client sleeping until Reset never wakes inside the old window.
            "X-Rate-Limit-Reset": str(math.ceil((window + 1) * self.window_seconds)),
        }

    def _authorised(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        with self._lock:
            expires = self._access_tokens.get(token.strip())
        return expires is not None and time.time() <= expires

    def _route(self, path: str, query: dict[str, str], number: int) -> tuple[int, Body]:
        if path.startswith(CXI_PREFIX):
            return self._cxi_route(path[len(CXI_PREFIX):].strip("/").split("/"), query, number)
        parts = path.strip("/").split("/")[1:]
        summary = self._summary_route(parts, query, path.startswith(V2_PREFIX))
        if summary is not None:
            return summary
        if parts == ["segments"]:
            with self._lock:
                return 200, [self.render(segment) for segment in self.segments]
        if len(parts) == 1 and parts[0] in STREAMS:
            return self._list(parts[0], query, number)
        if parts[:1] == ["end_users"] and len(parts) in (2, 3):
            user = self._find_user(parts[1], query)
            if user is not None and len(parts) == 2:
                return 200, self.render(user)
            if user is not None and parts[2] in ("responses", "declines"):
                return self._list(parts[2], query, number, end_user_id=user["id"])
        return 404, error_list("record_not_found", "The record could not be found")

    def _find_user(self, key: str, query: dict[str, str]) -> dict[str, Any] | None:
        with self._lock:
            users = self._data["end_users"]
            if query.get("lookup_by_email") == "true":
                return next((user for user in users.values() if user["email"] == key), None)
            return users.get(int(key)) if key.isdigit() else None

    def _list(self, stream: str, query: dict[str, str], number: int,
              end_user_id: int | None = None) -> tuple[int, Body]:
        errors = []
        page = _bounded_int(query, "page", 1, MAX_PAGE)
        per_page = _bounded_int(query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
        scoped = end_user_id is not None
        sort_order = query.get("sort_order", "asc" if stream == "end_users" and not scoped else "desc")
        sort_keys = ("email", "created_at", "updated_at") if stream == "end_users" else ("created_at", "updated_at")
        sort_key = query.get("sort_key", "email" if stream == "end_users" else "created_at")
        if sort_key == "updated_at" and stream in self.ignore_updated_sort:
            sort_key = "created_at"  # an API that filters on updated[...] but does not sort on it
        for name, ok in (("page", page is not None), ("per_page", per_page is not None),
                         ("sort_order", sort_order in ("asc", "desc")), ("sort_key", sort_key in sort_keys)):
            if not ok:
                errors.append({"status": "bad_request", "message": f"{name} does not have a valid value",
                               "field": name})
        filters = []
        for prefix in ("created", "updated"):
            # Grape drops undeclared parameters, so an unsupported updated[...] filters nothing (notes §2.2).
            if prefix == "updated" and stream != "end_users" and stream not in self.honour_updated_filter:
                continue
            for op, compare in COMPARATORS.items():
                name = f"{prefix}[{op}]"
                raw = query.get(name)
                if raw is None:
                    continue
                if not INTEGER.fullmatch(raw):
                    errors.append({"status": "bad_request", "message": f"{name} is invalid", "field": name})
                    continue
                filters.append((f"{prefix}_at", compare, to_utc(int(raw))))
        if query.get("email") is not None and stream == "end_users":
            filters.append(("email", operator.eq, query["email"]))
        if errors:
            return 400, {"type": "error_list", "errors": errors}
        assert page is not None and per_page is not None
        with self._lock:
            if (self.indexed and not self.shuffle_ties and end_user_id is None
                    and sort_key in ("created_at", "updated_at")
                    and all(field == sort_key for field, _, _ in filters)):
                page_rows = self._indexed_page(stream, sort_key, filters, sort_order == "desc", page, per_page)
                return 200, _JsonRows(self._row_json(stream, row) for row in page_rows)
            # Comparing the stored microsecond times is what makes created[gt]=T return rows shown as T.
            rows = [row for row in self._data[stream].values()
                    if (end_user_id is None or row["end_user_id"] == end_user_id)
                    and all(compare(row[field], value) for field, compare, value in filters)]
            rows = self._sorted(rows, sort_key, descending=sort_order == "desc", request_number=number)
            return 200, _JsonRows(self._row_json(stream, row) for row in rows[(page - 1) * per_page:page * per_page])

    def _row_json(self, stream: str, row: dict[str, Any]) -> str:
        """A row as the API renders it, serialised once and kept until the row changes."""
        key = (stream, row["id"])
        cached = self._json_cache.get(key)
        if cached is None:
            cached = self._json_cache[key] = json.dumps(self.render(row), ensure_ascii=False)
        return cached

    def _indexed_page(self, stream: str, field: str, filters: list[tuple[str, Any, Any]], descending: bool,
                      page: int, per_page: int) -> list[dict[str, Any]]:
        """The same page as the general path gives, by bisecting a sorted index: large datasets stay fast."""
        keys, rows = self._index(stream, field)
        low, high = 0, len(rows)
        for _, compare, value in filters:
            if compare is operator.ge:
                low = max(low, bisect.bisect_left(keys, value))
            elif compare is operator.gt:
                low = max(low, bisect.bisect_right(keys, value))
            elif compare is operator.lt:
                high = min(high, bisect.bisect_left(keys, value))
            elif compare is operator.le:
                high = min(high, bisect.bisect_right(keys, value))
            else:  # eq
                low = max(low, bisect.bisect_left(keys, value))
                high = min(high, bisect.bisect_right(keys, value))
        if low >= high:
            return []
        skip = (page - 1) * per_page
        if not descending:
            return rows[low + skip:min(high, low + skip + per_page)]
        end = high - skip
        return rows[max(low, end - per_page):max(low, end)][::-1]

    def _sorted(self, rows: list[dict[str, Any]], key: str, *, descending: bool,
                request_number: int) -> list[dict[str, Any]]:
        """Order by ``key``; equal keys by id (reversed with desc), or randomly with shuffle_ties."""
        tiebreak = self._tiebreak(rows, request_number)

        def sort_value(row: dict[str, Any]) -> tuple[Any, ...]:
            last = tiebreak.get(row["id"], row["id"])
            if key == "email":
                # PostgreSQL order: NULLs last when ascending, first when descending.
                return (row["email"] is None, row["email"] or "", last)
            return (row[key], last)

        return sorted(rows, key=sort_value, reverse=descending)

    def _tiebreak(self, rows: Any, request_number: int) -> dict[int, float]:
        """With shuffle_ties, a random sort value per row id, new for every request (else none: ids break ties).
        Seeded by the request number so that a failing run can be replayed exactly."""
        if not self.shuffle_ties:
            return {}
        shuffler = random.Random(self.seed * 1_000_003 + request_number)
        return {row["id"]: shuffler.random() for row in rows}

    def _log(self, method: str, path: str, query: dict[str, list[str]], status: int) -> None:
        params = {name: values[0] if len(values) == 1 else list(values) for name, values in query.items()}
        with self._lock:
            self.requests.append({"method": method, "path": path, "params": params, "status": status,
                                  "time": time.time()})


class _JsonRows(list):
    """Rows already serialised to JSON, sent as one array without encoding them again."""


_EMAIL_COUNTS = ("processed", "bounce", "dropped", "delivered", "opted_out", "not_delivered", "open", "spamreport",
                 "not_eligible", "total_surveys", "total_responses")


def _rounded(value: float) -> int:
    """Half away from zero, as Ruby rounds (Python's round() goes to the even neighbour)."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def _percent(part: int, whole: int) -> float:
    return 100 * part / whole if whole else 0.0


def _display_day(day: date) -> str:
    """"Aug  3, 2023": how the v2 API shows a day (notes §3.5)."""
    return f"{day:%b} {day.day:2d}, {day.year}"


def _bounded_int(query: dict[str, str], name: str, default: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    if not INTEGER.fullmatch(raw) or not 1 <= int(raw) <= high:
        return None
    return int(raw)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _parse_form(body: bytes, content_type: str) -> dict[str, str]:
    """Fields of an application/x-www-form-urlencoded or multipart/form-data body."""
    if content_type.lower().startswith("multipart/form-data"):
        header = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
        message = BytesParser(policy=policy.HTTP).parsebytes(header + body)
        form: dict[str, str] = {}
        if not message.is_multipart():
            return form
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                form[str(name)] = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
        return form
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


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
        if isinstance(payload, _JsonRows):
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake Wootric API filled with generated data.")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-users", type=int, default=300)
    parser.add_argument("--responses", type=int, default=1200)
    parser.add_argument("--declines", type=int, default=200)
    parser.add_argument("--years", type=float, default=3, help="span of the data, ending one hour ago")
    parser.add_argument("--token-ttl", type=int, default=7200, help="access token lifetime in seconds")
    args = parser.parse_args(argv)

    fake = FakeWootric(seed=args.seed, token_ttl=args.token_ttl)
    end = utc_now() - timedelta(hours=1)
    start = end - timedelta(days=365.25 * args.years)
    # End users first, so that responses and declines point at existing users.
    for stream, count in (("end_users", args.end_users), ("responses", args.responses), ("declines", args.declines)):
        fake.generate(stream, count, start, end)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    fake.start(args.port)
    print(json.dumps({"api_url": fake.api_url, "oauth_url": fake.oauth_url, "cxi_api_url": fake.url + "/cxi/v1",
                      "client_id": fake.client_id, "client_secret": fake.client_secret}), flush=True)
    # A timed wait keeps the main thread responsive to signals on every platform.
    while not stopping.wait(0.5):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
