"""Reading and checking the tap's config file."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

import pendulum

from tap_wootric.errors import ConfigError
from tap_wootric.timeutil import parse_start_date
from tap_wootric.version import VERSION

REGIONS = {
    "us": ("https://api.wootric.com/v1", "https://api.wootric.com/oauth/token"),
    "eu": ("https://app.wootric.eu/api/v1", "https://app.wootric.eu/oauth/token"),
    "au": ("https://app.wootric.au/api/v1", "https://app.wootric.au/oauth/token"),
}
DEFAULT_CXI_API_URL = "https://cxi-api.wootric.com/v1"
DEFAULT_REQUEST_TIMEOUT = 300.0
DEFAULT_LOOKBACK_DAYS = 30
# Each run reads about a tenth of every incremental stream for the reconciliation pass.
DEFAULT_RECONCILE_RUNS = 10
# Every example in Wootric's docs is US Pacific. A zone this far west is also the safe guess: for an
# account at or east of it, the tap's "today" is never later than the account's, so the bookmark of
# the day streams cannot pass a day still in progress there.
DEFAULT_ACCOUNT_TIMEZONE = "America/Los_Angeles"
# Day rows change after the day: late answers to e-mail surveys and their reminders, and responses
# excluded or edited when someone reviews the week's feedback. A week covers both, at 7 requests a
# day stream per run.
DEFAULT_DAILY_REREAD_DAYS = 7


@dataclass(frozen=True)
class TapConfig:
    start_date: pendulum.DateTime
    api_url: str
    oauth_url: str
    cxi_api_url: str
    user_agent: str
    request_timeout: float
    lookback_days: int
    reconcile_runs: int = DEFAULT_RECONCILE_RUNS
    client_id: Optional[str] = None
    client_secret: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None
    account_token: Optional[str] = None
    account_timezone: str = DEFAULT_ACCOUNT_TIMEZONE
    daily_reread_days: int = DEFAULT_DAILY_REREAD_DAYS

    @property
    def v2_api_url(self) -> Optional[str]:
        """The v2 API base: api_url with its final /v1 replaced by /v2 (all three regions' bases end in
        /v1); None when api_url does not end in /v1, as behind a proxy with its own paths."""
        if self.api_url.endswith("/v1"):
            return self.api_url[: -len("/v1")] + "/v2"
        return None

    @property
    def grant_type(self) -> str:
        return "client_credentials" if self.client_id else "password"

    def secrets(self) -> list[str]:
        return [value for value in (self.client_secret, self.password) if value]

    def __repr__(self) -> str:  # keeps secrets out of any accidental repr in a log or traceback
        return f"TapConfig(api_url={self.api_url!r}, grant_type={self.grant_type!r})"


def _text(raw: Mapping[str, Any], key: str) -> Optional[str]:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"config key '{key}' must be a string")
    return value.strip() or None


def _number(raw: Mapping[str, Any], key: str, default: float, *, minimum: float, integer: bool) -> Any:
    value = raw.get(key)
    # Meltano and hand-written configs send "", 0 or strings for "use the default" and numbers.
    if value is None or value == "" or (key == "request_timeout" and value in (0, "0")):
        return int(default) if integer else float(default)
    if isinstance(value, bool):
        raise ConfigError(f"config key '{key}' must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{key}' must be a number, not {value!r}") from None
    if not math.isfinite(number) or abs(number) > 10**9:
        raise ConfigError(f"config key '{key}' must be a finite number, not {value!r}")
    if integer and number != int(number):
        raise ConfigError(f"config key '{key}' must be a whole number, not {value!r}")
    if key == "request_timeout" and number < 0:
        raise ConfigError(f"config key '{key}' must be a number of seconds above 0 (0 means the default), "
                          f"not {value!r}")
    if number < minimum:
        raise ConfigError(f"config key '{key}' must be at least {minimum:g}, not {value!r}")
    return int(number) if integer else number


def _reconcile_runs(raw: Mapping[str, Any]) -> int:
    # 0 is a real choice here (no passes), so only an absent or empty value means the default.
    if raw.get("reconcile_runs") in (None, ""):
        return DEFAULT_RECONCILE_RUNS
    return _number(raw, "reconcile_runs", DEFAULT_RECONCILE_RUNS, minimum=0, integer=True)
def _timezone(raw: Mapping[str, Any]) -> str:
    name = _text(raw, "account_timezone") or DEFAULT_ACCOUNT_TIMEZONE
    try:
        pendulum.timezone(name)
    except Exception:  # pendulum raises its own and zoneinfo's types for unknown names
        raise ConfigError(
            f"config key 'account_timezone' is not an IANA time zone name: {name!r} (e.g. \"Europe/Berlin\")"
        ) from None
    return name


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(key: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"config key '{key}' is not an http(s) URL: {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"config key '{key}' uses plain http to {parts.hostname}; credentials are only sent over "
            "https (plain http is allowed for loopback hosts only)"
        )
    return url.rstrip("/")


def load_config(raw: Mapping[str, Any]) -> TapConfig:
    """Validate a config dict and resolve every default, or raise ConfigError naming the problem."""
    if not isinstance(raw, Mapping):
        raise ConfigError("the config file must hold a JSON object")

    client_id, client_secret = _text(raw, "client_id"), _text(raw, "client_secret")
    username, password = _text(raw, "username"), _text(raw, "password")
    if client_id or client_secret:
        missing = [key for key, value in (("client_id", client_id), ("client_secret", client_secret)) if not value]
        if missing:
            raise ConfigError(f"config is missing or has an empty {' and '.join(missing)}")
    elif username or password:
        missing = [key for key, value in (("username", username), ("password", password)) if not value]
        if missing:
            raise ConfigError(f"config is missing or has an empty {' and '.join(missing)} (password grant)")
    else:
        raise ConfigError(
            "config needs credentials: client_id and client_secret, or username and password"
        )

    start_date_text = raw.get("start_date")
    if not start_date_text:
        raise ConfigError("config is missing start_date (for example \"2024-01-01T00:00:00Z\")")
    start_date = parse_start_date(start_date_text)

    region = (_text(raw, "region") or "us").lower()
    if region not in REGIONS:
        raise ConfigError(f"config key 'region' must be one of {', '.join(REGIONS)}, not {region!r}")
    default_api, default_oauth = REGIONS[region]

    return TapConfig(
        start_date=start_date,
        api_url=check_url("api_url", _text(raw, "api_url") or default_api),
        oauth_url=check_url("oauth_url", _text(raw, "oauth_url") or default_oauth),
        cxi_api_url=check_url("cxi_api_url", _text(raw, "cxi_api_url") or DEFAULT_CXI_API_URL),
        user_agent=_text(raw, "user_agent") or f"tap-wootric/{VERSION}",
        request_timeout=_number(raw, "request_timeout", DEFAULT_REQUEST_TIMEOUT, minimum=0.001, integer=False),
        lookback_days=_number(raw, "lookback_days", DEFAULT_LOOKBACK_DAYS, minimum=0, integer=True),
        reconcile_runs=_reconcile_runs(raw),
        client_id=client_id,
        client_secret=client_secret,
        username=None if client_id else username,
        password=None if client_id else password,
        account_token=_text(raw, "account_token"),
        account_timezone=_timezone(raw),
        daily_reread_days=_number(raw, "daily_reread_days", DEFAULT_DAILY_REREAD_DAYS, minimum=0, integer=True),
    )
