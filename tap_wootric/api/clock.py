"""The API's clock: the one place a run reads the time it bounds its reads by.

Every bound a run sets (the sync signpost, `updated[lt]`, the probe's windows, the day streams'
"today", a Retry-After date) is a time on the API's clock, because the API stamps `updated_at` with
it. Its offset from this machine's clock is measured from the `Date` header of each answer (RFC 9110
IMF-fixdate, whole seconds); without one, this machine's clock is used.
"""

from __future__ import annotations

import logging
import time
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Optional

LOGGER = logging.getLogger(__name__)

# Offsets within this are what a whole-second Date header and the request's latency make of a
# clock in step; beyond it the offset is logged at INFO, and beyond a minute at WARNING.
NOTICEABLE_OFFSET_SECONDS = 5.0
WARNING_OFFSET_SECONDS = 60.0


def parse_http_date(value: Optional[str]) -> Optional[float]:
    """Epoch seconds of an HTTP-date (RFC 9110: IMF-fixdate, or the obsolete RFC 850 and asctime forms);
    None when it is none of them."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:  # the asctime form, and "-0000": both are GMT
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class ApiClock:
    def __init__(self, local: Callable[[], float] = time.time):
        self._local = local
        # API time minus this machine's time, once an answer has carried a Date header.
        self.offset: Optional[float] = None

    def observe(self, date_header: Optional[str]) -> None:
        """Note the Date header of an answer just received."""
        stamped = parse_http_date(date_header)
        if stamped is None:
            return
        # The header is the API's time cut to the second, so this errs up to a second (and the latency) on
        # the early side: a bound set by it is never later than the API's now, and re-reads, never skips.
        offset = stamped - self._local()
        first = self.offset is None
        self.offset = offset
        if first:
            # Reported at the middle of what the whole-second header allows.
            self._report(offset + 0.5)

    @staticmethod
    def _report(offset: float) -> None:
        if abs(offset) > WARNING_OFFSET_SECONDS:
            LOGGER.warning("The API's clock is about %.0f s %s this machine's; the tap bounds its reads by the API's "
                           "clock",
                           abs(offset), "ahead of" if offset > 0 else "behind")
        elif abs(offset) > NOTICEABLE_OFFSET_SECONDS:
            LOGGER.info("The API's clock is about %.0f s %s this machine's; the tap bounds its reads by the API's "
                        "clock",
                        abs(offset), "ahead of" if offset > 0 else "behind")

    def now(self) -> float:
        """The API's time now, as far as its answers tell."""
        return self._local() + (self.offset or 0.0)

    def until(self, moment: float) -> float:
        """Seconds from the API's now until `moment` (an epoch second on the API's clock)."""
        return moment - self.now()
