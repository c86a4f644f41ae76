"""The v2 API (e-mail survey stats): where it is, and what a refusal of it means.

Wootric documents no v2 base of its own; every region's v2 paths sit beside its v1 paths, so the base is
api_url with /v2 for its final /v1. Accounts that send no e-mail surveys, or whose plan or region has no
v2 API, are expected to be refused (401, 403) or to find nothing there (404). Like the CXI API, that must
not fail the other streams: the v2 streams are skipped for the run with one WARNING.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Sequence

from tap_wootric.api.client import V2_PREFIX, WootricClient
from tap_wootric.errors import ApiError
from tap_wootric.streams import V2_API, StreamSpec

LOGGER = logging.getLogger(__name__)

V2_UNAVAILABLE_STATUSES = (401, 403, 404)


class V2Unavailable(Exception):
    """The v2 API refuses this account, or cannot be located; every v2 stream is skipped for the run."""


def get_v2(client: WootricClient, path: str, params: Optional[Dict[str, Any]] = None) -> Any:
    """GET `<v2 base>/<path>`; a refusal becomes V2Unavailable, any other failure stays an ApiError."""
    if client.config.v2_api_url is None:
        raise V2Unavailable(f"api_url {client.config.api_url} does not end in /v1, so the v2 API base cannot "
                            "be derived from it")
    try:
        return client.get(V2_PREFIX + path, params or {})
    except ApiError as exc:
        if exc.status in V2_UNAVAILABLE_STATUSES:
            raise V2Unavailable(str(exc)) from None
        raise


class V2Refusals:
    """Remembers the run's first v2 refusal: it is logged once, and every later v2 stream is skipped."""

    def __init__(self, streams: Sequence[StreamSpec]):
        self.names: List[str] = [spec.name for spec in streams if spec.api == V2_API]
        self.reason: Optional[str] = None

    def skips(self, spec: StreamSpec) -> bool:
        return spec.api == V2_API and self.reason is not None

    def refused(self, exc: V2Unavailable) -> None:
        self.reason = str(exc)
        LOGGER.warning("E-mail stats streams skipped: the v2 API refused this account (%s); skipped: %s",
                       self.reason, ", ".join(self.names))

    def guard(self, run: Callable[[], None]) -> None:
        """Run one stream's sync, turning a v2 refusal into the skip of every v2 stream."""
        try:
            run()
        except V2Unavailable as exc:
            self.refused(exc)
