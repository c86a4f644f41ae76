"""Every setting of the tap, declared once: `--about` renders this table, `config.load_config` reads
its defaults and bounds, and the unknown-setting warning knows a key by it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from tap_wootric.version import VERSION

REGIONS = {
    "us": ("https://api.wootric.com/v1", "https://api.wootric.com/oauth/token"),
    "eu": ("https://app.wootric.eu/api/v1", "https://app.wootric.eu/oauth/token"),
    "au": ("https://app.wootric.au/api/v1", "https://app.wootric.au/oauth/token"),
}
ENV_PREFIX = "TAP_WOOTRIC_"


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # Meltano's setting kinds: string, date_iso8601, integer, options (secrets: sensitive)
    description: str
    sensitive: bool = False
    default: Any = None
    options: Tuple[str, ...] = ()
    # Numbers: the least value accepted, and whether 0 stands for the default (as "" and null do).
    minimum: Optional[float] = None
    zero_is_default: bool = False
    whole: bool = True

    @property
    def json_type(self) -> str:
        return "integer" if self.kind == "integer" else "string"

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def json_schema(self) -> Dict[str, Any]:
        """The setting as a JSON Schema property (what `--about` lists)."""
        schema: Dict[str, Any] = {"type": self.json_type, "description": self.description}
        extra = {
            "format": "date-time" if self.kind == "date_iso8601" else None,
            "enum": list(self.options) or None,
            "default": self.default,
            "secret": True if self.sensitive else None,
            "writeOnly": True if self.sensitive else None,
        }
        schema.update({key: value for key, value in extra.items() if value is not None})
        return schema


SETTINGS: Tuple[Setting, ...] = (
    Setting("client_id", "string", "OAuth client id (Wootric: Settings > API). With client_secret, the "
            "client_credentials grant."),
    Setting("client_secret", "string", "OAuth client secret.", sensitive=True),
    Setting("username", "string", "Account e-mail for the password grant (instead of client_id and client_secret)."),
    Setting("password", "string", "Account password for the password grant.", sensitive=True),
    Setting("account_token", "string", "Account token (NPS-...) to pick one account with the password grant."),
    Setting("start_date", "date_iso8601", "Replicate records updated (end users) or created (responses, declines) "
            "at or after this RFC 3339 date. A date without a time is midnight UTC."),
    Setting("region", "options", "Data region; sets api_url and oauth_url.", default="us", options=tuple(REGIONS)),
    Setting("api_url", "string", "API base URL; overrides the region's."),
    Setting("oauth_url", "string", "OAuth token URL; overrides the region's."),
    Setting("cxi_api_url", "string", "CXI API base URL.", default="https://cxi-api.wootric.com/v1"),
    Setting("user_agent", "string", "User-Agent header sent with every request.", default=f"tap-wootric/{VERSION}"),
    Setting("request_timeout", "integer", "Seconds to wait for an answer before retrying.", default=300,
            minimum=0.001, zero_is_default=True, whole=False),
    # A row saved with updated_at t may become visible only when its transaction commits, a moment later;
    # and the API's clock is known only to the second from its Date header. No bookmark passes the API's
    # now minus this margin, so the next run reads the margin again. Two minutes outlast a web request's
    # transaction with room to spare, and cost no request: the newest two minutes of changes wait for
    # the next run (the newest-first edit walk sends them in both runs).
    Setting("commit_margin_seconds", "integer", "No bookmark passes the API's clock minus this many seconds, so "
            "rows saved just before a run but committed (made visible) just after it are read by the next run.",
            default=120, minimum=0),
    Setting("lookback_days", "integer", "Days of responses to rescan for edits where the API can neither filter "
            "nor sort them on updated_at.", default=30, minimum=0),
    # Each run reads about a tenth of every incremental stream for the reconciliation pass.
    Setting("reconcile_runs", "integer", "A reconciliation pass (every row read once, so deletions and, where the "
            "API offers no other way, old edits reach the warehouse) is spread over at most this many runs; 0 turns "
            "passes off.", default=10, minimum=0),
    # Every example in Wootric's docs is US Pacific. A zone this far west is also the safe guess: for an
    # account at or east of it, the tap's "today" is never later than the account's, so the bookmark of
    # the day streams cannot pass a day still in progress there.
    Setting("account_timezone", "string", "The Wootric account's time zone (IANA name), whose days the day streams "
            "(nps_summary, email_stats) are counted in.", default="America/Los_Angeles"),
    # Day rows change after the day: late answers to e-mail surveys and their reminders, and responses
    # excluded or edited when someone reviews the week's feedback. A week covers both, at 7 requests a
    # day stream per run.
    Setting("daily_reread_days", "integer", "Ended days of nps_summary and email_stats that each run reads again, "
            "for late answers and exclusions.", default=7, minimum=0),
    # 4: a long stream's created range or a day stream's days read four requests at a time, which a
    # run with 150 ms of latency needs to end near its slowest stream's bound; rate budgets are paced
    # whatever the workers, with the requests in flight counted.
    Setting("workers", "integer", "Requests in flight at once for each stream: with more than 1, the selected "
            "streams are read at once (a stream starts once the tap waits on the API), a long created range in "
            "parts and a day stream's days side by side, by up to this many requests a stream (16 in all), and "
            "one writer sends every message in order. "
            "Rate budgets are paced across them. 1 reads one request after another, one stream after another.",
            default=4, minimum=1),
)

SETTING: Dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
