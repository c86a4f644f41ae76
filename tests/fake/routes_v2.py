"""The v2 API's routes (``/v2``): e-mail stats and their sources (notes §2.1, §3.5)."""

from __future__ import annotations

import copy

from .common import Answer, error_list
from .routes_v1 import NOT_FOUND, summary
from .world import World

NO_FEATURE_MESSAGE = "This account has no e-mail surveys"


def route(fake: World, parts: list[str], query: dict[str, str], number: int) -> Answer:
    """``parts``: the path after ``/v2/``, split at slashes."""
    if parts == ["email_stats", "sources"]:
        with fake._lock:
            return 200, copy.deepcopy(fake.email_sources)
    if parts == ["email_stats"]:
        return summary(fake, query, "date_range[start_date]", "date_range[end_date]", fake.email_stats)
    return 404, NOT_FOUND


def refusal(status: int, word: str) -> Answer:
    """How the v2 API says the account lacks the feature."""
    return status, error_list(word, NO_FEATURE_MESSAGE)
