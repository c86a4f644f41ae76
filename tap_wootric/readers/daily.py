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

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Dict, Iterator, Optional

import pendulum

from tap_wootric.config import TapConfig
from tap_wootric.errors import ApiError
from tap_wootric.parallel import ordered_map
from tap_wootric.stream_run import StreamRun
from tap_wootric.streams import StreamSpec
from tap_wootric.timeutil import parse_day

LOGGER = logging.getLogger(__name__)


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
    where = f"{spec.name}: GET /{spec.path} for {day.isoformat()}"
    if not isinstance(body, dict):
        raise ApiError(f"{where} returned a {type(body).__name__}, not an object")
    inner = _inner(spec, body, where)
    skip = (spec.record_key, spec.replication_key)
    record: Dict[str, Any] = {str(spec.replication_key): day.isoformat()}
    record.update({key: value for key, value in (inner or {}).items() if key not in skip})
    record.update({key: value for key, value in body.items() if key not in skip})
    return record


def _inner(spec: StreamSpec, body: Dict[str, Any], where: str) -> Optional[Dict[str, Any]]:
    """The object under the stream's record_key, if it has one."""
    inner = body.get(spec.record_key) if spec.record_key is not None else None
    if inner is not None and not isinstance(inner, dict):
        raise ApiError(f"{where} has a '{spec.record_key}' that is not an object")
    return inner


class DailyReader:
    """Reads any stream whose row sets `day_params`, a day at a time."""

    def __init__(self, run: StreamRun, config: TapConfig, today: date):
        assert run.spec.day_params is not None and run.spec.replication_key is not None
        self.run = run
        self.config = config
        self.today = today

    def _get(self, day: date) -> Any:
        start_param, end_param = self.run.spec.day_params  # type: ignore[misc]
        return self.run.get(params={start_param: day.isoformat(), end_param: day.isoformat()})

    def run_stream(self) -> None:
        run, key = self.run, str(self.run.spec.replication_key)
        run.write_schema()
        plan = self._plan()
        bookmark = plan.bookmark
        # Days are independent requests: fetched by the workers at once, emitted in order, so that the
        # bookmark moves over days already written only.
        with contextlib.closing(ordered_map(self._get, plan.each_day(), self.config.workers,
                                            run.client.cancellation)) as bodies:
            for day, body in zip(plan.each_day(), bodies):
                run.emit([record_of(run.spec, body, day)])
                # Only an ended day moves the bookmark: today's row changes until midnight in the account's zone.
                if day <= plan.last_ended and (bookmark is None or day > bookmark):
                    bookmark = day
                    run.bookmark[key] = day.isoformat()
                    run.save_state()
        if bookmark is not None:
            run.bookmark[key] = bookmark.isoformat()
        run.save_state()
        run.finish(f" (one per day, bookmark {bookmark.isoformat() if bookmark is not None else 'none'})")

    def _plan(self) -> DayPlan:
        spec, config = self.run.spec, self.config
        # Read without creating the bookmark: a stream that is refused leaves none behind.
        stored = self.run.stored(str(spec.replication_key))
        plan = plan_days(first_day(config.start_date, config.account_timezone), parse_day(stored), self.today,
                         config.daily_reread_days)
        bookmark = plan.bookmark
        if stored is not None and bookmark is not None and bookmark.isoformat() != stored:
            LOGGER.warning("%s: bookmark %s lies after the last ended day in %s; starting from %s", spec.name,
                           stored, config.account_timezone, bookmark.isoformat())
        LOGGER.info("%s: reading %d account-local days (%s) from %s to %s, one request each%s", spec.name,
                    plan.days, config.account_timezone, plan.first.isoformat(), plan.today.isoformat(),
                    f"; re-reading up to {config.daily_reread_days} ended days up to the bookmark "
                    f"{bookmark.isoformat()}" if bookmark is not None else "")
        return plan
