"""What `tap-wootric --about` prints: name, version, capabilities and every setting.

The settings here are the ones `config.load_config` reads; the Meltano Hub definition
(`meltano-hub/tap-wootric.yml`) and the example `meltano.yml` are checked against them by the tests.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from tap_wootric.settings import SETTINGS
from tap_wootric.version import VERSION

NAME = "tap-wootric"
DESCRIPTION = ("Singer tap for Wootric (InMoment) NPS, CSAT and CES survey data: end users, responses, declines, "
               "segments, and CXI responses with sentiment and tags.")
# activate-version: FULL_TABLE streams and the reconciliation passes of the incremental ones send ACTIVATE_VERSION.
CAPABILITIES = ("about", "activate-version", "catalog", "discover", "state")


# Either set is enough; Meltano's settings_group_validation.
AUTH_GROUPS: Tuple[Tuple[str, ...], ...] = (
    ("client_id", "client_secret", "start_date"),
    ("username", "password", "start_date"),
)


def about() -> Dict[str, Any]:
    properties = {setting.name: setting.json_schema() for setting in SETTINGS}
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
