"""Warnings about config keys the tap does not read.

Meltano passes every setting of a plugin's definition, and copying settings between SDK taps is
common, so a key such as `stream_maps` can arrive and silently do nothing. Each unknown key gets a
WARNING naming it (never its value: it may be a secret); the Meltano SDK's own settings also say what
to do instead.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, List, Mapping

LOGGER = logging.getLogger(__name__)

_USE_A_MAPPER = "this tap applies no stream maps; use a mapper plugin such as meltano-map-transformer instead"
_FLATTEN_IN_TARGET = ("this tap does not flatten records; use the target's flattening (flattening_enabled in "
                      "meltanolabs-target-postgres, data_flattening_max_level in pipelinewise-target-postgres) "
                      "or a mapper plugin")
# Settings of taps built on the Meltano SDK, which this tap (built on singer-python) does not have.
SDK_SETTINGS = {
    "stream_maps": _USE_A_MAPPER,
    "stream_map_config": _USE_A_MAPPER,
    "faker_config": _USE_A_MAPPER,
    "flattening_enabled": _FLATTEN_IN_TARGET,
    "flattening_max_depth": _FLATTEN_IN_TARGET,
    "batch_config": "this tap writes RECORD messages only, not BATCH files; leave it out",
}


def unknown_setting_warnings(raw: Mapping[str, Any], known: Iterable[str]) -> List[str]:
    """One message per key of `raw` that is not a known setting, in the config's order."""
    known_names = set(known)
    messages = []
    for key in raw:
        if key in known_names:
            continue
        advice = SDK_SETTINGS.get(key, "the tap ignores it (a typo?); `tap-wootric --about` lists every setting")
        messages.append(f"config key '{key}' is not a tap-wootric setting: {advice}")
    return messages


def warn_unknown_settings(raw: Any, known: Iterable[str]) -> None:
    if isinstance(raw, Mapping):
        for message in unknown_setting_warnings(raw, known):
            LOGGER.warning("%s", message)
