"""What `tap-wootric --about` prints: name, version, capabilities and every setting.

The settings here are the ones `config.load_config` reads; the Meltano Hub definition
(`meltano-hub/tap-wootric.yml`) and the example `meltano.yml` are checked against them by the tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from tap_wootric.config import (
    DEFAULT_ACCOUNT_TIMEZONE,
    DEFAULT_CXI_API_URL,
    DEFAULT_DAILY_REREAD_DAYS,
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_RECONCILE_RUNS,
    DEFAULT_REQUEST_TIMEOUT,
    REGIONS,
)
from tap_wootric.version import VERSION

NAME = "tap-wootric"
DESCRIPTION = ("Singer tap for Wootric (InMoment) NPS, CSAT and CES survey data: end users, responses, declines, "
               "segments, and CXI responses with sentiment and tags.")
# activate-version: FULL_TABLE streams and the reconciliation passes of the incremental ones send ACTIVATE_VERSION.
CAPABILITIES = ("about", "activate-version", "catalog", "discover", "state")
ENV_PREFIX = "TAP_WOOTRIC_"


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # Meltano's setting kinds: string, date_iso8601, integer, options (secrets: sensitive)
    description: str
    sensitive: bool = False
    default: Any = None
    options: Tuple[str, ...] = ()

    @property
    def json_type(self) -> str:
        return "integer" if self.kind == "integer" else "string"

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: Tuple[Setting, ...] = (
    Setting("client_id", "string", "OAuth client id (Wootric: Settings > API). With client_secret, the "
            "client_credentials grant."),
    Setting("client_secret", "string", "OAuth client secret.", sensitive=True),
    Setting("username", "string", "Account e-mail for the password grant (instead of client_id and client_secret)."),
    Setting("password", "string", "Account password for the password grant.", sensitive=True),
    Setting("account_token", "string", "Account token (NPS-...) to pick one account with the password grant."),
    Setting("start_date", "date_iso8601", "Replicate records updated (end users) or created (responses, declines) "
            "at or after this RFC 3339 date."),
    Setting("region", "options", "Data region; sets api_url and oauth_url.", default="us", options=tuple(REGIONS)),
    Setting("api_url", "string", "API base URL; overrides the region's."),
    Setting("oauth_url", "string", "OAuth token URL; overrides the region's."),
    Setting("cxi_api_url", "string", "CXI API base URL.", default=DEFAULT_CXI_API_URL),
    Setting("user_agent", "string", "User-Agent header sent with every request.", default=f"tap-wootric/{VERSION}"),
    Setting("request_timeout", "integer", "Seconds to wait for an answer before retrying.",
            default=int(DEFAULT_REQUEST_TIMEOUT)),
    Setting("lookback_days", "integer", "Days of responses to rescan for edits where the API can neither filter "
            "nor sort them on updated_at.", default=DEFAULT_LOOKBACK_DAYS),
    Setting("reconcile_runs", "integer", "A reconciliation pass (every row read once, so deletions and, where the "
            "API offers no other way, old edits reach the warehouse) is spread over at most this many runs; 0 turns "
            "passes off.", default=DEFAULT_RECONCILE_RUNS),
    Setting("account_timezone", "string", "The Wootric account's time zone (IANA name), whose days the day streams "
            "(nps_summary, email_stats) are counted in.", default=DEFAULT_ACCOUNT_TIMEZONE),
    Setting("daily_reread_days", "integer", "Ended days of nps_summary and email_stats that each run reads again, "
            "for late answers and exclusions.", default=DEFAULT_DAILY_REREAD_DAYS),
)

# Either set is enough; Meltano's settings_group_validation.
AUTH_GROUPS: Tuple[Tuple[str, ...], ...] = (
    ("client_id", "client_secret", "start_date"),
    ("username", "password", "start_date"),
)


def about() -> Dict[str, Any]:
    properties: Dict[str, Any] = {}
    for setting in SETTINGS:
        schema: Dict[str, Any] = {"type": setting.json_type, "description": setting.description}
        if setting.kind == "date_iso8601":
            schema["format"] = "date-time"
        if setting.options:
            schema["enum"] = list(setting.options)
        if setting.default is not None:
            schema["default"] = setting.default
        if setting.sensitive:
            schema["secret"] = True
            schema["writeOnly"] = True
        properties[setting.name] = schema
    return {
        "name": NAME,
        "description": DESCRIPTION,
        "version": VERSION,
        "capabilities": list(CAPABILITIES),
        "supported_python_versions": ["3.10", "3.11", "3.12", "3.13"],
        "settings": {
            "type": "object",
            "properties": properties,
            "required": ["start_date"],
            "anyOf": [{"required": list(group)} for group in AUTH_GROUPS],
        },
        "env_vars": {setting.name: setting.env_var for setting in SETTINGS},
    }


def render(output_format: Optional[str]) -> str:
    info = about()
    if output_format in (None, "json"):
        return json.dumps(info, indent=2)
    lines: List[str] = [
        f"# {info['name']} {info['version']}",
        "",
        info["description"],
        "",
        "## Capabilities",
        "",
        *[f"- `{capability}`" for capability in info["capabilities"]],
        "",
        "## Settings",
        "",
        "| setting | type | secret | default | environment variable | description |",
        "|---|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        default = "" if setting.default is None else f"`{setting.default}`"
        kind = f"one of {', '.join(setting.options)}" if setting.options else setting.kind
        lines.append(f"| `{setting.name}` | {kind} | {'yes' if setting.sensitive else ''} | {default} | "
                     f"`{setting.env_var}` | {setting.description} |")
    lines += ["", "Credentials: `client_id` and `client_secret`, or `username` and `password`."]
    return "\n".join(lines)
