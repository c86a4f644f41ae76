"""The APIs a stream can live on (v1, v2, CXI) as values: where each is, how its requests read in
the logs, and what its answers mean.

The stream table names one of these; the client sends every request through one. A refusal is one
rule for all of them (`refuses`): after a valid token, 401, 403, 404 and 424 mean the account has no
such feature. Where the API is one product that an account has or lacks as a whole (CXI, v2), one
refusal speaks for every stream on it (`shared`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

# The API's paging limits: 50 rows a page, 30 pages a query (page 31 is a 400), no cursor.
MAX_PER_PAGE = 50
MAX_PAGE = 30
MAX_REACH = MAX_PER_PAGE * MAX_PAGE

# 401 (after one token renewal), 403, 404 and 424 (a CXI account not yet onboarded) after a valid token.
REFUSAL_STATUSES = frozenset((401, 403, 404, 424))


@dataclass(frozen=True)
class Api:
    name: str
    # The TapConfig attribute holding the base URL (None there: the API cannot be located).
    base_setting: str
    # What stands before the path in a logged request: "" (v1), "/v2", "CXI ".
    label: str
    # One refusal speaks for every stream on this API.
    shared: bool
    title: str
    # What the streams on a shared API are called when they are skipped together.
    group: str = ""

    def base_url(self, config: Any) -> Optional[str]:
        return getattr(config, self.base_setting)

    def describe(self, path: str, params: Optional[Dict[str, Any]] = None) -> str:
        """`GET /responses page=2 per_page=50`: what went out, safe to log (no credentials travel in URLs)."""
        query = " ".join(f"{key}={value}" for key, value in (params or {}).items())
        return f"GET {self.label}/{path} {query}".rstrip()

    @staticmethod
    def refuses(status: Optional[int]) -> bool:
        return status in REFUSAL_STATUSES


V1 = Api("v1", "api_url", "", shared=False, title="the API")
# Wootric documents no v2 base of its own: every region's v2 paths sit beside its v1 paths (config.py).
V2 = Api("v2", "v2_api_url", "/v2", shared=True, title="the v2 API", group="E-mail stats streams")
CXI = Api("cxi", "cxi_api_url", "CXI ", shared=True, title="the CXI API", group="CXI streams")
