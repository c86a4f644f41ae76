"""The CXI API's routes (``/cxi/v1``, notes §6): responses in a ``total_count``/``items`` envelope, imports,
projects and tags."""

from __future__ import annotations

import copy
from typing import Any

from .common import CXI_ONBOARDING_MESSAGE, DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE, Answer, bounded_int, phrase
from .world import World


def _public(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "import_id"}


def refusal(status: int, word: str) -> Answer:
    """How the CXI API refuses: 424 until onboarding is finished, else a bare message."""
    if status == 424:
        return 424, {"message": CXI_ONBOARDING_MESSAGE}
    return status, {"message": phrase(status)}


def route(fake: World, parts: list[str], query: dict[str, str], number: int) -> Answer:
    """``parts``: the path after ``/cxi/v1/``, split at slashes."""
    page = bounded_int(query, "page", 1, MAX_PAGE)
    per_page = bounded_int(query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    if page is None or per_page is None:
        return 400, {"message": "page and per_page must be within 1..30 and 1..50"}
    window = slice((page - 1) * per_page, page * per_page)
    with fake._lock:
        if parts == ["responses"]:
            descending = query.get("sort_order", "desc") != "asc"
            tiebreak = fake._tiebreak(fake.cxi_responses.values(), number)
            rows = sorted(fake.cxi_responses.values(),
                          key=lambda row: (row["feedback_date"], tiebreak.get(row["id"], row["id"])),
                          reverse=descending)
            envelope = {"items": [_public(row) for row in rows[window]]}
            return 200, envelope if fake.cxi_omit_total else {"total_count": len(rows), **envelope}
        if parts == ["projects"]:
            return 200, copy.deepcopy(fake.cxi_projects)
        if parts == ["imports"]:
            return 200, copy.deepcopy(fake.cxi_imports[window])
        if len(parts) == 2 and parts[0] == "imports" and parts[1].isdigit():
            found = next((row for row in fake.cxi_imports if row["id"] == int(parts[1])), None)
            if found is None:
                return 404, {"message": "Not found"}
            members = [_public(row) for row in fake.cxi_responses.values()
                       if row["import_id"] == found["id"]]
            return 200, {**copy.deepcopy(found), "responses": members}
        if parts == ["tags"]:
            tops = sorted(fake.cxi_tags, key=lambda tag: tag["name"], reverse=query.get("sort") == "name_desc")
            flat = query.get("flat") == "true"
            rows = [tag for top in tops for tag in (top, *top["children"])] if flat else tops
            return 200, copy.deepcopy(rows[window])
    return 404, {"message": "Not found"}
