"""Reading and checking the tap's config file."""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import pendulum

from tap_wootric.errors import ConfigError
from tap_wootric.settings import REGIONS, SETTING, Setting
from tap_wootric.timeutil import parse_start_date

LOGGER = logging.getLogger(__name__)
# "...Z", "...+02:00", "...-0800": a time with an offset. A date alone, or a time without one, is UTC.
_HAS_OFFSET = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


@dataclass(frozen=True)
class TapConfig:
    start_date: pendulum.DateTime
    api_url: str
    oauth_url: str
    cxi_api_url: str
    user_agent: str
    request_timeout: float
    lookback_days: int
    commit_margin_seconds: int = SETTING["commit_margin_seconds"].default
    reconcile_runs: int = SETTING["reconcile_runs"].default
    client_id: Optional[str] = None
    client_secret: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None
    account_token: Optional[str] = None
    account_timezone: str = SETTING["account_timezone"].default
    daily_reread_days: int = SETTING["daily_reread_days"].default
    workers: int = SETTING["workers"].default

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


def _number(raw: Mapping[str, Any], setting: Setting) -> Any:
    """A number setting, within its bounds; absent, "" (Meltano's "unset") or, where the setting says so,
    0 give the default."""
    value = raw.get(setting.name)
    if value is None or value == "" or (setting.zero_is_default and value in (0, "0")):
        return setting.default if setting.whole else float(setting.default)
    number = _finite(setting.name, value)
    _check_bounds(setting, number, value)
    return int(number) if setting.whole else number


def _finite(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"config key '{key}' must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{key}' must be a number, not {value!r}") from None
    if not math.isfinite(number) or abs(number) > 10**9:
        raise ConfigError(f"config key '{key}' must be a finite number, not {value!r}")
    return number


def _check_bounds(setting: Setting, number: float, value: Any) -> None:
    key = setting.name
    if setting.whole and number != int(number):
        raise ConfigError(f"config key '{key}' must be a whole number, not {value!r}")
    if setting.zero_is_default and number < 0:
        raise ConfigError(f"config key '{key}' must be a number of seconds above 0 (0 means the default), "
                          f"not {value!r}")
    if number < (setting.minimum or 0):
        raise ConfigError(f"config key '{key}' must be at least {setting.minimum:g}, not {value!r}")


def _timezone(raw: Mapping[str, Any]) -> str:
    name = _text(raw, "account_timezone") or SETTING["account_timezone"].default
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


def _credentials(raw: Mapping[str, Any]) -> Dict[str, Optional[str]]:
    client_id, client_secret = _text(raw, "client_id"), _text(raw, "client_secret")
    username, password = _text(raw, "username"), _text(raw, "password")
    if client_id or client_secret:
        _require_pair(("client_id", client_id), ("client_secret", client_secret), "")
        return {"client_id": client_id, "client_secret": client_secret}
    if username or password:
        _require_pair(("username", username), ("password", password), " (password grant)")
        return {"username": username, "password": password}
    raise ConfigError("config needs credentials: client_id and client_secret, or username and password")


def _require_pair(first: Tuple[str, Optional[str]], second: Tuple[str, Optional[str]], grant: str) -> None:
    missing = [key for key, value in (first, second) if not value]
    if missing:
        raise ConfigError(f"config is missing or has an empty {' and '.join(missing)}{grant}")


def _urls(raw: Mapping[str, Any]) -> Dict[str, str]:
    region = (_text(raw, "region") or SETTING["region"].default).lower()
    if region not in REGIONS:
        raise ConfigError(f"config key 'region' must be one of {', '.join(REGIONS)}, not {region!r}")
    defaults = dict(zip(("api_url", "oauth_url"), REGIONS[region]), cxi_api_url=SETTING["cxi_api_url"].default)
    return {key: check_url(key, _text(raw, key) or default) for key, default in defaults.items()}


def load_config(raw: Mapping[str, Any]) -> TapConfig:
    """Validate a config dict and resolve every default, or raise ConfigError naming the problem."""
    if not isinstance(raw, Mapping):
        raise ConfigError("the config file must hold a JSON object")
    credentials = _credentials(raw)
    start_date_text = raw.get("start_date")
    if not start_date_text:
        raise ConfigError("config is missing start_date (for example \"2024-01-01T00:00:00Z\")")
    numbers = {name: _number(raw, SETTING[name])
               for name in ("request_timeout", "lookback_days", "reconcile_runs", "daily_reread_days",
                            "commit_margin_seconds", "workers")}
    start_date = parse_start_date(start_date_text)
    if isinstance(start_date_text, str) and not _HAS_OFFSET.search(start_date_text.strip()):
        LOGGER.info("start_date %r names no UTC offset, so it is taken in UTC: %s", start_date_text,
                    start_date.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return TapConfig(
        start_date=start_date,
        **_urls(raw),
        user_agent=_text(raw, "user_agent") or SETTING["user_agent"].default,
        **numbers,
        **credentials,
        account_token=_text(raw, "account_token"),
        account_timezone=_timezone(raw),
    )
