"""The fake's data world: end users, responses, declines, segments, CXI data and the summaries computed
from them, with the fake's clock and late visibility of fresh writes. No HTTP here."""

from __future__ import annotations

import bisect
import copy
import json
import math
import random
import threading
import time
from datetime import date, datetime, timedelta, timezone
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

from .common import FIRST_ID, STREAMS, from_micros, micros, to_utc, utc_now

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


class World:
    """The account's data and the clock it is stamped with."""

    def __init__(self, *, seed: int = 1, honour_updated_filter: set[str] | None = None, shuffle_ties: bool = False,
                 whole_seconds: bool = False, account_tz: str = "America/Los_Angeles", clock_offset: float = 0.0,
                 late_visibility: float = 0.0):
        unknown = set(honour_updated_filter or ()) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown streams in honour_updated_filter: {sorted(unknown)}")
        self.seed = seed
        self.honour_updated_filter = set(honour_updated_filter or ())
        # Tied rows (equal stored sort values) in a new random order on every request, on every list path.
        self.shuffle_ties = shuffle_ties
        # created_at and updated_at stored cut to the whole second, so that created[gt]=T excludes every row
        # shown as T. It applies as rows are stored, hence a constructor argument; the output is the same.
        self.whole_seconds = whole_seconds
        self.account_tz = account_tz
        self.zone = ZoneInfo(account_tz)
        # Seconds the API's clock runs ahead of (positive) or behind (negative) this machine's (notes §7.14).
        self.clock_offset = float(clock_offset)
        # Seconds after a create() or update() before list reads see the write (notes §7.14).
        self.late_visibility = float(late_visibility)
        # Streams whose sort_key=updated_at is silently ignored (created_at order instead).
        self.ignore_updated_sort: set[str] = set()
        # Serve time-range queries from sorted indexes (False: filter and sort every row, the reference path).
        self.indexed = True

        # GET /v1/segments (segments have no id; names are unique).
        self.segments: list[dict[str, Any]] = []
        # The CXI API (notes §6), under /cxi/v1.
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
        # GET /v2/email_stats/sources.
        self.email_sources: dict[str, list[dict[str, Any]]] = {
            "ongoing": [{"id": "email_api", "name": "Email API *"}, {"id": "webhook_trigger", "name": "Webhook *"}],
            "sends": [{"id": 1, "name": "Q1_file.csv", "date": "Jan 11, 2024  9:01AM"},
                      {"id": 2, "name": "Q2_renewals.csv", "date": "Apr  2, 2024 10:15AM"}],
        }

        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._data: dict[str, dict[int, dict[str, Any]]] = {stream: {} for stream in STREAMS}
        self._last_id = dict(FIRST_ID)
        # (stream, field) -> (keys, rows) sorted by (field, id); dropped whenever the stream's data changes.
        self._indexes: dict[tuple[str, str], tuple[list[datetime], list[dict[str, Any]]]] = {}
        self._user_ids: list[int] = []  # end user ids in insertion order, for fast random picks
        self._json_cache: dict[tuple[str, int], str] = {}  # (stream, id) -> the rendered row as JSON
        # Writes list reads do not see yet (late_visibility): (stream, id) -> (the version reads see until the
        # first pending write shows, or None for a new row; [(real epoch it shows, the version written)]).
        self._pending: dict[tuple[str, int], tuple[dict[str, Any] | None, list[tuple[float, dict[str, Any]]]]] = {}

    # -- the clock -----------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The API's now: this machine's clock plus ``clock_offset``."""
        return utc_now() + timedelta(seconds=self.clock_offset)

    def now_epoch(self) -> float:
        return time.time() + self.clock_offset

    # -- data ----------------------------------------------------------------------------------------------

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
            ceiling = min(high, micros(self.now()))
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
            before = copy.deepcopy(record)
            unknown = set(changes) - set(record)
            if unknown:
                raise ValueError(f"{stream} records have no fields {sorted(unknown)}")
            for key, value in changes.items():
                record[key] = to_utc(value) if isinstance(value, datetime) else copy.deepcopy(value)
            if isinstance(record["created_at"], datetime):
                record["created_at"] = self._stored_time(record["created_at"])
            record["updated_at"] = self._stored_time(self.now() if at is None else to_utc(at))
            self._changed(stream)
            self._json_cache.pop((stream, record_id), None)
            self._written(stream, record_id, before)

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
        moment = self.now() if at is None else to_utc(at)
        with self._lock:
            record_id = self._add(stream, moment, moment)
            self._written(stream, record_id, None)
            return record_id

    def delete(self, stream: str, record_id: int) -> None:
        self._check_stream(stream)
        with self._lock:
            self._record(stream, record_id)
            del self._data[stream][record_id]
            self._changed(stream)
            self._json_cache.pop((stream, record_id), None)
            self._pending.pop((stream, record_id), None)
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

    # -- late visibility -------------------------------------------------------------------------------------

    def _written(self, stream: str, record_id: int, before: dict[str, Any] | None) -> None:
        """Note a create() (``before`` None) or update() that list reads see only ``late_visibility`` s later."""
        if self.late_visibility <= 0:
            return
        key = (stream, record_id)
        base, writes = self._pending.get(key, (before, []))
        writes.append((time.time() + self.late_visibility, copy.deepcopy(self._data[stream][record_id])))
        self._pending[key] = (base, writes)

    def visible_rows(self, stream: str) -> dict[int, dict[str, Any]] | None:
        """The rows list reads see now, by id; None when that is every stored row as it is (the usual case)."""
        now = time.time()
        with self._lock:
            versions: dict[int, dict[str, Any] | None] = {}
            for key, (base, writes) in list(self._pending.items()):
                if key[0] != stream:
                    continue
                shown = [version for visible_at, version in writes if visible_at <= now]
                waiting = writes[len(shown):]
                if not waiting:
                    del self._pending[key]
                    continue
                version = shown[-1] if shown else base
                self._pending[key] = (version, waiting)
                versions[key[1]] = version
            if not versions:
                return None
            rows = dict(self._data[stream])
            for record_id, version in versions.items():
                if version is None:
                    rows.pop(record_id, None)
                else:
                    rows[record_id] = version
            return rows

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


    def _row_json(self, stream: str, row: dict[str, Any]) -> str:
        """A row as the API renders it, serialised once and kept until the row changes."""
        key = (stream, row["id"])
        if self._data[stream].get(row["id"]) is not row:  # a version not yet replaced for reads: not cached
            return json.dumps(self.render(row), ensure_ascii=False)
        cached = self._json_cache.get(key)
        if cached is None:
            cached = self._json_cache[key] = json.dumps(self.render(row), ensure_ascii=False)
        return cached


    def _tiebreak(self, rows: Any, request_number: int) -> dict[int, float]:
        """With shuffle_ties, a random sort value per row id, new for every request (else none: ids break ties).
        Seeded by the request number so that a failing run can be replayed exactly."""
        if not self.shuffle_ties:
            return {}
        shuffler = random.Random(self.seed * 1_000_003 + request_number)
        return {row["id"]: shuffler.random() for row in rows}


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


