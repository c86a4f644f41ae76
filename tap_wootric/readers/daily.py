"""Day streams: one request per account-local day (nps_summary, email_stats).

Wootric computes these aggregates itself, over whole days of the account's time zone and with its
exclusions, so they are read a day at a time and each day is one row keyed on its date. The counts of
day rows add up to any longer period; a ratio such as NPS does not, so it is recomputed from the counts.

The bookmark (`{"date": "YYYY-MM-DD"}`) is the newest day that had ended in the account's zone when it
was read. Today, still in progress there, is read and emitted on every run but never bookmarked. Each
run re-reads the `daily_reread_days` days up to the bookmark, because late e-mail answers, exclusions
and edits change a day's figures after it has ended; targets upsert on the date.

What differs between the streams is data in their row of the stream table: the path, the names of the
range's start and end parameters, and where the record's fields sit in the body.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Dict, Iterator, Optional

import pendulum
from singer import metadata, metrics
from singer.catalog import CatalogEntry

from tap_wootric.api.client import WootricClient
from tap_wootric.catalog.selection import selected_schema
from tap_wootric.config import TapConfig
from tap_wootric.errors import ApiError
from tap_wootric.output import MessageWriter
from tap_wootric.streams import V2_API, StreamSpec
from tap_wootric.transform import RecordTransformer
from tap_wootric.v2api import get_v2

LOGGER = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 30.0
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(value: Any) -> Optional[date]:
    """The date of a `YYYY-MM-DD` bookmark, or None if it is not one."""
    if not isinstance(value, str) or not _DAY.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def account_today(zone: str, now: Optional[float] = None) -> date:
    """The calendar day in progress in the account's time zone."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    local = pendulum.instance(moment).in_timezone(zone)
    return date(local.year, local.month, local.day)


def first_day(start_date: datetime, zone: str) -> date:
    """The first account-local day that starts at or after start_date: a day row covers its whole day, so
    the day start_date falls inside would hold data from before it. start_date at the account's midnight
    (2024-01-01T00:00:00-08:00 for Los Angeles) makes that very day the first."""
    local = pendulum.instance(start_date).in_timezone(zone)
    day = local.date()
    if pendulum.datetime(day.year, day.month, day.day, tz=zone) < local:
        day = day + timedelta(days=1)
    return date(day.year, day.month, day.day)


@dataclass(frozen=True)
class DayPlan:
    """Which days a run reads, and how far its bookmark may go."""

    first: date
    today: date
    bookmark: Optional[date]  # where the run starts from (never past the last ended day)

    @property
    def last_ended(self) -> date:
        return self.today - timedelta(days=1)

    @property
    def days(self) -> int:
        return max(0, (self.today - self.first).days + 1)

    def each_day(self) -> Iterator[date]:
        for offset in range(self.days):
            yield self.first + timedelta(days=offset)


def plan_days(start_day: date, bookmark: Optional[date], today: date, reread_days: int) -> DayPlan:
    """Pure date maths for one day stream (unit tested).

    From start_day on the first run; afterwards from `reread_days` days before the day after the bookmark,
    so the last `reread_days` ended days are read again; always up to today. A bookmark past the last
    ended day (a state written under another time zone) is pulled back to it.
    """
    if bookmark is None:
        return DayPlan(first=start_day, today=today, bookmark=None)
    bookmark = min(bookmark, today - timedelta(days=1))
    resume = bookmark + timedelta(days=1)
    # Capped at start_day before subtracting, so that a huge setting cannot overflow the calendar.
    back = min(reread_days, max(0, (resume - start_day).days))
    return DayPlan(first=max(start_day, resume - timedelta(days=back)), today=today, bookmark=bookmark)


def record_of(spec: StreamSpec, body: Any, day: date) -> Dict[str, Any]:
    """One day's row: the body's fields (those under record_key, with the body's other keys beside them)
    and the day under the stream's replication key."""
    if not isinstance(body, dict):
        raise ApiError(f"{spec.name}: GET /{spec.path} for {day.isoformat()} returned a {type(body).__name__}, "
                       "not an object")
    assert spec.replication_key is not None
    record: Dict[str, Any] = {spec.replication_key: day.isoformat()}
    if spec.record_key is None:
        record.update({key: value for key, value in body.items() if key != spec.replication_key})
        return record
    inner = body.get(spec.record_key)
    if inner is not None and not isinstance(inner, dict):
        raise ApiError(f"{spec.name}: GET /{spec.path} for {day.isoformat()} has a '{spec.record_key}' that is "
                       "not an object")
    record.update({key: value for key, value in (inner or {}).items() if key != spec.replication_key})
    record.update({key: value for key, value in body.items()
                   if key not in (spec.record_key, spec.replication_key)})
    return record


class DailySync:
    """Reads any stream whose row sets `day_params`, a day at a time."""

    def __init__(
        self,
        client: WootricClient,
        config: TapConfig,
        spec: StreamSpec,
        entry: CatalogEntry,
        state: Dict[str, Any],
        writer: MessageWriter,
    ):
        assert spec.day_params is not None and spec.replication_key is not None
        self.client = client
        self.config = config
        self.spec = spec
        self.state = state
        self.writer = writer
        self.mdata = metadata.to_map(entry.metadata or [])
        self.schema = entry.schema.to_dict()
        self.requests = 0

    def _get(self, day: date) -> Any:
        assert self.spec.day_params is not None
        start_param, end_param = self.spec.day_params
        params = {start_param: day.isoformat(), end_param: day.isoformat()}
        self.requests += 1
        if self.spec.api == V2_API:
            return get_v2(self.client, self.spec.path, params)
        return self.client.get(self.spec.path, params)

    def _bookmark(self) -> Dict[str, Any]:
        return self.state.setdefault("bookmarks", {}).setdefault(self.spec.name, {})

    def run(self) -> None:
        spec = self.spec
        started = last_report = time.monotonic()
        self.writer.schema(spec.name, selected_schema(self.schema, self.mdata), list(spec.key_properties),
                           bookmark_properties=[spec.replication_key])
        # Read without creating the bookmark: a stream the v2 API refuses leaves none behind.
        stored = ((self.state.get("bookmarks") or {}).get(spec.name) or {}).get("date")
        zone = self.config.account_timezone
        plan = plan_days(first_day(self.config.start_date, zone), parse_day(stored), account_today(zone),
                         self.config.daily_reread_days)
        bookmark = plan.bookmark
        if stored is not None and bookmark is not None and bookmark.isoformat() != stored:
            LOGGER.warning("%s: bookmark %s lies after the last ended day in %s; starting from %s", spec.name,
                           stored, self.config.account_timezone, bookmark.isoformat())
        LOGGER.info("%s: reading %d account-local days (%s) from %s to %s, one request each%s", spec.name,
                    plan.days, self.config.account_timezone, plan.first.isoformat(), plan.today.isoformat(),
                    f"; re-reading up to {self.config.daily_reread_days} ended days up to the bookmark "
                    f"{bookmark.isoformat()}" if bookmark is not None else "")
        transformer = RecordTransformer(spec.name, self.schema, self.mdata)
        emitted = 0
        with metrics.record_counter(spec.name) as counter:
            for day in plan.each_day():
                body = self._get(day)
                extracted_at = datetime.now(timezone.utc)
                emitted += self.writer.records(spec.name, [transformer.transform(record_of(spec, body, day))],
                                               extracted_at)
                counter.increment()
                # Only an ended day moves the bookmark: today's row changes until midnight in the account's zone.
                if day <= plan.last_ended and (bookmark is None or day > bookmark):
                    bookmark = day
                    self._bookmark()["date"] = day.isoformat()
                    self.writer.state(self.state)
                if time.monotonic() - last_report >= PROGRESS_INTERVAL_SECONDS:
                    last_report = time.monotonic()
                    LOGGER.info("%s: %d of %d days read, %.0f s", spec.name, emitted, plan.days,
                                last_report - started)
        if bookmark is not None:
            self._bookmark()["date"] = bookmark.isoformat()
        self.writer.state(self.state)
        LOGGER.info("%s: done: %d records emitted (one per day), %d requests, bookmark %s, %.1f s", spec.name,
                    emitted, self.requests, bookmark.isoformat() if bookmark is not None else "none",
                    time.monotonic() - started)
        summary = transformer.summary()
        if summary:
            LOGGER.warning("%s: %s", spec.name, summary)
