"""What every part of the fake shares: constants of the API, error bodies, time helpers."""

from __future__ import annotations

import operator
import re
from datetime import datetime, timedelta, timezone
from email import policy
from email.parser import BytesParser
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

STREAMS = ("end_users", "responses", "declines")
FIRST_ID = {"end_users": 100000, "responses": 500000, "declines": 900000}
MAX_PAGE = 30
MAX_PER_PAGE = 50
DEFAULT_PER_PAGE = 25
COMPARATORS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le, "eq": operator.eq}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MICROSECOND = timedelta(microseconds=1)
INTEGER = re.compile(r"-?\d+")
V1_PREFIX = "/v1/"
V2_PREFIX = "/v2/"
CXI_PREFIX = "/cxi/v1/"
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
CXI_ONBOARDING_MESSAGE = "Please complete the onboarding flow first."

Body = Any  # JSON-serialisable value, or str/bytes sent as they are
Reply = tuple[int, Body, dict[str, str]]  # status, body, extra headers
Answer = tuple[int, Body]  # what a route gives: status and body


class JsonRows(list):
    """Rows already serialised to JSON, sent as one array without encoding them again."""


def error_list(status: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The v1 API's error envelope (notes §5)."""
    return {"type": "error_list", "errors": [{"status": status, "message": message, "field": field}]}


def oauth_error(error: str, description: str) -> dict[str, str]:
    """The token endpoint's RFC 6749 error body (notes §1.1)."""
    return {"error": error, "error_description": description}


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def status_word(status: int) -> str:
    """``404`` -> ``"not_found"``: the ``status`` field of an error_list for that status."""
    return phrase(status).lower().replace(" ", "_") or "error"


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


def http_date(epoch: float) -> str:
    """RFC 9110 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT`` (whole seconds, cut down)."""
    return formatdate(int(epoch), usegmt=True)


def bounded_int(query: dict[str, str], name: str, default: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    if not INTEGER.fullmatch(raw) or not 1 <= int(raw) <= high:
        return None
    return int(raw)


def parse_form(body: bytes, content_type: str) -> dict[str, str]:
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
