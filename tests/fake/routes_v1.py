"""The main API's routes (``/v1``): the three lists, one end user and its lists, segments, survey templates and
the NPS summary (notes §2, §3)."""

from __future__ import annotations

import bisect
import copy
import operator
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from .common import (
    COMPARATORS,
    DAY,
    DEFAULT_PER_PAGE,
    INTEGER,
    MAX_PAGE,
    MAX_PER_PAGE,
    STREAMS,
    Answer,
    JsonRows,
    bounded_int,
    error_list,
    to_utc,
)
from .world import World

NOT_FOUND = error_list("record_not_found", "The record could not be found")


def route(fake: World, parts: list[str], query: dict[str, str], number: int) -> Answer:
    """``parts``: the path after ``/v1/``, split at slashes."""
    if parts == ["segments"]:
        with fake._lock:
            return 200, [fake.render(segment) for segment in fake.segments]
    if parts == ["survey_templates"]:
        with fake._lock:
            return 200, {"default_survey_template_id": fake.default_survey_template_id,
                         "survey_templates": copy.deepcopy(fake.survey_templates)}
    if parts == ["nps_summary"]:
        return summary(fake, query, "date[start]", "date[end]", fake.nps_summary)
    if len(parts) == 1 and parts[0] in STREAMS:
        return list_rows(fake, parts[0], query, number)
    if parts[:1] == ["end_users"] and len(parts) in (2, 3):
        user = find_user(fake, parts[1], query)
        if user is not None and len(parts) == 2:
            return 200, fake.render(user)
        if user is not None and parts[2] in ("responses", "declines"):
            return list_rows(fake, parts[2], query, number, end_user_id=user["id"])
    return 404, NOT_FOUND


def summary(fake: World, query: dict[str, str], start_name: str, end_name: str,
            compute: Callable[[date, date], dict[str, Any]]) -> Answer:
    """A summary over the days a query names (shared with v2's e-mail stats)."""
    days = day_range(fake, query, start_name, end_name)
    if isinstance(days, str):
        return 400, error_list("bad_request", days, start_name)
    return 200, compute(*days)


def day_range(fake: World, query: dict[str, str], start_name: str, end_name: str) -> tuple[date, date] | str:
    """The days a summary query names, or the message of its 400. Without them, the last month."""
    today = fake.now().astimezone(fake.zone).date()
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


def find_user(fake: World, key: str, query: dict[str, str]) -> dict[str, Any] | None:
    with fake._lock:
        users = fake._data["end_users"]
        if query.get("lookup_by_email") == "true":
            return next((user for user in users.values() if user["email"] == key), None)
        return users.get(int(key)) if key.isdigit() else None


def list_rows(fake: World, stream: str, query: dict[str, str], number: int,
              end_user_id: int | None = None) -> Answer:
    errors = []
    page = bounded_int(query, "page", 1, MAX_PAGE)
    per_page = bounded_int(query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    scoped = end_user_id is not None
    sort_order = query.get("sort_order", "asc" if stream == "end_users" and not scoped else "desc")
    sort_keys = ("email", "created_at", "updated_at") if stream == "end_users" else ("created_at", "updated_at")
    sort_key = query.get("sort_key", "email" if stream == "end_users" else "created_at")
    if sort_key == "updated_at" and stream in fake.ignore_updated_sort:
        sort_key = "created_at"  # an API that filters on updated[...] but does not sort on it
    for name, ok in (("page", page is not None), ("per_page", per_page is not None),
                     ("sort_order", sort_order in ("asc", "desc")), ("sort_key", sort_key in sort_keys)):
        if not ok:
            errors.append({"status": "bad_request", "message": f"{name} does not have a valid value",
                           "field": name})
    filters = []
    for prefix in ("created", "updated"):
        # Grape drops undeclared parameters, so an unsupported updated[...] filters nothing (notes §2.2).
        if prefix == "updated" and stream != "end_users" and stream not in fake.honour_updated_filter:
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
    with fake._lock:
        visible = fake.visible_rows(stream)
        if (visible is None and fake.indexed and not fake.shuffle_ties and end_user_id is None
                and sort_key in ("created_at", "updated_at")
                and all(field == sort_key for field, _, _ in filters)):
            page_rows = _indexed_page(fake, stream, sort_key, filters, sort_order == "desc", page, per_page)
            return 200, JsonRows(fake._row_json(stream, row) for row in page_rows)
        # Comparing the stored microsecond times is what makes created[gt]=T return rows shown as T.
        rows = [row for row in (fake._data[stream] if visible is None else visible).values()
                if (end_user_id is None or row["end_user_id"] == end_user_id)
                and all(compare(row[field], value) for field, compare, value in filters)]
        rows = _sorted(fake, rows, sort_key, descending=sort_order == "desc", request_number=number)
        return 200, JsonRows(fake._row_json(stream, row) for row in rows[(page - 1) * per_page:page * per_page])


def _indexed_page(fake: World, stream: str, field: str, filters: list[tuple[str, Any, Any]], descending: bool,
                  page: int, per_page: int) -> list[dict[str, Any]]:
    """The same page as the general path gives, by bisecting a sorted index: large datasets stay fast."""
    keys, rows = fake._index(stream, field)
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


def _sorted(fake: World, rows: list[dict[str, Any]], key: str, *, descending: bool,
            request_number: int) -> list[dict[str, Any]]:
    """Order by ``key``; equal keys by id (reversed with desc), or randomly with shuffle_ties."""
    tiebreak = fake._tiebreak(rows, request_number)

    def sort_value(row: dict[str, Any]) -> tuple[Any, ...]:
        last = tiebreak.get(row["id"], row["id"])
        if key == "email":
            # PostgreSQL order: NULLs last when ascending, first when descending.
            return (row["email"] is None, row["email"] or "", last)
        return (row[key], last)

    return sorted(rows, key=sort_value, reverse=descending)
